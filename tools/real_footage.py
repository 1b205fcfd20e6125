"""How a configuration reads real faces: the hand-labelled set realtime/real_faces.json (every face in the photos of
../shared/media and faces sampled across the frames of its three videos, each marked face or not, with the
emotion a person sees or cant_tell, and its view).

    python -m tools.real_footage [--checkpoint A.pt [B.pt ...]] [--detector full] [--min-confidence X]
                                 [--label-all] [--max-yaw DEG ...] [--json report.json]
                                 [--curves PREFIX] [--yaw]

The library pipeline (realtime.pipeline) runs on every photo, and on every frame of each video in order (with
its tracking, evidence over time and scene cuts); the labelled frames are scored. A face the pipeline reports
matches a labelled box when they overlap by IoU >= 0.4 (largest overlaps first, one each). Reported per source
and in all:

- coverage: the share of tellable faces (a face whose emotion a person can tell) that get a label (a face the
  detector misses gets none); accuracy: the share of those labels that are right;
- the same with every face labelled (no readability limits: a second run, since the limits also decide what
  each frame's reading weighs in its track's evidence);
- labels given to cant_tell faces and to non-faces (the detector's boxes on a fist, a wall, the back of a head),
  tellable faces the detector missed, and reported boxes the set does not label either way.

``--curves PREFIX`` sweeps each readability limit (max_yaw, min_sharpness, min_confidence, min_size), the others
at the model's, and writes the coverage and accuracy at each value as PREFIX.json and PREFIX.png. The detector
runs once; every later pass replays its boxes. ``--yaw`` prints the head turn that fercore.readability.head_pose
estimates from the detector's keypoints for the matched faces of each labelled view.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from tqdm import tqdm

from fercore import cli as shared
from fercore.atomic import atomic_path, write_figure
from fercore.boxes import Box, clip_box, iou
from fercore.classes import EMOTIONS
from fercore.paths import SHARED_MEDIA
from fercore.readability import RANGES, ReadabilityLimits, head_pose, sharpness
from models.preprocessing import resize_face
from realtime.classifier import EmotionClassifier, load_classifier
from realtime.detector import Detection, FaceDetector
from realtime.errors import USER_ERRORS
from realtime.faces import readable_part
from realtime.photos import read_image
from realtime.pipeline import Pipeline
from realtime.results import FrameResult
from realtime.settings import Settings
from realtime.tracking import Tracker
from realtime.video_io import VideoReader

REAL_FACES = Path(__file__).resolve().parents[1] / "realtime" / "real_faces.json"
CANT_TELL = "cant_tell"
VIEWS = ("frontal", "three_quarter", "profile")
MATCH_IOU = 0.4  # as tools.detector_eval: MediaPipe's two models box a face up to ~1.3x apart
SMOOTHING = 0.6  # what a video file gets unless told otherwise (realtime.tracking)
# The readability limits the curves sweep, and the option that sets each.
SWEPT = {"max_yaw": "--max-yaw", "min_sharpness": "--min-sharpness", "min_confidence": "--min-label-confidence",
         "min_size": "--min-face"}


class SetError(ValueError):
    """The labelled set is missing or malformed, or the media it names do not match it."""


@dataclass(frozen=True)
class LabelledFace:
    box: Box
    face: bool  # False: a detector's box on something else
    emotion: str | None = None  # one of EMOTIONS or CANT_TELL; None for a non-face
    view: str | None = None  # one of VIEWS; None for a non-face
    blurred: bool = False

    @property
    def tellable(self) -> bool:
        return self.face and self.emotion != CANT_TELL


@dataclass(frozen=True)
class LabelledImage:
    media: str  # path relative to the media folder
    frame: int | None  # frame index in a video, None for a photo
    size: tuple[int, int]  # width, height
    faces: tuple[LabelledFace, ...]

    @property
    def key(self) -> tuple[str, int | None]:
        return self.media, self.frame

    @property
    def source(self) -> str:
        """The row this image counts in: its video's file name, or the folder of a photo."""
        return Path(self.media).name if self.frame is not None else self.media.split("/")[0]


