"""How well each face detector finds the faces a person can read, on hand-labelled photos and video frames:

    python -m tools.detector_eval [--media DIR] [--detectors short full ...] [--thresholds 0.3 0.5 ...]
                                     [--json report.json] [--details]

The labels are realtime/face_boxes.json: every readable face in the photos of ../shared/media and in 14 frames of
its videos, boxed by hand (brows to chin, ear to ear, like MediaPipe's boxes); faces too blurred or dark to read
are marked "hard". Each detector runs on every image in IMAGE mode at each confidence threshold, and reports:

- recall: the share of readable faces matched by a detection. A detection (clipped to the frame) matches a face
  when their boxes overlap by IoU >= --iou (default 0.4); detections are matched best score first, one face each.
- false positives: detections that match no face, per image and in all; a detection on a hard face is neither
  found nor false.
- ms per frame: the median over the images of one detect call (colour conversion, the model, a photo's
  padded second look where it has one), each image timed --repeats times and its fastest kept, so that other work on the
  machine disturbs it less.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from tqdm import tqdm

from fercore import cli as shared
from fercore.atomic import atomic_path
from fercore.boxes import Box, clip_box, iou
from fercore.paths import DETECTOR_MODELS, ROOT, SHARED_FER, SHARED_MEDIA
from realtime.detector import DETECTORS, Detection, DetectorError, FaceDetector
from realtime.photos import ImageError, read_image
from realtime.video_io import VideoError, VideoReader

LABELS = ROOT / "realtime" / "face_boxes.json"
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
MATCH_IOU = 0.4  # MediaPipe's two models box the same face up to ~1.3x apart; 0.4 accepts both, not a neighbour


class LabelsError(ValueError):
    """The labels file is missing or malformed, or the media it names cannot be read."""


@dataclass
class LabelledImage:
    media: str  # path relative to the media folder
    frame: int | None  # frame index in a video, None for a photo
    size: tuple[int, int]  # width, height
    faces: list[Box]  # readable faces
    hard: list[Box] = field(default_factory=list)  # faces too blurred, dark or turned away to read

    @property
    def name(self) -> str:
        return self.media if self.frame is None else f"{self.media}#{self.frame}"


def load_labels(path: Path = LABELS) -> list[LabelledImage]:
    """The labelled images of a face_boxes.json file; LabelsError names what is wrong."""
    try:
        doc = json.loads(Path(path).read_text())
        images = []
        for rec in doc["images"]:
            faces = [(tuple(f["box"]), bool(f.get("hard", False))) for f in rec["faces"]]
            w, h = rec["size"]
            for box, _ in faces:
                if (len(box) != 4 or not all(isinstance(v, int) for v in box)
                        or not (0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h)):
                    raise LabelsError(f"{path}: {rec['media']}: a box must be 4 integers inside the {w}x{h} image, "
                                      f"x0 < x1, y0 < y1: {list(box)}")
            images.append(LabelledImage(rec["media"], rec.get("frame"), tuple(rec["size"]),
                                        [b for b, hard in faces if not hard], [b for b, hard in faces if hard]))
    except FileNotFoundError:
        raise LabelsError(f"labels not found: {path}") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise LabelsError(f"{path} is not a face-boxes file ({type(exc).__name__}: {exc})") from None
    return images


def load_media(images: list[LabelledImage], media: Path) -> list[np.ndarray]:
    """The BGR frames of the labelled images: photos read as the app reads them, video frames decoded in order."""
    if not media.is_dir():
        raise LabelsError(f"media folder not found: {media} (the shared media sits beside the checkout; or --media)")
    wanted: dict[str, set[int]] = {}
    for im in images:
        if im.frame is not None:
            wanted.setdefault(im.media, set()).add(im.frame)
    frames: dict[tuple[str, int], np.ndarray] = {}
    for video, indices in wanted.items():
        with VideoReader(media / video) as reader:
            for i, frame in enumerate(reader):
                if i in indices:
                    frames[video, i] = frame
                if i >= max(indices):
                    break
        if missing := sorted(indices - {i for v, i in frames if v == video}):
            raise LabelsError(f"{media / video} ends before frame {missing[0]}")
    out = []
    for im in images:
        image = read_image(media / im.media) if im.frame is None else frames[im.media, im.frame]
        if (image.shape[1], image.shape[0]) != im.size:
            raise LabelsError(f"{media / im.name} is {image.shape[1]}x{image.shape[0]}, the labels say "
                              f"{im.size[0]}x{im.size[1]}: not the labelled file")
        out.append(image)
    return out


@dataclass
class Match:
    found: list[Box]  # readable faces matched
    missed: list[Box]  # readable faces not matched
    false: list[tuple[Box, float]]  # detections matching nothing (box clipped to the frame, score)
    ignored: int  # detections on hard faces


def match(detections: list[tuple[Box, float]], image: LabelledImage, iou_threshold: float = MATCH_IOU) -> Match:
    """Detections (box, score) against an image's labels: best score first, each to the unmatched readable face it
    overlaps most (IoU >= iou_threshold); else ignored when it overlaps a hard face that much; else false."""
    w, h = image.size
    free = list(image.faces)
    found, false, ignored = [], [], 0
    for box, score in sorted(detections, key=lambda d: d[1], reverse=True):
        box = clip_box(box, w, h)
        best = max(free, key=lambda f: iou(box, f), default=None)
        if best is not None and iou(box, best) >= iou_threshold:
            free.remove(best)
            found.append(best)
        elif any(iou(box, f) >= iou_threshold for f in image.hard):
            ignored += 1
        else:
            false.append((box, score))
    return Match(found, free, false, ignored)


def evaluate(detector: FaceDetector, images: list[LabelledImage], frames: list[np.ndarray],
             iou_threshold: float = MATCH_IOU, repeats: int = 1, progress: tqdm | None = None) -> dict:
    """Recall, false positives and median milliseconds of one detector over the labelled images."""
    detector.detect(frames[0])  # warm-up: first-call allocations
    faces = found = false = 0
    times, misses, false_list = [], [], []
    for im, frame in zip(images, frames):
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            detections = detector.detect(frame)
            best = min(best, time.perf_counter() - start)
        times.append(best)
        m = match([(d.box, d.score) for d in detections], im, iou_threshold)
        faces += len(im.faces)
        found += len(m.found)
        false += len(m.false)
        misses += [{"image": im.name, "box": list(b)} for b in m.missed]
        false_list += [{"image": im.name, "box": list(b), "score": round(s, 3)} for b, s in m.false]
        if progress is not None:
            progress.update()
    return {"detector": detector.name, "min_confidence": detector.min_confidence, "images": len(images),
            "faces": faces, "found": found, "recall": found / faces if faces else 1.0,
            "false_positives": false, "false_positives_per_image": false / len(images),
            "ms_median": 1000 * float(np.median(times)), "missed": misses, "false": false_list}


CLOSEUP_SIZES = (96, 160, 256, 400, 640)  # the longer side of a close-up, in pixels
CLOSEUP_MARGIN = 0.1  # share of the face box added on each side: the face fills the picture, as in a face crop


def closeups(images: list[LabelledImage], frames: list[np.ndarray], sizes: tuple[int, ...] = CLOSEUP_SIZES,
             margin: float = CLOSEUP_MARGIN) -> list[tuple[LabelledImage, np.ndarray]]:
    """Each readable labelled face as a close-up: its box widened by ``margin`` per side (within the frame), cut
    out and scaled so its longer side is each of ``sizes``; with the face's box in the close-up as its label."""
    out = []
    for im, frame in zip(images, frames):
        h, w = frame.shape[:2]
        for n, (x0, y0, x1, y1) in enumerate(im.faces):
            mx, my = round((x1 - x0) * margin), round((y1 - y0) * margin)
            cx0, cy0, cx1, cy1 = max(0, x0 - mx), max(0, y0 - my), min(w, x1 + mx), min(h, y1 + my)
            crop = frame[cy0:cy1, cx0:cx1]
            for size in sizes:
                k = size / max(crop.shape[:2])
                cw, ch = max(1, round(crop.shape[1] * k)), max(1, round(crop.shape[0] * k))
                scaled = cv2.resize(crop, (cw, ch), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)
                face = (round((x0 - cx0) * k), round((y0 - cy0) * k), round((x1 - cx0) * k), round((y1 - cy0) * k))
                out.append((LabelledImage(f"{im.name}@face{n}", size, (cw, ch), [face]), scaled))
    return out


