"""Measure the whole system (detection, crop, classification) on your own labelled photos.

    fer-evaluate DIR [--json report.json] [--confusion confusion.png]

DIR holds one folder per emotion, named like FER-2013's classes (angry, disgust, fear, happy, sad, surprise,
neutral; common variants such as 'surprised' or 'happiness' work too), with photos of any size inside.
A photo counts as detected when the detector finds a face in it. The face classified is the photo's subject:
the largest of the faces the detector is about as sure of as of its best one (score >= 0.8 x the best score),
so a large false box (a poster, a hand) does not win over a clear face, and the subject wins over a sharper
face in the background. A face the model cannot read (label None: turned away, blurred, unsure) counts as not
correct end to end; coverage says how many detected faces got a label. --json lists every photo's result.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fercore.atomic import OutputError, atomic_path, check_writable, interrupt_on_termination, printable
from fercore.cli import count_of, parser, raise_all
from fercore.metrics import classification_report, save_confusion_png
from realtime.commands import options
from realtime.errors import InputError, resolved
from realtime.labelled import SUBJECT_SCORE_SHARE, labelled_photos, subject
from realtime.photos import ImageError, read_image
from realtime.pipeline import Pipeline
from realtime.settings import build_pipeline, record


def get_parser() -> argparse.ArgumentParser:
    p = parser("realtime.commands.evaluate", __doc__)
    p.add_argument("dir", type=Path, help="folder of <emotion>/<photo> files")
    p.add_argument("--json", type=Path, help="write the report, with every photo's result, as JSON")
    p.add_argument("--confusion", type=Path,
                   help="draw the confusion matrix as a picture (.png, or .pdf, .svg and the other formats "
                        "matplotlib writes)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    options.add_pipeline_args(p, smoothing=False)
    return p


def picture_formats() -> dict[str, str]:
    """The picture formats matplotlib writes: suffix (without the dot) -> description."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return FigureCanvasAgg.get_supported_filetypes()


def check_outputs(args: argparse.Namespace) -> None:
    """Before the evaluation: --json and --confusion are not inside the photo folder (they would be evaluated or
    mixed with the photos next time) nor the same file, the picture format is one matplotlib writes, and both
    can be written."""
    outputs = {name: path for name, path in (("--json", args.json), ("--confusion", args.confusion)) if path}
    root = resolved(args.dir)
    for name, out in outputs.items():
        dst = resolved(out)
        if dst == root or root in dst.parents:
            raise InputError(f"refusing to write {printable(out)} ({name}) inside the photo folder "
                                 f"{printable(args.dir)}; write it elsewhere")
    if args.json and args.confusion and resolved(args.json) == resolved(args.confusion):
        raise InputError(f"--json and --confusion name the same file {printable(args.json)}")
    if args.confusion:
        formats = picture_formats()
        suffix = args.confusion.suffix.lower().lstrip(".")
        if suffix not in formats:
            got = f"a .{suffix} file" if suffix else "a name without a suffix"
            raise InputError(f"--confusion: cannot draw a picture as {got} ({printable(args.confusion)}); "
                                 f"use .png, .pdf or .svg (matplotlib writes: {', '.join(sorted(formats))})")
    for out in outputs.values():
        check_writable(out)


def score_photo(pipe: Pipeline, index: int, path: Path, emotion: str) -> dict:
    """One labelled photo through the pipeline: its subject's label and whether it is right, or why there is
    none ("unreadable: ...", "no face found", or the reason the model cannot read the face)."""
    shown = printable(path)
    entry = {"path": shown, "true": emotion, "predicted": None, "correct": False, "confidence": None,
             "score": None, "box": None, "faces": 0, "reason": None}
    try:
        image = read_image(path)
    except ImageError as exc:
        print(f"warning: skipped {exc}", file=sys.stderr)
        entry["reason"] = f"unreadable: {exc}"
        return entry
    faces = pipe.process(image, index, None, source=shown).faces
    entry["faces"] = len(faces)
    if not faces:
        entry["reason"] = "no face found"
        return entry
    face = subject(faces)
    entry.update(confidence=round(face.confidence, 4), score=round(face.score, 4), box=list(face.box))
    if face.label is None:  # the model cannot read this face: no guess
        entry["reason"] = face.reason or "uncertain"
        return entry
    entry.update(predicted=face.label, correct=face.label == emotion)
    return entry