def problems(doc: dict) -> list[str]:
    """Everything wrong with a real_faces.json document, in words (empty when it is valid)."""
    out = []
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        return ["not a real-faces document: no list of images"]
    seen = set()
    for n, rec in enumerate(doc["images"]):
        where = f"images[{n}]"
        if not isinstance(rec, dict) or not isinstance(rec.get("media"), str) or not isinstance(rec.get("faces"), list):
            out.append(f"{where}: needs media and faces")
            continue
        where = rec["media"] if rec.get("frame") is None else f"{rec['media']}#{rec['frame']}"
        frame = rec.get("frame")
        if frame is not None and not (isinstance(frame, int) and not isinstance(frame, bool) and frame >= 0):
            out.append(f"{where}: frame must be a whole number >= 0")
        if (rec["media"], frame) in seen:
            out.append(f"{where}: listed twice")
        seen.add((rec["media"], frame))
        size = rec.get("size")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            out.append(f"{where}: size must be [width, height]")
            continue
        w, h = size
        for k, f in enumerate(rec["faces"]):
            out += [f"{where} face {k}: {p}" for p in _face_problems(f, w, h)]
    return out


def _face_problems(f: dict, w: int, h: int) -> list[str]:
    if not isinstance(f, dict):
        return ["not an object"]
    out = []
    box = f.get("box")
    if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int) and not isinstance(v, bool)
                                                            for v in box)
            and 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h):
        out.append(f"box must be 4 whole numbers inside the {w}x{h} image, x0 < x1, y0 < y1: {box!r}")
    if not isinstance(f.get("face"), bool):
        out.append("face must be true or false")
    elif f["face"]:
        if f.get("emotion") not in (*EMOTIONS, CANT_TELL):
            out.append(f"emotion must be one of {', '.join(EMOTIONS)} or {CANT_TELL}: {f.get('emotion')!r}")
        if f.get("view") not in VIEWS:
            out.append(f"view must be one of {', '.join(VIEWS)}: {f.get('view')!r}")
        if not isinstance(f.get("blurred", False), bool):
            out.append("blurred must be true or false")
    elif any(k in f for k in ("emotion", "view", "blurred")):
        out.append("a non-face has no emotion, view or blurred")
    unknown = set(f) - {"box", "face", "emotion", "view", "blurred", "note"}
    if unknown:
        out.append(f"unknown fields {sorted(unknown)}")
    return out


def load_set(path: Path = REAL_FACES) -> list[LabelledImage]:
    """The labelled images of a real_faces.json file; SetError lists what is wrong with it."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SetError(f"labelled set not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise SetError(f"{path} is not JSON ({exc})") from None
    if found := problems(doc):
        raise SetError(f"{path}: " + "; ".join(found[:5]) + (f" (and {len(found) - 5} more)" if len(found) > 5 else ""))
    return [LabelledImage(rec["media"], rec.get("frame"), tuple(rec["size"]),
                          tuple(LabelledFace(tuple(f["box"]), f["face"], f.get("emotion"), f.get("view"),
                                             f.get("blurred", False)) for f in rec["faces"]))
            for rec in doc["images"]]


@dataclass(frozen=True)
class Seen:
    """A face the pipeline reported: its box (clipped to the frame), its label (None: uncertain), and the head turn
    estimated from the detector's keypoints (None without keypoints)."""
    box: Box
    label: str | None
    yaw: float | None = None


def match(labelled: Iterable[Box], seen: Iterable[Box], iou_threshold: float = MATCH_IOU) -> dict[int, int]:
    """Which reported box matches which labelled box ({labelled index: reported index}): the pairs overlapping by
    at least ``iou_threshold``, largest overlap first, each box in one pair at most."""
    labelled, seen = list(labelled), list(seen)
    pairs = sorted(((iou(a, b), i, j) for i, a in enumerate(labelled) for j, b in enumerate(seen)), reverse=True)
    out: dict[int, int] = {}
    used: set[int] = set()
    for overlap, i, j in pairs:
        if overlap < iou_threshold:
            break
        if i not in out and j not in used:
            out[i] = j
            used.add(j)
    return out