def closeup_rows(detectors: dict[str, FaceDetector], crops: list[tuple[LabelledImage, np.ndarray]],
                 iou_threshold: float = MATCH_IOU) -> list[dict]:
    """Per detector and close-up size: faces found of those there, and the close-ups with no face found."""
    rows = []
    for name, detector in detectors.items():
        for size in sorted({im.frame for im, _ in crops}):
            at = [(im, c) for im, c in crops if im.frame == size]
            missed = [im.media for im, c in at
                      if match([(d.box, d.score) for d in detector.detect(c)], im, iou_threshold).missed]
            rows.append({"detector": name, "size": size, "faces": len(at), "found": len(at) - len(missed),
                         "missed": missed})
    return rows


def format_closeups(rows: list[dict]) -> str:
    sizes = sorted({r["size"] for r in rows})
    lines = [f"close-ups (the face fills the picture; longer side in pixels): faces found of "
             f"{rows[0]['faces']}", f"{'detector':<28}" + "".join(f"{s:>7}" for s in sizes)]
    for name in dict.fromkeys(r["detector"] for r in rows):
        found = {r["size"]: r["found"] for r in rows if r["detector"] == name}
        lines.append(f"{name:<28}" + "".join(f"{found[s]:>7}" for s in sizes))
    return "\n".join(lines)


