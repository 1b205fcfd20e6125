"""The three FER-2013 layouts, built small by the tests, read to identical arrays; bad input named."""
import csv

import cv2
import numpy as np
import pytest

from fercore.classes import EMOTIONS
from training.data import DataError, load_split, read_split, stratified_subset

USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(0)
    out = {}
    for split, n in (("train", 14), ("val", 7), ("test", 7)):
        labels = np.arange(n) % 7
        out[split] = (rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), labels)
    return out


def write_fer2013_csv(path, samples, icml=False):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", " Usage", " pixels"] if icml else ["emotion", "pixels", "Usage"])
        for split, (images, labels) in samples.items():
            for img, y in zip(images, labels):
                pixels = " ".join(map(str, img.ravel()))
                w.writerow([y, USAGE[split], pixels] if icml else [y, pixels, USAGE[split]])
    return path


def write_folders(root, samples):
    for split, (images, labels) in samples.items():
        for i, (img, y) in enumerate(zip(images, labels)):
            d = root / split / EMOTIONS[y]
            d.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(d / f"{i:04d}.png"), img)
    return root


@pytest.mark.parametrize("layout", ["folders", "fer2013.csv", "icml_face_data.csv"])
@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_every_layout_reads_the_same_images_and_labels(tmp_path, samples, layout, split):
    if layout == "folders":
        src = write_folders(tmp_path / "fer", samples)
    else:
        src = write_fer2013_csv(tmp_path / layout, samples, icml=layout.startswith("icml"))
    images, labels = read_split(src, split, progress=False)
    want_images, want_labels = samples[split]
    # Folders are read class by class; compare as (label, image) sets.
    order = np.lexsort((images.reshape(len(images), -1)[:, 0], labels))
    want = np.lexsort((want_images.reshape(len(want_images), -1)[:, 0], want_labels))
    assert images.dtype == np.uint8 and images.shape == want_images.shape
    assert np.array_equal(labels[order], want_labels[want])
    assert np.array_equal(images[order], want_images[want])


def test_real_fer2013_folders_use_fer_label_order(shared_fer):
    images, labels = read_split(shared_fer, "val", progress=False)
    assert images.shape == (3589, 48, 48)
    counts = np.bincount(labels, minlength=7)
    assert counts[EMOTIONS.index("disgust")] == len(list((shared_fer / "val" / "disgust").iterdir()))
    assert counts[EMOTIONS.index("happy")] == len(list((shared_fer / "val" / "happy").iterdir()))