@dataclass
class Tally:
    """Counts over a group of labelled faces (and, for sources, the reported boxes the set does not label)."""
    tellable: int = 0
    found: int = 0  # tellable faces matched by a reported face
    labelled: int = 0  # ... and given a label
    correct: int = 0  # ... the right one
    cant_tell: int = 0
    cant_tell_labelled: int = 0
    non_faces: int = 0
    non_faces_found: int = 0
    non_faces_labelled: int = 0
    unlabelled_boxes: int = 0  # reported boxes matching no labelled box

    @property
    def coverage(self) -> float:
        return self.labelled / self.tellable if self.tellable else 0.0

    @property
    def accuracy(self) -> float:
        return self.correct / self.labelled if self.labelled else 0.0

    @property
    def missed(self) -> int:
        return self.tellable - self.found

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "coverage": round(self.coverage, 4), "accuracy": round(self.accuracy, 4),
                "missed": self.missed}


def score(images: list[LabelledImage], seen: dict[tuple[str, int | None], list[Seen]]) -> dict[str, Tally]:
    """Tallies per source, per view and blurred (faces only), and in all ("all"), of the reported faces ``seen`` in
    each labelled image (an image missing from ``seen`` had no face reported)."""
    tallies: dict[str, Tally] = {}

    def count(groups: Iterable[str], update: Callable[[Tally], None]) -> None:
        for g in groups:
            update(tallies.setdefault(g, Tally()))

    for im in images:
        reported = seen.get(im.key, [])
        pairs = match((f.box for f in im.faces), (s.box for s in reported))
        where = (im.source, "all")
        for i, f in enumerate(im.faces):
            s = reported[pairs[i]] if i in pairs else None
            label = s.label if s is not None else None
            if not f.face:
                count(where, lambda t: _add(t, non_faces=1, non_faces_found=s is not None,
                                            non_faces_labelled=label is not None))
                continue
            groups = (*where, f"view {f.view}", *(("blurred",) if f.blurred else ()))
            if f.tellable:
                count(groups, lambda t: _add(t, tellable=1, found=s is not None, labelled=label is not None,
                                             correct=label == f.emotion))
            else:
                count(groups, lambda t: _add(t, cant_tell=1, cant_tell_labelled=label is not None))
        count(where, lambda t: _add(t, unlabelled_boxes=len(reported) - len(pairs)))
    return tallies


def _add(t: Tally, **counts: int | bool) -> None:
    for name, n in counts.items():
        setattr(t, name, getattr(t, name) + int(n))


class Replay:
    """Answers recorded on the first pass over the media and replayed on later passes: the readability limits
    change neither the detector's boxes nor the crops the model reads, so a sweep over the limits runs MediaPipe
    and the emotion model once. ``at(key)`` names the frame about to be processed; its calls are numbered."""

    def __init__(self) -> None:
        self.answers: dict[tuple, object] = {}
        self.recording = True
        self._key: tuple = ()
        self._calls = 0

    def at(self, key: tuple) -> None:
        self._key, self._calls = key, 0

    def answer(self, ask: Callable[[], object]) -> object:
        key = (*self._key, self._calls)
        self._calls += 1
        if key not in self.answers:
            if not self.recording:
                raise RuntimeError(f"nothing recorded for {key}: the pipeline asked differently on this pass")
            self.answers[key] = ask()
        return self.answers[key]


class ReplayDetector(Replay):
    """A face detector replayed (see Replay); ``last`` holds the answer of the frame's first detect call."""

    def __init__(self, detector: FaceDetector) -> None:
        super().__init__()
        self.detector = detector
        self.min_confidence = detector.min_confidence
        self.last: list[Detection] = []

    def detect(self, frame: np.ndarray, timestamp_ms: int | None = None) -> list[Detection]:
        found = self.answer(lambda: self.detector.detect(frame, timestamp_ms))
        if self._calls == 1:
            self.last = found
        return found

    def close(self) -> None:
        """Pipelines close their detector; this one stays open until ``finish``."""

    def finish(self) -> None:
        """Close the recorded detector: every later pass replays."""
        self.recording = False
        self.detector.close()