FER_CLOSEUP_SIZES = (96, 192, 400)


def fer_closeups(data: Path, n: int, seed: int = 0) -> list[np.ndarray]:
    """A fixed draw of ``n`` FER-2013 val faces, each a tight face crop (48x48, grey), as BGR images."""
    files = sorted((data / "val").glob("*/*.*"))
    if len(files) < n:
        raise LabelsError(f"--fer-closeups {n} needs {n} FER-2013 val images in {data}/val; found {len(files)}")
    chosen = [files[i] for i in np.random.default_rng(seed).choice(len(files), n, replace=False)]
    return [read_image(path) for path in chosen]


def face_in_middle(detections: list[Detection], size: int) -> bool:
    """A FER crop's face is found when a detection's centre lies in the middle half of the (square) image and it
    is at least 30% of the image wide: the face is there, not part of it."""
    return any(abs((x0 + x1) / 2 - size / 2) < size / 4 and abs((y0 + y1) / 2 - size / 2) < size / 4
               and x1 - x0 >= 0.3 * size for (x0, y0, x1, y1) in (d.box for d in detections))


def measure_fer_closeups(faces: list[np.ndarray], sizes: tuple[int, ...] = FER_CLOSEUP_SIZES) -> list[dict]:
    """Per detector and size: the share of FER val faces, scaled up to that size, in which a face is found."""
    rows = []
    with closeup_detectors() as detectors:
        for name, detector in detectors.items():
            for size in sizes:
                scaled = (cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC) for face in faces)
                found = sum(face_in_middle(detector.detect(image), size) for image in scaled)
                rows.append({"detector": name, "size": size, "faces": len(faces), "found": found})
    return rows


def format_table(rows: list[dict], iou_threshold: float) -> str:
    lines = [f"{'detector':<12} {'threshold':>9} {'recall':>7} {'found':>7} {'false pos.':>10} {'FP/image':>8} "
             f"{'ms/frame':>8}"]
    for r in rows:
        lines.append(f"{r['detector']:<12} {r['min_confidence']:>9.2f} {100 * r['recall']:>6.1f}% "
                     f"{r['found']:>3}/{r['faces']:<3} {r['false_positives']:>10} "
                     f"{r['false_positives_per_image']:>8.2f} {r['ms_median']:>8.1f}")
    lines.append(f"recall: readable faces matched at IoU >= {iou_threshold:g}; hard faces count neither way; "
                 "ms/frame: median over the images of one detect call")
    return "\n".join(lines)


@contextmanager
def closeup_detectors() -> Iterator[dict[str, FaceDetector]]:
    """The detectors the close-up tables compare: short; full without its close-up looks (the same model run from
    its file); full as photos get it."""
    with FaceDetector("short", video=False) as short, \
            FaceDetector(DETECTOR_MODELS["full"], video=False, min_confidence=DETECTORS["full"].min_confidence) \
            as plain, FaceDetector("full", video=False) as full:
        yield {"short": short, "full, no second look": plain, "full (the photo default)": full}


def measure_closeups(images: list[LabelledImage], frames: list[np.ndarray], iou_threshold: float) -> list[dict]:
    """The close-up table (closeup_detectors) on the labelled faces cut out as close-ups."""
    crops = closeups(images, frames)
    with closeup_detectors() as detectors:
        return closeup_rows(detectors, crops, iou_threshold)


