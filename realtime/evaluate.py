"""Measure the whole system (detection, crop, classification) on your own labelled photos.

    python -m realtime.evaluate DIR [--json report.json] [--confusion confusion.png]

DIR holds one folder per emotion, named like FER-2013's classes (angry, disgust, fear, happy, sad, surprise,
neutral; common variants such as 'surprised' or 'happiness' work too), with photos of any size inside.
A photo counts as detected when the detector finds a face in it; its largest face is the one classified.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fercore.atomic import atomic_path
from fercore.classes import EMOTIONS, UnknownEmotionError, class_index
from realtime import cli
from realtime.photos import ImageError, list_images, read_image
from fercore.metrics import classification_report, save_confusion_png


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m realtime.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", type=Path, help="folder of <emotion>/<photo> files")
    p.add_argument("--json", type=Path, help="write the report as JSON")
    p.add_argument("--confusion", type=Path, help="write the confusion matrix as a PNG picture")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    cli.add_pipeline_args(p, smoothing=False)
    return p.parse_args(argv)


def labelled_photos(root: Path) -> list[tuple[Path, str]]:
    """(photo, emotion) for every photo in the emotion folders of ``root``."""
    if not root.is_dir():
        raise cli.InputError(f"not a folder: {root}")
    items = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            emotion = EMOTIONS[class_index(folder.name)]
        except UnknownEmotionError as exc:
            raise cli.InputError(f"{root}: {exc}") from exc
        items += [(photo, emotion) for photo in list_images(folder)]
    if not items:
        raise cli.InputError(f"no photos in {root}/<emotion>/ folders (e.g. {root}/happy/photo.jpg)")
    return items


def evaluate(args: argparse.Namespace) -> dict:
    items = labelled_photos(args.dir)
    labels, preds, undetected, unreadable = [], [], [], []
    with cli.pipeline_from_args(args, video=False) as pipe:
        classes = pipe.classes
        unknown = sorted({e for _, e in items} - set(classes))
        if unknown:
            raise cli.InputError(f"the model does not know the classes {', '.join(unknown)} (it has {classes})")
        for i, (path, emotion) in enumerate(tqdm(items, unit="photo", disable=args.no_progress)):
            try:
                image = read_image(path)
            except ImageError as exc:
                print(f"warning: skipped {exc}", file=sys.stderr)
                unreadable.append(str(path))
                continue
            faces = pipe.process(image, i, None, source=str(path)).faces
            if not faces:
                undetected.append(str(path))
                continue
            face = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
            labels.append(classes.index(emotion))
            preds.append(classes.index(face.label))
        run_settings = cli.settings(args, pipe)
    report = classification_report(np.asarray(labels, dtype=np.int64), np.asarray(preds, dtype=np.int64), classes)
    readable = len(items) - len(unreadable)
    correct = int(np.trace(np.asarray(report["confusion_matrix"])))
    return {"dir": str(args.dir), "settings": run_settings, "photos": len(items), "readable": readable,
            "detected": len(labels), "detection_rate": len(labels) / readable if readable else 0.0,
            # accuracy: of the photos with a face found; end_to_end_accuracy counts a missed face as wrong
            "accuracy": report["accuracy"], "end_to_end_accuracy": correct / readable if readable else 0.0,
            "report": report, "undetected": undetected, "unreadable": unreadable}


def format_result(r: dict) -> str:
    report = r["report"]
    classes = report["classes"]
    lines = [f"{r['dir']}: {r['photos']} photos, {r['readable']} readable, faces found in {r['detected']} "
             f"(detection rate {r['detection_rate']:.1%})",
             f"accuracy {r['accuracy']:.1%} of photos with a face, {r['end_to_end_accuracy']:.1%} end to end, "
             f"macro-F1 {report['macro_f1']:.3f}",
             "", "confusion matrix (rows: true, columns: predicted)",
             f"{'':>10}" + "".join(f"{c[:7]:>8}" for c in classes)]
    for c, row in zip(classes, report["confusion_matrix"]):
        lines.append(f"{c:>10}" + "".join(f"{n:8d}" for n in row))
    if r["undetected"]:
        lines += ["", f"no face found in {len(r['undetected'])} photos (try --detector full for small faces):"]
        lines += [f"  {p}" for p in r["undetected"][:20]]
        if len(r["undetected"]) > 20:
            lines.append(f"  ... and {len(r['undetected']) - 20} more (all in --json)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = evaluate(args)
    print(format_result(result))
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n")
    if args.confusion:
        save_confusion_png(result["report"]["confusion_matrix"], result["report"]["classes"], args.confusion,
                           title=f"{args.dir.name}: accuracy {result['accuracy']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