class ReplayClassifier(Replay):
    """An emotion classifier replayed (see Replay); everything but ``predict`` is the classifier's."""

    def __init__(self, classifier: EmotionClassifier) -> None:
        super().__init__()
        self.classifier = classifier

    def predict(self, gray_faces: list[np.ndarray]) -> np.ndarray:
        probs = self.answer(lambda: self.classifier.predict(gray_faces))
        if len(probs) != len(gray_faces):
            raise RuntimeError("the pipeline read other faces on this pass than on the first")
        return probs

    def __getattr__(self, name: str):
        if name == "classifier":  # not set yet (a copy being made)
            raise AttributeError(name)
        return getattr(self.classifier, name)


@dataclass
class Config:
    """One configuration of the pipeline to score."""
    limits: ReadabilityLimits | None
    margin: float | None = None
    align: bool = Settings.align
    smoothing: float = SMOOTHING


@dataclass
class Runner:
    """Runs configurations of the pipeline over the labelled media with one classifier and one detector choice."""
    images: list[LabelledImage]
    media: Path
    classifier: EmotionClassifier
    detector: str
    min_confidence: float | None
    progress: bool = True
    replays: dict[str, ReplayDetector] = field(default_factory=dict)
    model: ReplayClassifier | None = None
    measures: list[dict] = field(default_factory=list)  # per reported face of the first pass (curves' grid)

    def replay(self, media: str, video: bool) -> ReplayDetector:
        name = media if video else "photos"
        if name not in self.replays:
            self.replays[name] = ReplayDetector(FaceDetector(self.detector, video=video,
                                                             min_confidence=self.min_confidence))
        return self.replays[name]

    def run(self, config: Config, desc: str = "") -> dict[tuple[str, int | None], list[Seen]]:
        """The faces the pipeline reports in every labelled image under ``config``."""
        first = self.model is None
        if first:
            self.model = ReplayClassifier(self.classifier)
        seen: dict[tuple[str, int | None], list[Seen]] = {}
        photos = [im for im in self.images if im.frame is None]
        videos: dict[str, set[int]] = {}
        for im in self.images:
            if im.frame is not None:
                videos.setdefault(im.media, set()).add(im.frame)
        total = len(photos) + sum(max(frames) + 1 for frames in videos.values())
        with tqdm(total=total, unit="frame", desc=desc, disable=not self.progress, leave=False) as bar:
            for im in photos:
                frame = read_image(self.media / im.media)
                pipe, replay = self._pipeline(config, im.media, video=False)
                replay.at(im.key)
                self.model.at(im.key)
                seen[im.key] = self._seen(pipe, replay, frame, pipe.process(frame, 0), first)
                bar.update()
            for video, frames in videos.items():
                pipe, replay = self._pipeline(config, video, video=True)
                with VideoReader(self.media / video) as reader:
                    fps = reader.info.fps or 25.0
                    for i, frame in enumerate(reader):
                        replay.at((video, i))
                        self.model.at((video, i))
                        result = pipe.process(frame, i, i / fps)
                        if i in frames:
                            seen[video, i] = self._seen(pipe, replay, frame, result, first)
                        bar.update()
                        if i >= max(frames):
                            break
                if missing := sorted(frames - {i for v, i in seen if v == video}):
                    raise SetError(f"{self.media / video} ends before frame {missing[0]}")
        if first:
            self.close()
        return seen

    def _pipeline(self, config: Config, media: str, video: bool) -> tuple[Pipeline, ReplayDetector]:
        replay = self.replay(media, video)
        tracker = Tracker(smoothing=config.smoothing if video else 0.0)
        return Pipeline(replay, self.model, tracker, margin=config.margin, limits=config.limits,
                        align=config.align), replay

    def _seen(self, pipe: Pipeline, replay: ReplayDetector, frame: np.ndarray, result: FrameResult,
              measure: bool) -> list[Seen]:
        """The reported faces of a frame, each with the head turn of the detection it came from."""
        h, w = frame.shape[:2]
        by_box = {clip_box(d.box, w, h): d for d in replay.last if readable_part(d.box, w, h)}
        out = []
        for r in result.faces:
            d = by_box.get(tuple(r.box))
            yaw = head_pose(d.keypoints)[0] if d is not None and len(d.keypoints) >= 6 else None
            out.append(Seen(tuple(r.box), r.label, yaw))
            if measure and d is not None:
                crop = resize_face(pipe.face_crop(frame, d), self.classifier.preprocessing.size)
                self.measures.append({"max_yaw": abs(yaw) if yaw is not None else None,
                                      "min_size": min(r.box[2] - r.box[0], r.box[3] - r.box[1]),
                                      "min_sharpness": sharpness(crop), "min_confidence": float(max(
                                          r.probabilities.values()))})
        return out

    def close(self) -> None:
        """Close the detectors and stop recording: every later pass replays."""
        for replay in self.replays.values():
            if replay.recording:
                replay.finish()
        if self.model is not None:
            self.model.recording = False