def evaluate(args: argparse.Namespace) -> dict:
    items, ignored = labelled_photos(args.dir)
    settings = options.settings_from_args(args)
    with build_pipeline(settings, "photo") as pipe:
        classes = pipe.classes
        unknown = sorted({e for _, e in items} - set(classes))
        if unknown:
            raise InputError(f"the model does not know the classes {', '.join(unknown)} (it has {classes})")
        results = [score_photo(pipe, i, path, emotion)
                   for i, (path, emotion) in enumerate(tqdm(items, unit="photo", disable=args.no_progress))]
        run_settings = record(settings, "photo", pipe)
    labelled = [r for r in results if r["predicted"] is not None]
    unreadable = [r["path"] for r in results if (r["reason"] or "").startswith("unreadable")]
    undetected = [r["path"] for r in results if r["reason"] == "no face found"]
    uncertain = [r["path"] for r in results if r["faces"] and r["predicted"] is None]
    report = classification_report(np.asarray([classes.index(r["true"]) for r in labelled], dtype=np.int64),
                                   np.asarray([classes.index(r["predicted"]) for r in labelled], dtype=np.int64),
                                   classes)
    readable = len(items) - len(unreadable)
    detected = readable - len(undetected)
    correct = int(np.trace(np.asarray(report["confusion_matrix"])))
    return {"dir": printable(args.dir), "settings": run_settings, "face_choice": "largest face with score >= "
            f"{SUBJECT_SCORE_SHARE:g} x the photo's best score",
            "photos": len(items), "readable": readable, "detected": detected, "labelled": len(labelled),
            "detection_rate": detected / readable if readable else 0.0,
            "coverage": len(labelled) / detected if detected else 0.0,
            # accuracy: of the photos whose face got a label; end_to_end_accuracy counts a missed face, and one
            # the model could not read, as wrong
            "accuracy": report["accuracy"], "end_to_end_accuracy": correct / readable if readable else 0.0,
            "report": report, "undetected": undetected, "uncertain": uncertain, "unreadable": unreadable,
            "ignored": ignored, "results": results}


def _listing(title: str, paths: list[str], limit: int = 20) -> list[str]:
    if not paths:
        return []
    lines = ["", title] + [f"  {p}" for p in paths[:limit]]
    if len(paths) > limit:
        lines.append(f"  ... and {len(paths) - limit} more (all in --json)")
    return lines


def format_result(r: dict) -> str:
    report = r["report"]
    classes = report["classes"]
    lines = [f"{r['dir']}: {count_of(r['photos'], 'photos')}, {r['readable']} readable, faces found in {r['detected']} "
             f"(detection rate {r['detection_rate']:.1%}), labelled {r['labelled']} (coverage {r['coverage']:.1%})",
             f"accuracy {r['accuracy']:.1%} of labelled faces, {r['end_to_end_accuracy']:.1%} end to end (a missed "
             f"or unreadable face counts as wrong), macro-F1 {report['macro_f1']:.3f}",
             "", "confusion matrix (rows: true, columns: predicted)",
             f"{'':>10}" + "".join(f"{c[:7]:>8}" for c in classes)]
    for c, row in zip(classes, report["confusion_matrix"]):
        lines.append(f"{c:>10}" + "".join(f"{n:8d}" for n in row))
    lines += _listing(f"no face found in {count_of(len(r['undetected']), 'photos')} (try --detector full for small "
                      "faces):", r["undetected"])
    reasons = {e["path"]: e["reason"] for e in r["results"]}
    lines += _listing(f"a face the model cannot read in {count_of(len(r['uncertain']), 'photos')} (no label):",
                      [f"{p} ({reasons[p]})" for p in r["uncertain"]])
    if r["ignored"]:
        lines += ["", f"{count_of(len(r['ignored']), 'files')} that are not photos were left out (listed under "
                      "'ignored' in --json)"]
    return "\n".join(lines)


def write_outputs(args: argparse.Namespace, result: dict) -> None:
    """Write --json and --confusion, each on its own; raise what failed after trying both."""
    failures: list[Exception] = []
    if args.json:
        try:
            with atomic_path(args.json) as tmp:
                tmp.write_text(json.dumps(result, indent=2) + "\n")
            print(f"wrote {printable(args.json)}")
        except OutputError as exc:
            failures.append(exc)
    if args.confusion:
        try:
            save_confusion_png(result["report"]["confusion_matrix"], result["report"]["classes"], args.confusion,
                               title=f"{args.dir.name}: accuracy {result['accuracy']:.1%}")
            print(f"wrote {printable(args.confusion)}")
        except OutputError as exc:
            failures.append(exc)
    raise_all(failures)


def command(argv: list[str] | None = None) -> int:
    """0 when every photo was read; 1 when some could not be (they are listed, and left out of every figure)."""
    args = get_parser().parse_args(argv)
    check_outputs(args)
    with interrupt_on_termination():  # SIGTERM and SIGHUP clean up like Ctrl-C
        result = evaluate(args)
        print(format_result(result))
        write_outputs(args, result)
    if result["unreadable"]:
        print(f"incomplete: {len(result['unreadable'])} of {count_of(result['photos'], 'photos')} could not be read "
              "(listed above); the figures count the others only", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return options.run(command, argv)


if __name__ == "__main__":
    sys.exit(main())
