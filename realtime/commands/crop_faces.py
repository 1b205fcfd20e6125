"""Turn your labelled photos into training data: crop each photo's face as the app crops it, for fine-tuning.

    fer-crop-faces MY_PHOTOS -o my_faces [--val-share 0.2]
    fer-train --config finetune --set data.root=my_faces
    fer-evaluate my_faces/heldout --checkpoint runs/finetune/best.pt

MY_PHOTOS holds one folder per emotion, as for `fer-evaluate` (angry, disgust, fear, happy, sad,
surprise, neutral; variants such as 'surprised' or 'happiness' work too), with photos of any size inside.
Each photo's face is found by the app's face detector (--detector, default full as for photos) and cut with the
app's own crop: the box widened by the checkpoint's margin into a square, black outside the photo, grayscale,
resized to the checkpoint's size (48x48 for the shipped model), so training sees exactly what the app feeds
the model. One face per photo, its subject, chosen as fer-evaluate chooses it: the largest of the faces the
detector is about as sure of as of its best one (score >= 0.8 x the best score).

The faces are written as PNGs in FER-2013's folder layout, which training reads: OUT/train/<emotion>/ and
OUT/val/<emotion>/. The validation share (--val-share) is held out per emotion, the same photos on every run
(chosen by a hash of each photo's path and --seed): at least one photo of each emotion that has two or more,
never all of them. The held-out photos themselves are also linked (or copied) to OUT/heldout/<emotion>/, so
`fer-evaluate OUT/heldout` measures the whole system on photos the training never saw.
OUT/crops.json lists every photo: its split, box and score, and the photos without a face or unreadable.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

import cv2
from tqdm import tqdm

from fercore.atomic import interrupt_on_termination, output_error, printable
from fercore.classes import EMOTIONS
from fercore.cli import count_of, number, parser
from models.preprocessing import resize_face
from realtime.commands import options
from realtime.detector import DETECTORS
from realtime.errors import InputError, resolved
from realtime.faces import readable_part
from realtime.labelled import SUBJECT_SCORE_SHARE, labelled_photos, subject
from realtime.photos import ImageError, read_image
from realtime.pipeline import Pipeline
from realtime.settings import DETECTOR_FOR, Settings, build_pipeline, checkpoint_record

MANIFEST = "crops.json"
SPLITS = ("train", "val", "heldout")  # the folders this command writes, besides MANIFEST
# train.batch_size of training/configs/finetune.yaml (a test checks they agree): with fewer training faces the
# printed training command lowers it, since training refuses a batch larger than its training set.
FINETUNE_BATCH_SIZE = 16
FINETUNE_CONFIG = "training/configs/finetune.yaml"
FINETUNE_RUN = "runs/finetune"  # the config's output.dir, derived from its name (training.config)


def get_parser() -> argparse.ArgumentParser:
    p = parser("realtime.commands.crop_faces", __doc__)
    p.add_argument("dir", type=Path, help="folder of <emotion>/<photo> files, as for fer-evaluate")
    g = p.add_argument_group("output")
    g.add_argument("-o", "--out", type=Path, required=True,
                   help="folder to write OUT/train/<emotion>/*.png, OUT/val/<emotion>/*.png, OUT/heldout/ and "
                        f"OUT/{MANIFEST} into (made; must not exist, be empty, or hold an earlier output of this "
                        "command with --overwrite)")
    g.add_argument("--val-share", type=number(0, 1, hi_open=True), default=0.2,
                   help="share of each emotion's photos held out for validation, in (0, 1) (default 0.2; at least "
                        "one photo of each emotion with two or more)")
    g.add_argument("--seed", type=number(0, 2**32 - 1, kind=int), default=0,
                   help="which photos are held out: the same seed holds out the same photos (default 0)")
    g.add_argument("--overwrite", action="store_true",
                   help=f"replace an earlier output of this command in OUT (one with {MANIFEST})")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    d = p.add_argument_group("face detection and crop (the app's own)")
    d.add_argument("--checkpoint", default=None,
                   help="the emotion model whose margin and input size the crops follow (a shipped model's name, "
                        ".pt or .onnx; default: default, the model the fine-tuning config starts from)")
    d.add_argument("--detector", default=None,
                   help=f"face detector: {', '.join(DETECTORS)} or a .tflite path (default "
                        f"{DETECTOR_FOR['photo']}, the photos' detector of fer-annotate and fer-evaluate)")
    d.add_argument("--min-confidence", type=number(0, 1), default=None,
                   help="minimum face detection score (default: the detector's own)")
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = get_parser()
    args = p.parse_args(argv)
    if args.val_share == 0:
        p.error("argument --val-share: must be more than 0: training needs validation faces")
    return args


# --- inputs and outputs --------------------------------------------------------------------------------------
def check_out(photos: Path, out: Path, overwrite: bool) -> None:
    """OUT is neither inside the photo folder nor holding it, and is new, empty, or (with ``overwrite``) an
    earlier output of this command; InputError otherwise."""
    root, dst = resolved(photos), resolved(out)
    if dst == root or root in dst.parents:
        raise InputError(f"refusing to write {printable(out)} inside the photo folder {printable(photos)} (its "
                             "faces would be read as photos next time); write it elsewhere")
    if dst in root.parents:
        raise InputError(f"refusing to write into {printable(out)}: it holds the photo folder {printable(photos)}")
    if out.exists() and not out.is_dir():
        raise InputError(f"{printable(out)} is a file, not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not (out / MANIFEST).is_file():
        raise InputError(f"{printable(out)} holds other files; give a new or empty folder (only an earlier "
                             f"output of this command, with its {MANIFEST}, is replaced with --overwrite)")
    if not overwrite:
        raise InputError(f"{printable(out)} holds an earlier output of this command; pass --overwrite to "
                             "replace it, or give another folder")
    others = sorted(p.name for p in out.iterdir() if p.name not in (*SPLITS, MANIFEST)) or unlisted_files(out)
    if others:
        raise InputError(f"{printable(out)} holds files this command did not write ({', '.join(others[:5])}); "
                             "move them away or give another folder")


def unlisted_files(out: Path) -> list[str]:
    """Files inside an earlier output's split folders that its manifest does not list (a user's own files, which
    --overwrite must not delete), as paths relative to ``out``; every file when the manifest cannot be read."""
    try:
        manifest = json.loads((out / MANIFEST).read_text())
        listed = {f[key] for f in manifest["faces"] for key in ("file", "heldout") if key in f}
    except (OSError, ValueError, KeyError, TypeError):
        listed = set()
    found = [p.relative_to(out).as_posix() for split in SPLITS if (out / split).is_dir()
             for p in sorted((out / split).rglob("*")) if not p.is_dir()]
    return [f for f in found if f not in listed]


def held_out(items: list[tuple[str, str]], share: float, seed: int = 0) -> set[str]:
    """The keys of ``items`` (key, emotion) held out for validation: per emotion, round(share x n) of its n items
    but at least one when n >= 2 and never all; none of an emotion with one item. Which ones depends only on
    each key, the seed and the emotion's count, so a run on the same photos holds out the same ones."""
    by_emotion: dict[str, list[str]] = {}
    for key, emotion in items:
        by_emotion.setdefault(emotion, []).append(key)
    out = set()
    for keys in by_emotion.values():
        n = len(keys)
        k = 0 if n < 2 else min(n - 1, max(1, round(share * n)))
        order = sorted(keys, key=lambda key: hashlib.sha256(f"{seed}\0{key}".encode("utf-8", "surrogateescape"))
                       .hexdigest())
        out.update(order[:k])
    return out