def sweep_values(name: str, measures: list[dict], model: ReadabilityLimits) -> list[float]:
    """The values a limit is swept over: for head turn every 5 degrees, for label confidence every 0.05; for size
    and sharpness the deciles of the set's reported faces (where coverage changes); each with the model's own."""
    if name == "max_yaw":
        values = list(np.arange(10.0, 90.1, 5.0))
    elif name == "min_confidence":
        values = list(np.round(np.arange(0.0, 0.91, 0.05), 2))
    else:
        found = [m[name] for m in measures if m.get(name) is not None]
        values = [0.0] + [round(float(v), 1) for v in np.quantile(found, np.linspace(0.1, 0.9, 9))] if found else [0.0]
    lo, hi = RANGES[name]
    return sorted({float(min(max(v, lo), hi)) for v in [*values, getattr(model, name)]})


def curves(runner: Runner, images: list[LabelledImage], base: Config, model: ReadabilityLimits) -> dict:
    """Coverage and accuracy on the whole set as each limit in SWEPT is swept, the others at ``model``'s."""
    out = {"model_limits": model.to_dict(), "curves": {}}
    for name in SWEPT:
        points = []
        for value in sweep_values(name, runner.measures, model):
            config = dataclasses.replace(base, limits=dataclasses.replace(model, **{name: value}))
            t = score(images, runner.run(config, desc=f"{name} {value:g}"))["all"]
            points.append({"value": value, "coverage": round(t.coverage, 4), "accuracy": round(t.accuracy, 4),
                           "labelled": t.labelled, "tellable": t.tellable,
                           "cant_tell_labelled": t.cant_tell_labelled, "non_faces_labelled": t.non_faces_labelled})
        out["curves"][name] = points
    return out


# The rule that picks the shipped limits, fixed before measuring: of the grid below, the limits with the highest
# accuracy on the set's tellable faces among those labelling at least MIN_COVERAGE of them (ties: more coverage,
# then the larger head turn); face size and sharpness stay at the model's (they cost no coverage on the set).
GRID = {"max_yaw": (30.0, 40.0, 45.0, 50.0, 55.0, 60.0, 70.0, 90.0),
        "min_confidence": (0.25, 0.3, 0.35, 0.4, 0.45, 0.5)}
MIN_COVERAGE = 0.70


def choose_limits(runner: Runner, images: list[LabelledImage], base: Config, model: ReadabilityLimits) -> dict:
    """Every point of GRID scored on the set, and the one the rule above picks (None when none reaches
    MIN_COVERAGE)."""
    points = []
    for yaw in GRID["max_yaw"]:
        for confidence in GRID["min_confidence"]:
            limits = dataclasses.replace(model, max_yaw=yaw, min_confidence=confidence)
            t = score(images, runner.run(dataclasses.replace(base, limits=limits), desc=f"{yaw:g} {confidence:g}"))
            points.append({"max_yaw": yaw, "min_confidence": confidence, "coverage": round(t["all"].coverage, 4),
                           "accuracy": round(t["all"].accuracy, 4), "labelled": t["all"].labelled,
                           "cant_tell_labelled": t["all"].cant_tell_labelled,
                           "non_faces_labelled": t["all"].non_faces_labelled})
    eligible = [p for p in points if p["coverage"] >= MIN_COVERAGE]
    best = max(eligible, key=lambda p: (p["accuracy"], p["coverage"], p["max_yaw"]), default=None)
    return {"rule": f"highest accuracy with coverage >= {MIN_COVERAGE:g}; ties: coverage, then max_yaw",
            "grid": points, "chosen": best}


