"""FER-2013 in the three layouts users have, decoded once into a uint8 cache.

- folders: ``ROOT/<split>/<emotion>/*.jpg`` (Kaggle's ``train``/``test``, or ``train``/``val``)
- ``fer2013.csv``: columns emotion, pixels, Usage
- ``icml_face_data.csv``: columns emotion, Usage, pixels (header names with leading spaces)

Splits are named ``train``, ``val`` and ``test``: the csv Usage values Training, PublicTest and PrivateTest.
A bad row or image (an unknown Usage value too) raises DataError naming the file and row; nothing is dropped
silently. The cache is only a cache: one that cannot be read is decoded again, one that cannot be written is
skipped, each with a warning.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from fercore.atomic import atomic_path, describe, printable
from fercore.classes import EMOTIONS, IMAGE_SUFFIXES, UnknownEmotionError, class_index
from models.preprocessing import resize_face
from training.errors import DataError

SIZE = 48
CSV_USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
CACHE_VERSION = 1
log = logging.getLogger("training")


def folder_split_dir(root: Path, split: str) -> Path:
    """The folder of a split, or an error that lists the folders there (Kaggle's copy has train/ and test/)."""
    d = root / split
    if not d.is_dir():
        have = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise DataError(f"{root}: no folder for split {split!r} (folders here: {', '.join(have) or 'none'})")
    return d


def folder_split_files(root: Path, split: str) -> tuple[list[Path], list[int]]:
    """A folder split's image files and labels, in the order read_folder_split decodes them."""
    split_dir = folder_split_dir(root, split)
    files: list[Path] = []
    labels: list[int] = []
    for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        try:
            label = class_index(class_dir.name)
        except UnknownEmotionError as exc:
            raise DataError(str(exc)) from None
        for f in sorted(class_dir.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                files.append(f)
                labels.append(label)
    if not files:
        raise DataError(f"{split_dir}: no images found in <emotion>/ subfolders")
    return files, labels


def read_folder_split(root: Path, split: str, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    files, labels = folder_split_files(root, split)

    def decode(path: Path) -> np.ndarray:  # faces of another size are resized as the realtime app would
        # Read by Python, decoded by OpenCV: cv2.imread crashes the process on a path that is not UTF-8.
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except OSError as exc:
            raise DataError(f"cannot read image {printable(path)}: {exc.strerror or exc}") from None
        image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
        if image is None:
            raise DataError(f"cannot read image {printable(path)}")
        return resize_face(image, SIZE)

    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        it = pool.map(decode, files, chunksize=256)
        images = list(tqdm(it, total=len(files), desc=f"decode {split}", disable=not progress, unit="img"))
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def _csv_columns(header: list[str], path: Path) -> dict[str, int]:
    names = [h.strip().lower() for h in header]
    cols = {}
    for want in ("emotion", "pixels", "usage"):
        if want not in names:
            raise DataError(f"{path}: header has no {want!r} column (found {header})")
        cols[want] = names.index(want)
    return cols


def read_csv_split(path: Path, split: str, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    usage = CSV_USAGE.get(split)
    if usage is None:
        raise DataError(f"unknown split {split!r}; csv files have {', '.join(CSV_USAGE)}")
    images, labels = [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: empty file")
            cols = _csv_columns(header, path)
            for row in tqdm(reader, desc=f"read {split}", disable=not progress, unit="row"):
                if _csv_row_usage(row, header, cols, path, reader.line_num) != usage:
                    continue
                label, face = _csv_row_face(row, cols, path, reader.line_num)
                images.append(face)
                labels.append(label)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a FER-2013 csv file (not UTF-8 text)") from None
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num}: not a readable csv row ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not images:
        raise DataError(f"{path}: no rows with Usage {usage!r} (split {split!r})")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def _csv_row_usage(row: list[str], header: list[str], cols: dict[str, int], path: Path, line: int) -> str:
    """The row's Usage value, after checking the row has every field and a Usage the csv files use."""
    if len(row) != len(header):
        raise DataError(f"{path}, line {line}: expected {len(header)} fields, got {len(row)}")
    value = row[cols["usage"]].strip()
    if value not in CSV_USAGE.values():
        raise DataError(f"{path}, line {line}: unknown Usage {row[cols['usage']]!r} (expected one of "
                        f"{', '.join(CSV_USAGE.values())})")
    return value


def _csv_row_face(row: list[str], cols: dict[str, int], path: Path, line: int) -> tuple[int, np.ndarray]:
    """The label and the 48x48 uint8 face of a row."""
    try:
        label = int(row[cols["emotion"]])
    except ValueError:
        label = -1
    if not 0 <= label < len(EMOTIONS):
        raise DataError(f"{path}, line {line}: bad emotion label {row[cols['emotion']]!r} (must be 0-6)")
    try:
        pixels = np.array(row[cols["pixels"]].split(), dtype=np.int64)
    except ValueError:
        raise DataError(f"{path}, line {line}: pixels must be integers") from None
    except OverflowError:  # a number beyond 64 bits
        raise DataError(f"{path}, line {line}: pixel values must be within 0-255") from None
    if pixels.size != SIZE * SIZE:
        raise DataError(f"{path}, line {line}: {pixels.size} pixels, expected {SIZE * SIZE}")
    if pixels.min() < 0 or pixels.max() > 255:
        raise DataError(f"{path}, line {line}: pixel values must be within 0-255")
    return label, pixels.astype(np.uint8).reshape(SIZE, SIZE)


def read_split(root: str | Path, split: str, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Decode one split: uint8 images (N, 48, 48) and int64 labels (N,) in FER-2013 label order."""
    root = Path(root).expanduser()
    if root.is_file():
        return read_csv_split(root, split, progress)
    if root.is_dir():
        return read_folder_split(root, split, progress)
    raise DataError(f"data not found: {root} (give a FER-2013 folder, fer2013.csv or icml_face_data.csv)")


def _fingerprint(root: Path, split: str) -> str:
    """Cheap identity of the source: path, split, and size+mtime of the file or of every split image."""
    h = hashlib.sha1(f"{CACHE_VERSION}|{root.resolve()}|{split}".encode())
    if root.is_file():
        st = root.stat()
        h.update(f"{st.st_size}|{st.st_mtime_ns}".encode())
    else:
        for dirpath, _, names in sorted(os.walk(root / split)):
            for name in sorted(names):
                st = os.stat(os.path.join(dirpath, name))
                h.update(f"{dirpath}/{name}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def load_split(root: str | Path, split: str, cache_dir: str | Path | None = None,
               progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """read_split through an .npz cache keyed by the source's identity, so later runs skip decoding."""
    root = Path(root).expanduser()
    if cache_dir is None:
        return read_split(root, split, progress)
    if not root.exists():
        raise DataError(f"data not found: {root} (give a FER-2013 folder, fer2013.csv or icml_face_data.csv)")
    cache = Path(cache_dir).expanduser() / f"{root.name}-{split}-{_fingerprint(root, split)}.npz"
    if cache.is_file():
        try:
            return _read_cache(cache)
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            log.warning(f"warning: the data cache {cache} is damaged ({exc}); decoding {root} [{split}] again")
    images, labels = read_split(root, split, progress)
    try:
        with atomic_path(cache) as tmp:
            np.savez(tmp, images=images, labels=labels)
    except OSError as exc:  # a read-only or full disk, a file where the folder should be
        log.warning(f"warning: {describe(cache, exc)}; continuing without the data cache")
    return images, labels


def _read_cache(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A cache file's faces and labels; ValueError (or the reader's error) unless they are whole and valid."""
    with np.load(path) as z:
        images, labels = z["images"], z["labels"]
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (SIZE, SIZE):
        raise ValueError(f"faces of {images.dtype} {images.shape}")
    if labels.dtype != np.int64 or labels.shape != (len(images),) or not (
            len(labels) and 0 <= labels.min() and labels.max() < len(EMOTIONS)):
        raise ValueError(f"labels of {labels.dtype} {labels.shape}")
    return images, labels


def stratified_subset(labels: np.ndarray, limit: int, seed: int = 0) -> np.ndarray:
    """Indices of exactly ``limit`` samples (all of them when there are no more) keeping class proportions: each
    class its share rounded down, the rest to the classes with the largest remainders; every present class is
    kept when ``limit`` allows one each."""
    if limit >= len(labels):
        return np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    share = limit * counts / len(labels)
    k = np.floor(share).astype(np.int64)
    if limit >= len(classes):
        k = np.maximum(k, 1)
    while k.sum() > limit:  # the ones given to small classes come from those furthest above their share
        k[np.argmax(np.where(k > 1, k - share, -np.inf))] -= 1
    while k.sum() < limit:
        k[np.argmax(np.where(k < counts, share - k, -np.inf))] += 1
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(labels == c), size=n, replace=False) for c, n in zip(classes, k)]
    return np.sort(np.concatenate(picked))