def photo_path(photo: Path, root: Path, emotion: str) -> Path:
    """Where a photo sits under its emotion: its path in its emotion folder, after that folder's name when it is
    not the emotion's own (happiness/me.jpg -> happiness/me.jpg, happy/me.jpg -> me.jpg), so that two folders of
    one emotion never give one name."""
    rel = photo.relative_to(root)
    return rel if rel.parts[0] != emotion else rel.relative_to(rel.parts[0])


def face_name(rel: Path, used: set[str]) -> str:
    """A PNG name for the face of the photo at ``rel`` (photo_path): '/' as '__', the photo's suffix kept
    (me.jpg -> me_jpg.png, trip/me.jpg -> trip__me_jpg.png), numbered if taken already; added to ``used``."""
    stem = "__".join(rel.with_suffix("").parts) + "_" + rel.suffix.lstrip(".").lower()
    name, n = f"{stem}.png", 1
    while name in used:
        n += 1
        name = f"{stem}_{n}.png"
    used.add(name)
    return name


def _write(path: Path, data: bytes | None = None, source: Path | None = None) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if source is None:
            path.write_bytes(data)
        else:
            try:
                os.link(source, path)  # costs no space; another disk or file system: a copy
            except OSError:
                shutil.copyfile(source, path)
    except OSError as exc:
        raise output_error(path, exc) from exc