def plot_curves(data: dict, label_all_accuracy: float, path: Path) -> None:
    """One panel per limit: coverage and accuracy against its value, the model's value and label-all marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for ax, (name, points) in zip(axes.flat, data["curves"].items()):
        x = [p["value"] for p in points]
        ax.plot(x, [100 * p["coverage"] for p in points], "o-", label="coverage (tellable faces labelled)")
        ax.plot(x, [100 * p["accuracy"] for p in points], "s-", label="accuracy of the labels given")
        ax.axhline(100 * label_all_accuracy, color="gray", ls=":", label="accuracy, every face labelled")
        ax.axvline(data["model_limits"][name], color="red", ls="--", lw=1, label="the model's limit")
        ax.set_title(f"{name} ({SWEPT[name]})")
        ax.set_xlabel(name)
        ax.set_ylabel("%")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8, loc="lower right")
    fig.suptitle("Real footage (realtime/real_faces.json): each limit swept, the others at the model's")
    fig.tight_layout()
    write_figure(fig, path, dpi=110)
    plt.close(fig)


def yaw_by_view(images: list[LabelledImage], seen: dict[tuple[str, int | None], list[Seen]]) -> dict:
    """The estimated head turn (absolute degrees) of the matched faces of each labelled view."""
    by_view: dict[str, list[float]] = {v: [] for v in VIEWS}
    no_keypoints = {v: 0 for v in VIEWS}
    for im in images:
        reported = seen.get(im.key, [])
        pairs = match((f.box for f in im.faces), (s.box for s in reported))
        for i, f in enumerate(im.faces):
            if f.face and i in pairs:
                yaw = reported[pairs[i]].yaw
                if yaw is None:
                    no_keypoints[f.view] += 1
                else:
                    by_view[f.view].append(abs(yaw))
    out = {}
    for view, yaws in by_view.items():
        q = np.percentile(yaws, [0, 10, 25, 50, 75, 90, 100]) if yaws else [float("nan")] * 7
        out[view] = {"faces": len(yaws), "no_keypoints": no_keypoints[view],
                     **{k: round(float(v), 1) for k, v in zip(("min", "p10", "p25", "median", "p75", "p90", "max"), q)},
                     "over_30": sum(y > 30 for y in yaws), "over_60": sum(y > 60 for y in yaws)}
    return out


def format_yaw(table: dict) -> str:
    lines = [f"{'view':<14} {'faces':>5} {'min':>6} {'p10':>6} {'p25':>6} {'median':>6} {'p75':>6} {'p90':>6} "
             f"{'max':>6} {'>30':>4} {'>60':>4}"]
    for view, r in table.items():
        lines.append(f"{view:<14} {r['faces']:>5} {r['min']:>6.1f} {r['p10']:>6.1f} {r['p25']:>6.1f} "
                     f"{r['median']:>6.1f} {r['p75']:>6.1f} {r['p90']:>6.1f} {r['max']:>6.1f} {r['over_30']:>4} "
                     f"{r['over_60']:>4}")
    lines.append("|yaw| in degrees, fercore.readability.head_pose on the detector's keypoints of the matched faces")
    return "\n".join(lines)


def format_table(gated: dict[str, Tally], label_all: dict[str, Tally], title: str) -> str:
    """The console table: one row per source, view and blurred faces, and all."""
    def pct(x: float) -> str:
        return f"{100 * x:.1f}%"

    lines = [title, f"{'':<24} {'tellable':>8} {'missed':>6} {'labelled':>8} {'coverage':>8} {'accuracy':>8} | "
                    f"{'all: cov.':>9} {'accuracy':>8} | {'cant_tell lab.':>14} {'non-faces lab.':>14} "
                    f"{'unlabelled':>10}"]
    sources = sorted((g for g in gated if g != "all" and not g.startswith("view ") and g != "blurred"),
                     key=lambda g: (g.endswith(".mp4"), g))
    for g in [*sources, *(f"view {v}" for v in VIEWS), "blurred", "all"]:
        if g not in gated:
            continue
        t, a = gated[g], label_all.get(g, Tally())
        whole = g in sources or g == "all"  # non-faces and unlabelled boxes belong to no view
        lines.append(f"{g:<24} {t.tellable:>8} {t.missed:>6} {t.labelled:>8} {pct(t.coverage):>8} "
                     f"{pct(t.accuracy):>8} | {pct(a.coverage):>9} {pct(a.accuracy):>8} | "
                     f"{f'{t.cant_tell_labelled}/{t.cant_tell}':>14} "
                     f"{f'{t.non_faces_labelled}/{t.non_faces}' if whole else '':>14} "
                     f"{t.unlabelled_boxes if whole else '':>10}")
    lines.append("coverage: tellable faces given a label; accuracy: of the labels given; all: every face labelled "
                 "(no limits); missed: tellable faces the detector did not find; lab.: labelled; unlabelled: "
                 "reported boxes the set labels neither way")
    return "\n".join(lines)


def get_parser() -> argparse.ArgumentParser:
    p = shared.parser("tools.real_footage", __doc__)
    g = p.add_argument_group("data")
    g.add_argument("--media", type=Path, default=SHARED_MEDIA,
                   help="the media folder the set refers to (default ../shared/media beside the checkout)")
    g.add_argument("--set", type=Path, default=REAL_FACES, dest="labels",
                   help="the labelled set (default realtime/real_faces.json)")
    g = p.add_argument_group("the configuration scored")
    g.add_argument("--checkpoint", nargs="+", default=None, metavar="MODEL",
                   help="emotion model: a shipped model's name (default, fast, accurate), a .pt or .onnx file, or "
                        "several .pt checkpoints run as an ensemble (default: default)")
    g.add_argument("--detector", default="full", help="face detector: a name (realtime.detector.DETECTORS) or a "
                                                      ".tflite path (default full, as for video files and photos)")
    g.add_argument("--min-confidence", type=shared.number(0, 1), default=None, dest="detector_min_confidence",
                   help="the detector's threshold (default: the detector's own)")
    g.add_argument("--smoothing", type=shared.number(0, 1, hi_open=True), default=SMOOTHING,
                   help=f"share of a track's past a video frame keeps (default {SMOOTHING}, as for video files)")
    g.add_argument("--align", action=argparse.BooleanOptionalAction, default=Settings.align,
                   help="turn faces tilted past 15 degrees upright by their eye line before reading them")
    g = p.add_argument_group("uncertain faces (default: the limits stored with the model)")
    d = ReadabilityLimits()
    for option, limit, what in (("--max-yaw", "max_yaw", "most degrees a head may be turned away"),
                                ("--max-roll", "max_roll", "most degrees a head may be tilted"),
                                ("--min-face", "min_size", "smallest face (pixels, the shorter side of its box)"),
                                ("--min-sharpness", "min_sharpness", "least sharpness of the model's crop"),
                                ("--min-label-confidence", "min_confidence",
                                 "least calibrated probability of the top emotion")):
        g.add_argument(option, type=shared.number(*RANGES[limit]), default=None, dest=limit,
                       help=f"{what} that is labelled (default: the model's; {getattr(d, limit):g} for a model "
                            "that stores none)")
    g.add_argument("--label-all", action="store_true", help="label every face, however hard to read")
    g = p.add_argument_group("output")
    g.add_argument("--json", type=Path, help="write every figure and each labelled face's outcome as JSON")
    g.add_argument("--curves", type=Path, metavar="PREFIX",
                   help="sweep each readability limit and write PREFIX.json and PREFIX.png")
    g.add_argument("--yaw", action="store_true", help="print the estimated head turn of the faces of each view")
    g.add_argument("--choose", type=Path, metavar="JSON",
                   help=f"score the grid of head-turn and label-confidence limits, pick by the rule (accuracy with "
                        f"coverage >= {MIN_COVERAGE:g}) and write the grid and the choice as JSON")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def limits_from_args(args: argparse.Namespace, model: ReadabilityLimits) -> ReadabilityLimits | None:
    """The model's limits, each overridden by its option where given; None with --label-all."""
    if args.label_all:
        return None
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(ReadabilityLimits)
             if getattr(args, f.name) is not None}
    return dataclasses.replace(model, **given)