def get_parser() -> argparse.ArgumentParser:
    p = shared.parser("tools.detector_eval", __doc__)
    g = p.add_argument_group("data")
    g.add_argument("--media", type=Path, default=SHARED_MEDIA,
                   help="the media folder the labels refer to (default ../shared/media beside the checkout)")
    g.add_argument("--labels", type=Path, default=LABELS, help="face boxes file (default realtime/face_boxes.json)")
    g = p.add_argument_group("what to measure")
    g.add_argument("--detectors", nargs="+", default=list(DETECTORS), metavar="NAME",
                   help=f"detectors to compare: {', '.join(DETECTORS)} or .tflite paths (default all)")
    g.add_argument("--thresholds", nargs="+", type=shared.number(0, 1), default=list(THRESHOLDS), metavar="X",
                   help=f"minimum detection scores (default {' '.join(map(str, THRESHOLDS))})")
    g.add_argument("--iou", type=shared.number(0, 1, hi_open=True), default=MATCH_IOU,
                   help=f"overlap a detection needs to match a labelled face (default {MATCH_IOU})")
    g.add_argument("--repeats", type=shared.number(1, kind=int), default=2,
                   help="times each image is detected; the fastest counts for ms/frame (default 2)")
    g = p.add_argument_group("output")
    g.add_argument("--json", type=Path, help="write every figure, with the missed faces and false positives, as JSON")
    g.add_argument("--details", action="store_true", help="list each missed face and false positive")
    g.add_argument("--closeups", action="store_true",
                   help="also cut every readable face out as a close-up at "
                        f"{', '.join(map(str, CLOSEUP_SIZES))} pixels and count the faces each detector finds "
                        "(IMAGE mode at its default threshold; 'full' with and without its padded second try)")
    g.add_argument("--fer-closeups", type=shared.number(1, kind=int), metavar="N",
                   help="also count the faces each detector finds in N FER-2013 val faces (tight 48x48 crops, a "
                        f"fixed draw) scaled to {', '.join(map(str, FER_CLOSEUP_SIZES))} pixels: close-ups the "
                        "detectors were not tuned on")
    g.add_argument("--data", type=Path, default=SHARED_FER,
                   help="FER-2013 as <split>/<emotion>/ images, for --fer-closeups (default ../shared/data/fer2013)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def command(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    images = load_labels(args.labels)
    frames = load_media(images, args.media)
    rows = []
    total = len(args.detectors) * len(args.thresholds) * len(images)
    with tqdm(total=total, unit="image", disable=args.no_progress, desc="detecting") as progress:
        for name in args.detectors:
            for threshold in args.thresholds:
                with FaceDetector(name, video=False, min_confidence=threshold) as detector:
                    rows.append(evaluate(detector, images, frames, args.iou, args.repeats, progress))
    n_faces = sum(len(im.faces) for im in images)
    print(f"{len(images)} images ({sum(im.frame is None for im in images)} photos, "
          f"{sum(im.frame is not None for im in images)} video frames), {n_faces} readable faces, "
          f"{sum(len(im.hard) for im in images)} hard; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(format_table(rows, args.iou))
    if args.details:
        for r in rows:
            for m in r["missed"]:
                print(f"{r['detector']} @{r['min_confidence']:g}: missed {m['image']} {m['box']}")
            for f in r["false"]:
                print(f"{r['detector']} @{r['min_confidence']:g}: false {f['image']} {f['box']} score {f['score']}")
    report = {"labels": str(args.labels), "media": str(args.media), "iou": args.iou, "images": len(images),
              "faces": n_faces, "results": rows}
    if args.closeups:
        report["closeups"] = measure_closeups(images, frames, args.iou)
        print(format_closeups(report["closeups"]))
    if args.fer_closeups:
        report["fer_closeups"] = measure_fer_closeups(fer_closeups(args.data, args.fer_closeups))
        print(format_closeups(report["fer_closeups"]).replace("close-ups (the face fills",
                                                               "FER-2013 val faces (a tight crop fills", 1))
    if args.json:
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(report, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    return shared.run(command, argv, (LabelsError, DetectorError, ImageError, VideoError))


if __name__ == "__main__":
    sys.exit(main())