def test_cache_returns_same_arrays_and_notices_changes(tmp_path, samples):
    src = write_fer2013_csv(tmp_path / "fer2013.csv", samples)
    cache = tmp_path / "cache"
    first = load_split(src, "train", cache, progress=False)
    assert len(list(cache.glob("*.npz"))) == 1
    again = load_split(src, "train", cache, progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    smaller = {"train": (samples["train"][0][:7], samples["train"][1][:7])}
    write_fer2013_csv(src, smaller)
    assert len(load_split(src, "train", cache, progress=False)[1]) == 7


def _csv_with_row(tmp_path, row):
    path = tmp_path / "fer2013.csv"
    good = [3, " ".join(["128"] * 2304), "Training"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        w.writerow(good)
        w.writerow(row)
    return path


@pytest.mark.parametrize("row, message", [
    ([3, " ".join(["1"] * 2000), "Training"], r"line 3: 2000 pixels, expected 2304"),
    ([9, " ".join(["1"] * 2304), "Training"], r"line 3: bad emotion label '9'"),
    (["happy", " ".join(["1"] * 2304), "Training"], r"line 3: bad emotion label 'happy'"),
    ([3, " ".join(["300"] * 2304), "Training"], r"line 3: pixel values must be within 0-255"),
    ([3, "a b c", "Training"], r"line 3: pixels must be integers"),
    ([3, "1 2"], r"line 3: expected 3 fields, got 2"),
    # an unknown Usage was a row dropped without a word
    ([3, " ".join(["1"] * 2304), "Trainng"], r"line 3: unknown Usage 'Trainng' \(expected one of Training, "),
    ([3, " ".join(["1"] * 2304), "Train\x00ing"], r"line 3: unknown Usage 'Train\\x00ing'"),
    # item 10: numbers beyond 64 bits and fields beyond the csv module's limit were tracebacks
    ([3, " ".join(["1"] * 2303 + ["99999999999999999999999"]), "Training"], r"line 3: pixel values must be within"),
    ([3, "1 " * 70000, "Training"], r"line 3: not a readable csv row \(field larger than field limit"),
])
def test_malformed_csv_rows_are_named(tmp_path, row, message):
    path = _csv_with_row(tmp_path, row)
    with pytest.raises(DataError, match=message) as err:
        read_split(path, "train", progress=False)
    assert str(path) in str(err.value)


def test_csv_without_pixels_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("emotion,Usage\n3,Training\n")
    with pytest.raises(DataError, match="no 'pixels' column"):
        read_split(path, "train", progress=False)


def test_unreadable_image_and_unknown_folder_are_named(tmp_path, samples):
    root = write_folders(tmp_path / "fer", {"train": samples["train"]})
    broken = root / "train" / "happy" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DataError, match="cannot read image .*broken.jpg"):
        read_split(root, "train", progress=False)
    broken.unlink()
    (root / "train" / "contempt").mkdir()
    with pytest.raises(DataError, match="unknown emotion folder 'contempt'"):
        read_split(root, "train", progress=False)
    with pytest.raises(DataError, match="no folder for split 'val'"):
        read_split(root, "val", progress=False)
    with pytest.raises(DataError, match="data not found"):
        read_split(tmp_path / "nowhere", "train", progress=False)


def test_stratified_subset_keeps_every_class():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    idx = stratified_subset(labels, 20)
    assert set(labels[idx]) == {0, 1, 2}
    assert 17 <= len(idx) <= 21


def test_a_csv_that_is_not_utf8_is_named(tmp_path):
    """a Latin-1 (or binary) csv was a UnicodeDecodeError traceback."""
    path = tmp_path / "fer2013.csv"
    path.write_bytes("emotion,pixels,Usage\n3,1 2,Entraînement\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"fer2013.csv: not a FER-2013 csv file \(not UTF-8 text\)"):
        read_split(path, "train", progress=False)


def test_a_damaged_cache_is_rebuilt_with_a_warning(tmp_path, samples, caplog):
    """a truncated .npz was read again on every run and failed every time."""
    src = write_fer2013_csv(tmp_path / "fer2013.csv", samples)
    cache = tmp_path / "cache"
    want = load_split(src, "train", cache, progress=False)
    npz = next(cache.glob("*.npz"))
    whole = npz.read_bytes()
    for damaged in (whole[:len(whole) // 2], b"", whole[:-100]):
        npz.write_bytes(damaged)
        with caplog.at_level("WARNING", logger="training"):
            got = load_split(src, "train", cache, progress=False)
        assert all(np.array_equal(a, b) for a, b in zip(got, want))
        assert "data cache" in caplog.text and "damaged" in caplog.text
        assert npz.read_bytes() == whole  # written afresh
        caplog.clear()


def test_a_cache_that_cannot_be_written_is_skipped_with_a_warning(tmp_path, samples, caplog, monkeypatch):
    """data.cache_dir on a full disk or where a file stands is a warning, not a failed run."""
    src = write_fer2013_csv(tmp_path / "fer2013.csv", samples)
    a_file = tmp_path / "not_a_folder"
    a_file.write_text("x")
    with caplog.at_level("WARNING", logger="training"):
        images, labels = load_split(src, "train", a_file, progress=False)
    assert len(labels) == 14 and "cannot write" in caplog.text and "continuing without the data cache" in caplog.text
    caplog.clear()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with caplog.at_level("WARNING", logger="training"):
        images, labels = load_split(src, "train", tmp_path / "cache", progress=False)
    assert len(labels) == 14 and "continuing without the data cache" in caplog.text
    assert "No space left on device" in caplog.text or "disk is full" in caplog.text
    assert not list((tmp_path / "cache").iterdir())  # no half-written cache


def test_a_folder_with_names_that_are_not_utf8_is_read(tmp_path):
    """cv2.imread crashed the process (exit 139) on such a path; run apart so a regression cannot take the suite."""
    import subprocess
    import sys

    from fercore.paths import ROOT

    code = r"""
import os, sys, cv2, numpy as np
from training.data import load_split
root = os.fsencode(sys.argv[1])
for split in (b"train", b"val"):
    folder = os.path.join(root, split, b"happy")
    os.makedirs(folder)
    with open(os.path.join(folder, b"caf\xe9.png"), "wb") as fh:
        fh.write(cv2.imencode(".png", np.full((48, 48), 7, np.uint8))[1].tobytes())
x, y = load_split(os.fsdecode(root), "train", None, progress=False)
print(x.shape, int(x[0, 0, 0]), int(y[0]))
"""
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "fer")], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-500:]
    assert run.stdout.split() == ["(1,", "48,", "48)", "7", "3"]


ALIGNMENT_HEADER = ("usage,kaggle_path,fer2013_label,fer2013_row,ferplus_image,match_mae,match_status,neutral,happiness,"
                    "surprise,sadness,anger,disgust,fear,contempt,unknown,NF")


def write_alignment(path, rows):
    """rows: (kaggle_path, ferplus_image, NF votes, neutral votes); the other votes 0, empty without an image."""
    lines = [ALIGNMENT_HEADER]
    for name, image, nf, neutral in rows:
        votes = f"{neutral},0,0,0,0,0,0,0,0,{nf}" if image else ",,,,,,,,,"
        lines.append(f"Training,{name},angry,1,{image},1.0,unique,{votes}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_training_leaves_out_the_images_ferplus_marks_as_not_faces(tmp_path, samples, tiny_run):
    from training.ferplus import face_mask
    from training.build import load_data

    root = write_folders(tmp_path / "fer", samples)
    alignment = write_alignment(tmp_path / "align.csv", [
        ("train/angry/0000.png", "", 0, 0),  # FER+ gave it no image: dropped
        ("train/disgust/0001.png", "fer1.png", 5, 5),  # half the votes say not a face: dropped
        ("train/fear/0002.png", "fer2.png", 4, 6),  # fewer than half: kept
        ("val/angry/0000.png", "", 0, 0),  # val is never touched
    ])
    # read class by class: angry 0000, 0007, disgust 0001, 0008, fear 0002, ...
    assert face_mask(root, "train", alignment).tolist() == [False, True, False, True] + [True] * 10
    cfg = tiny_run.cfg(root, tmp_path / "run", f"data.exclude_not_faces={alignment}", "data.cache_dir=null")
    data = load_data(cfg, 48, progress=False)
    assert len(data.train_labels) == 12 and sorted(set(data.train_labels.tolist()) - {0, 1}) == [2, 3, 4, 5, 6]
    assert len(data.val_labels) == 7


def test_an_alignment_that_names_none_of_the_files_or_a_csv_source_is_refused(tmp_path, samples):
    from training.ferplus import face_mask

    root = write_folders(tmp_path / "fer", samples)
    other = write_alignment(tmp_path / "align.csv", [("train/angry/Training_1.jpg", "", 0, 0)])
    with pytest.raises(DataError, match="names none of the 14 files"):
        face_mask(root, "train", other)
    with pytest.raises(DataError, match="needs FER-2013 as folders"):
        face_mask(write_fer2013_csv(tmp_path / "fer2013.csv", samples), "train", other)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="not a FER\\+ alignment csv"):
        face_mask(root, "train", tmp_path / "bad.csv")