def outcomes(images: list[LabelledImage], gated: dict, label_all: dict) -> list[dict]:
    """Each labelled box with what the pipeline said there, with its limits and with every face labelled."""
    out = []
    for im in images:
        found = {}
        for name, seen in (("label", gated), ("label_all", label_all)):
            reported = seen.get(im.key, [])
            pairs = match((f.box for f in im.faces), (s.box for s in reported))
            found[name] = {i: reported[j] for i, j in pairs.items()}
        for i, f in enumerate(im.faces):
            s, a = found["label"].get(i), found["label_all"].get(i)
            out.append({"media": im.media, "frame": im.frame, "box": list(f.box), "face": f.face,
                        "emotion": f.emotion, "view": f.view, "found": s is not None,
                        "label": s.label if s else None, "label_all": a.label if a else None,
                        "yaw": None if a is None or a.yaw is None else round(a.yaw, 1)})
    return out


def command(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    images = load_set(args.labels)
    if not args.media.is_dir():
        raise SetError(f"media folder not found: {args.media} (the shared media sits beside the checkout; or --media)")
    classifier = load_classifier(args.checkpoint)
    limits = limits_from_args(args, classifier.limits)
    runner = Runner(images, args.media, classifier, args.detector, args.detector_min_confidence, not args.no_progress)
    try:
        base = Config(limits, align=args.align, smoothing=args.smoothing)
        gated_seen = runner.run(base, desc="with limits" if limits else "every face labelled")
        all_seen = runner.run(dataclasses.replace(base, limits=None), desc="every face labelled") if limits \
            else gated_seen
        gated, label_all = score(images, gated_seen), score(images, all_seen)
        checkpoint = " + ".join(args.checkpoint) if args.checkpoint else "weights/default.pt"
        threshold = next(iter(runner.replays.values())).min_confidence
        detector = f"{args.detector} at {threshold:g}"
        precision = getattr(classifier, "precision", "fp32")
        title = (f"{checkpoint} ({precision}), detector {detector}, "
                 + ("every face labelled" if limits is None else
                    "limits " + ", ".join(f"{k} {v:g}" for k, v in limits.to_dict().items())))
        print(format_table(gated, label_all, title))
        report = {"set": str(args.labels), "checkpoint": args.checkpoint or ["weights/default.pt"],
                  "precision": precision,
                  "detector": args.detector, "detector_min_confidence": threshold,
                  "limits": None if limits is None else limits.to_dict(), "align": args.align,
                  "smoothing": args.smoothing, "match_iou": MATCH_IOU,
                  "scores": {g: t.to_dict() for g, t in gated.items()},
                  "label_all": {g: t.to_dict() for g, t in label_all.items()}}
        if args.yaw:
            report["yaw_by_view"] = yaw_by_view(images, all_seen)
            print(format_yaw(report["yaw_by_view"]))
        if args.curves:
            data = curves(runner, images, base, classifier.limits)
            data["label_all"] = label_all["all"].to_dict()
            json_path, png_path = Path(f"{args.curves}.json"), Path(f"{args.curves}.png")
            with atomic_path(json_path) as tmp:
                tmp.write_text(json.dumps(data, indent=1) + "\n")
            plot_curves(data, label_all["all"].accuracy, png_path)
            print(f"curves: {json_path}, {png_path}")
        if args.choose:
            chosen = choose_limits(runner, images, base, classifier.limits)
            with atomic_path(args.choose) as tmp:
                tmp.write_text(json.dumps(chosen, indent=1) + "\n")
            print(f"chosen ({chosen['rule']}): {chosen['chosen']}")
        if args.json:
            report["faces"] = outcomes(images, gated_seen, all_seen)
            with atomic_path(args.json) as tmp:
                tmp.write_text(json.dumps(report, indent=1) + "\n")
    finally:
        runner.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    return shared.run(command, argv, (SetError, *USER_ERRORS))


if __name__ == "__main__":
    sys.exit(main())