# --- the command ---------------------------------------------------------------------------------------------
def find_faces(args: argparse.Namespace, items: list[tuple[Path, str]]) -> tuple[list[dict], dict]:
    """The subject's face of every photo of ``items`` (photo, emotion), cut as the app cuts it, and the photos
    without a face or unreadable."""
    settings = Settings(checkpoint=args.checkpoint, detector=args.detector, min_confidence=args.min_confidence,
                        threads=1, label_all=True)
    faces, left_out = [], {"no_face": [], "unreadable": []}
    used: dict[str, set[str]] = {e: set() for e in EMOTIONS}
    with build_pipeline(settings, "photo") as pipe:
        for photo, emotion in tqdm(items, unit="photo", disable=args.no_progress):
            face = crop_photo(pipe, photo, emotion, left_out)
            if face is not None:
                rel = photo_path(photo, args.dir, emotion)
                face.update({"file": f"{emotion}/{face_name(rel, used[emotion])}", "_source": photo, "_rel": rel,
                             "_key": photo.relative_to(args.dir).as_posix()})
                faces.append(face)
        left_out["settings"] = {"checkpoint": checkpoint_record(settings.checkpoint),
                                "detector": pipe.detector.name, "min_confidence": pipe.detector.min_confidence,
                                "margin": pipe.margin, "size": pipe.classifier.preprocessing.size}
    return faces, left_out


def crop_photo(pipe: Pipeline, photo: Path, emotion: str, left_out: dict) -> dict | None:
    """One photo's subject as a PNG of the model's input (None, noted in ``left_out``, when there is none)."""
    shown = printable(photo)
    try:
        image = read_image(photo)
    except ImageError as exc:
        tqdm.write(f"warning: skipped {exc}", file=sys.stderr)
        left_out["unreadable"].append({"photo": shown, "emotion": emotion, "reason": str(exc)})
        return None
    h, w = image.shape[:2]
    detections = pipe.detector.detect(image, None)
    kept = [d for d in detections if readable_part(d.box, w, h)]
    if not kept:
        left_out["no_face"].append({"photo": shown, "emotion": emotion, "faces": len(detections)})
        return None
    face = subject(kept, (w, h))
    # The pipeline's crop (realtime.pipeline.Pipeline.face_crop) and the model's resize (models.preprocessing)
    pixels = resize_face(pipe.face_crop(image, face), pipe.classifier.preprocessing.size)
    ok, png = cv2.imencode(".png", pixels)
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 gray image as PNG
        raise RuntimeError(f"cannot encode the face of {shown} as PNG")
    return {"photo": shown, "emotion": emotion, "split": None, "box": [int(v) for v in face.box],
            "score": round(float(face.score), 4), "faces": len(detections), "_png": png.tobytes()}


def crop(args: argparse.Namespace, items: list[tuple[Path, str]], tmp: Path) -> dict:
    """Crop the subject of every photo of ``items`` (photo, emotion), write the faces into ``tmp``/train and /val
    and the held-out photos into ``tmp``/heldout, and return the manifest."""
    faces, left_out = find_faces(args, items)
    if not faces:
        raise InputError(f"no face found in any photo of {printable(args.dir)} ({len(left_out['no_face'])} without "
                         f"a face, {len(left_out['unreadable'])} unreadable); try --min-confidence 0.2 for small "
                         "or hard faces")
    # Keyed by the path inside the photo folder, so the same folder holds out the same photos wherever it lies.
    val = held_out([(f["_key"], f["emotion"]) for f in faces], args.val_share, args.seed)
    if not val:
        raise InputError("too few faces to hold any out for validation: no emotion has two photos with a face "
                         f"({count_of(len(faces), 'faces')} in all); add photos (a few dozen per emotion is a start)")
    if len(faces) - len(val) < 2:
        raise InputError(f"too few faces to train on: {len(faces) - len(val)} left after holding out {len(val)} "
                         "for validation (training needs two or more); add photos")
    write_faces(faces, val, tmp)
    counts = {s: {e: sum(f["split"] == s and f["emotion"] == e for f in faces) for e in EMOTIONS}
              for s in ("train", "val")}
    return {"photos": printable(args.dir), "settings": left_out["settings"], "val_share": args.val_share,
            "seed": args.seed, "face_choice": f"largest face with score >= {SUBJECT_SCORE_SHARE:g} x the photo's "
            "best score", "counts": counts, "faces": faces, "no_face": left_out["no_face"],
            "unreadable": left_out["unreadable"]}


def write_faces(faces: list[dict], val: set[str], tmp: Path) -> None:
    """Each face into ``tmp``/train or /val, and each held-out photo into ``tmp``/heldout (names kept apart)."""
    heldout: set[Path] = set()
    for f in faces:
        f["split"] = "val" if f.pop("_key") in val else "train"
        _write(tmp / f["split"] / f["file"], f.pop("_png"))
        source, rel = f.pop("_source"), f.pop("_rel")
        if f["split"] == "val":
            where, n = Path(f["emotion"]) / rel, 1
            while where in heldout:  # happy/happiness/me.jpg and happiness/me.jpg
                n += 1
                where = (Path(f["emotion"]) / rel).with_stem(f"{rel.stem}_{n}")
            heldout.add(where)
            rel = where.relative_to(f["emotion"])
            f["heldout"] = printable(f"heldout/{f['emotion']}/{rel.as_posix()}")
            _write(tmp / "heldout" / f["emotion"] / rel, source=source)
        f["file"] = printable(f"{f['split']}/{f['file']}")


def replace_folder(tmp: Path, out: Path) -> None:
    """Put the finished ``tmp`` in the place of ``out`` (missing, empty, or an earlier output)."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    try:
        if out.is_dir():
            out.rename(old)
        tmp.rename(out)
    except OSError as exc:
        if old.exists() and not out.exists():
            old.rename(out)
        raise output_error(out, exc) from exc
    shutil.rmtree(old, ignore_errors=True)


def summary(manifest: dict, out: Path, checkpoint: str | None) -> str:
    counts = manifest["counts"]
    present = [e for e in EMOTIONS if counts["train"][e] or counts["val"][e]]
    n_train, n_val = sum(counts["train"].values()), sum(counts["val"].values())
    lines = [f"{count_of(len(manifest['faces']), 'faces')}: {n_train} for training, {n_val} held out for validation",
             f"{'':>10}{'train':>7}{'val':>5}"]
    lines += [f"{e:>10}{counts['train'][e]:7d}{counts['val'][e]:5d}" for e in present]
    for title, key in (("no face found in", "no_face"), ("could not read", "unreadable")):
        entries = manifest[key]
        if entries:
            lines += ["", f"{title} {count_of(len(entries), 'photos')} (left out):"]
            lines += [f"  {e['photo']}" for e in entries[:20]]
            if len(entries) > 20:
                lines.append(f"  ... and {len(entries) - 20} more (all in {MANIFEST})")
    single = [e for e in present if not counts["val"][e]]
    if single:
        lines += ["", f"nothing held out of {', '.join(single)}: one photo each (add more to check them)"]
    missing = [e for e in EMOTIONS if e not in present]
    if missing:
        lines += ["", f"no photos of {', '.join(missing)}: fine-tuning pulls the model towards the emotions it sees"]
    train = ["fer-train", "--config", FINETUNE_CONFIG, "--set", f"data.root={out}"]
    if n_train < FINETUNE_BATCH_SIZE:
        train += ["--set", f"train.batch_size={n_train}"]
    note = []
    if checkpoint and Path(checkpoint).suffix.lower() == ".onnx":
        note = [f"  (set model.init_from to the .pt checkpoint {checkpoint} was exported from, and model.args to "
                "its architecture's)"]
    elif checkpoint:
        train += ["--set", f"model.init_from={checkpoint}"]
    lines += ["", f"wrote {printable(out)}/train, val, heldout and {MANIFEST}", "next, fine-tune:",
              f"  {shlex.join(train)}", *note,
              "then compare the shipped and the fine-tuned model on the held-out photos:",
              f"  {shlex.join(['fer-evaluate', str(out / 'heldout')])}",
              f"  {shlex.join(['fer-evaluate', str(out / 'heldout'), '--checkpoint', FINETUNE_RUN + '/best.pt'])}"]
    return "\n".join(printable(line) for line in lines)


def command(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.out.is_symlink():  # the output goes where the link points; the link stays
        args.out = resolved(args.out)
    items, _ = labelled_photos(args.dir)  # a bad folder fails before any model loads
    check_out(args.dir, args.out, args.overwrite)
    tmp = args.out.parent / f".{args.out.name}.partial-{os.getpid()}"
    try:
        tmp.mkdir(parents=True)
    except OSError as exc:
        raise output_error(args.out, exc) from exc
    try:
        with interrupt_on_termination():  # SIGTERM and SIGHUP clean up like Ctrl-C
            manifest = crop(args, items, tmp)
            _write(tmp / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
            replace_folder(tmp, args.out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(summary(manifest, args.out, args.checkpoint))
    return 0


def main(argv: list[str] | None = None) -> int:
    return options.run(command, argv)


if __name__ == "__main__":
    sys.exit(main())
