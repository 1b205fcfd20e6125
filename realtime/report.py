"""A per-track emotion timeline and report drawn from a video's results file, so it re-draws without re-running.

    write_report("results.json", "report/")  ->  report/index.html, overview.png, track_<id>.png,
                                                  face_<id>.jpg, summary.csv

A track is one face followed from frame to frame until it leaves or the scene cuts (realtime.tracking), so one
person may have several tracks. Each track's timeline shows two things the results file holds:
- the *evidence*: the track's probabilities as recorded per frame, the quality-weighted average of its readings
  that the label comes from (solid lines);
- the *readings*: what each frame alone showed (dots), recovered from the evidence, each frame's ``weight`` and
  the run's ``smoothing`` by undoing the tracker's update (``frame_readings``); a frame whose weight is too small
  for its reading to survive the file's rounding has none.
Stretches where the face is uncertain (no label) are shaded grey, stretches where its label is held through a
view that cannot be read are hatched, and scene cuts are vertical lines. The thumbnail of each track is its
clearest face (a readable view of the highest weight), cut from the source video when that can be read.

The HTML page holds every image as a data URI and no script: it opens from disk, offline, as one file.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from fercore.atomic import atomic_path, printable
from fercore.cli import count_of
from realtime.errors import InputError
from realtime.overlay import emotion_color
from realtime.results import SCHEMA
from realtime.tracking import MIN_WEIGHT
from realtime.video_io import VideoError, VideoReader

MIN_SECONDS = 0.5  # tracks seen for less get a table row but no timeline (mostly a detector's brief false faces)
READING_ERROR = 0.05  # a recovered reading whose rounding error could exceed this is left out
THUMB_HEIGHT = 112
_ROUNDING = 5e-5  # the results file rounds probabilities and weights to 4 decimals


@dataclass
class TrackSeries:
    """One track's faces in frame order, as arrays."""
    track: int
    frames: np.ndarray  # frame index of each face
    times: np.ndarray  # seconds
    evidence: np.ndarray  # (n, classes): the recorded probabilities
    readings: np.ndarray  # (n, classes): what each frame alone showed; NaN rows where it cannot be recovered
    labels: list[str | None]
    held: np.ndarray
    weights: np.ndarray
    boxes: list[list[int]]

    @property
    def uncertain(self) -> np.ndarray:
        return np.array([label is None for label in self.labels])

    def clearest(self) -> int:
        """Index of the clearest face: labelled and not held first, then the highest weight, then the largest."""
        def key(i: int) -> tuple:
            x0, y0, x1, y1 = self.boxes[i]
            return self.labels[i] is not None and not self.held[i], float(self.weights[i]), (x1 - x0) * (y1 - y0)
        return max(range(len(self.labels)), key=key)


@dataclass
class Report:
    """What ``write_report`` wrote: the page, the images, and notes worth telling the user."""
    page: Path
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def load_results(path: str | Path) -> dict:
    """A video's results file (realtime.results), checked enough to draw from; InputError in words otherwise."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"results file not found: {printable(path)}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{printable(path)}: cannot read it as a results file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise InputError(f"{printable(path)} is not a results file (no \"schema\": \"{SCHEMA}\"); write one with "
                         "annotate --json")
    if doc.get("kind") != "video":
        raise InputError(f"{printable(path)} holds photos, not a video: a timeline needs a video's results")
    if problem := malformed(doc):
        raise InputError(f"{printable(path)}: cannot draw from it: {problem} (a results file as annotate --json "
                         "writes it is needed; was it edited?)")
    return doc


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def malformed(doc: dict) -> str | None:
    """What in a video's results document the report cannot draw from (a field it reads, missing or of the wrong
    type), or None."""
    classes = doc.get("classes")
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        return '"classes" is not a list of emotion names'
    for key in ("video", "settings", "summary"):
        if not isinstance(doc.get(key, {}), dict):
            return f'"{key}" is not an object'
    fps = doc.get("video", {}).get("fps")
    if fps is not None and not (_number(fps) and fps > 0):
        return f'"video": "fps" is not a positive number ({fps!r})'
    smoothing = doc.get("settings", {}).get("smoothing", 0.0)
    if not (_number(smoothing) and 0 <= smoothing < 1):
        return f'"settings": "smoothing" is not a number in [0, 1) ({smoothing!r})'
    if not isinstance(doc.get("input"), (str, type(None))):
        return '"input" is not a file name'
    tracks = doc.get("summary", {}).get("tracks", {})
    if not (isinstance(tracks, dict) and all(
            isinstance(t, dict) and isinstance(t.get("dominant"), (str, type(None)))
            and isinstance(t.get("emotions", {}), dict) and all(map(_number, t.get("emotions", {}).values()))
            for t in tracks.values())):
        return '"summary": "tracks" is not an object of tracks with their emotions\' shares'
    frames = doc.get("frames")
    if not isinstance(frames, list):
        return 'no "frames" list'
    for i, fr in enumerate(frames):
        if not (isinstance(fr, dict) and _whole(fr.get("frame")) and "time" in fr
                and (fr["time"] is None or _number(fr["time"])) and isinstance(fr.get("faces"), list)):
            return f"frame {i} is not an object with a frame number, a time and a list of faces"
        for f in fr["faces"]:
            probs = f.get("probabilities") if isinstance(f, dict) else None
            if not (isinstance(probs, dict) and all(_number(probs.get(c)) for c in classes)
                    and _whole(f.get("track")) and (f.get("label") is None or f.get("label") in classes)
                    and isinstance(f.get("box"), list) and len(f["box"]) == 4 and all(map(_whole, f["box"]))
                    and _number(f.get("weight", 1.0))):
                return (f"a face of frame {i} is not an object with a track number, a box of 4 whole numbers, a "
                        "label of the classes (or null) and a probability for each class")
    return None


def frame_readings(evidence: np.ndarray, weights: np.ndarray, smoothing: float) -> np.ndarray:
    """Each frame's own probabilities, recovered from a track's recorded evidence by undoing the tracker's update
    (realtime.tracking: the first reading counts ``w / (1 - smoothing)``, each later one keeps
    ``smoothing ** w`` of the total weight and adds ``w``). Rows whose rounding error could exceed
    READING_ERROR are NaN: a frame that weighed almost nothing left too little trace to read back."""
    n = len(evidence)
    out = np.full_like(evidence, np.nan, dtype=float)
    if n == 0:
        return out
    w = np.maximum(weights.astype(float), MIN_WEIGHT)
    total = w[0] / (1.0 - smoothing)
    out[0] = evidence[0]
    for t in range(1, n):
        keep_total = smoothing ** w[t] * total
        total = keep_total + w[t]
        if _ROUNDING * (total + keep_total + 1.0) / w[t] > READING_ERROR:
            continue
        reading = np.clip((evidence[t] * total - evidence[t - 1] * keep_total) / w[t], 0.0, None)
        out[t] = reading / reading.sum() if reading.sum() > 0 else np.nan
    return out


def track_series(doc: dict) -> dict[int, TrackSeries]:
    """Every track of a results document, by number (the pipeline numbers tracks as they appear)."""
    classes = doc["classes"]
    smoothing = float(doc.get("settings", {}).get("smoothing", 0.0))
    fps = doc.get("video", {}).get("fps") or 25.0
    faces: dict[int, list[tuple[dict, dict]]] = {}
    for fr in doc["frames"]:
        for f in fr["faces"]:
            faces.setdefault(f["track"], []).append((fr, f))
    out = {}
    for track, seen in sorted(faces.items()):
        evidence = np.array([[f["probabilities"][c] for c in classes] for _, f in seen], float)
        weights = np.array([f.get("weight", 1.0) for _, f in seen], float)
        out[track] = TrackSeries(
            track, np.array([fr["frame"] for fr, _ in seen]),
            np.array([fr["time"] if fr["time"] is not None else fr["frame"] / fps for fr, _ in seen], float),
            evidence, frame_readings(evidence, weights, smoothing), [f["label"] for _, f in seen],
            np.array([bool(f.get("held", False)) for _, f in seen]), weights, [f["box"] for _, f in seen])
    return out


def cut_times(doc: dict) -> list[float]:
    fps = doc.get("video", {}).get("fps") or 25.0
    return [fr["time"] if fr["time"] is not None else fr["frame"] / fps for fr in doc["frames"] if fr.get("cut")]


def rgb(label: str | None, classes: list[str]) -> tuple[float, float, float]:
    """The colour the annotated video gives ``label`` (realtime.overlay), for matplotlib."""
    b, g, r = emotion_color(label, classes)
    return r / 255, g / 255, b / 255


def runs(mask: np.ndarray, frames: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) positions of each stretch of consecutive True values that are also consecutive frames."""
    out, start = [], None
    for i, on in enumerate(mask):
        if on and start is not None and frames[i] != frames[i - 1] + 1:
            out.append((start, i - 1))
            start = i
        elif on and start is None:
            start = i
        elif not on and start is not None:
            out.append((start, i - 1))
            start = None
    if start is not None:
        out.append((start, len(mask) - 1))
    return out


def _gapped(times: np.ndarray, frames: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Times and values with a NaN row where the track was not seen, so lines break there."""
    gaps = np.flatnonzero(np.diff(frames) > 1) + 1
    return (np.insert(times.astype(float), gaps, np.nan),
            np.insert(values.astype(float), gaps, np.nan, axis=0))


def timeline_figure(series: TrackSeries, classes: list[str], cuts: list[float], frame_s: float) -> Figure:
    """One track's timeline: evidence lines, reading dots, uncertain and held stretches, cuts, and a band of the
    label the video showed."""
    fig = Figure(figsize=(10, 3.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax, band = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [6, 1]})
    t = series.times
    half = frame_s / 2
    for first, last in runs(series.uncertain, series.frames):
        ax.axvspan(t[first] - half, t[last] + half, color="0.6", alpha=0.3, lw=0)
    for first, last in runs(series.held, series.frames):
        ax.axvspan(t[first] - half, t[last] + half, facecolor="none", edgecolor="0.45", hatch="///", lw=0)
    gt, ge = _gapped(t, series.frames, series.evidence)
    for i, c in enumerate(classes):
        color = rgb(c, classes)
        ax.plot(gt, ge[:, i], color=color, lw=1.8, label=c)
        ax.plot(t, series.readings[:, i], ".", color=color, ms=3.5, alpha=0.55)
    span = max(t[-1] - t[0], frame_s)
    lo, hi = t[0] - max(0.05 * span, frame_s), t[-1] + max(0.05 * span, frame_s)
    for cut in cuts:
        if lo <= cut <= hi:
            for a in (ax, band):
                a.axvline(cut - half, color="black", lw=1.2, ls="--")
            ax.text(cut - half, 0.99, "cut ", transform=ax.get_xaxis_transform(), fontsize=8, va="top",
                    ha="right")
    ax.set(xlim=(lo, hi), ylim=(0, 1), ylabel="probability")
    ax.set_title(f"track {series.track}: {t[0]:.1f}-{t[-1]:.1f} s, {count_of(len(t), 'frames')} seen", loc="left",
                 fontsize=10)
    handles, _ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="0.3", marker=".", ls="none", label="one frame"),
                Patch(color="0.6", alpha=0.3, label="uncertain"),
                Patch(facecolor="none", edgecolor="0.45", hatch="///", label="held")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    _label_bars(band, series, classes, frame_s, 0.0, 1.0)
    band.set(yticks=[], xlabel="seconds from the start of the video")
    band.set_ylabel("label", rotation=0, ha="right", va="center", fontsize=8)
    return fig


def label_runs(series: TrackSeries) -> list[tuple[int, int, str | None, bool]]:
    """(first, last, label, held) of each stretch of consecutive frames that showed the same label."""
    out: list[tuple[int, int, str | None, bool]] = []
    for i, (label, held) in enumerate(zip(series.labels, series.held)):
        if out and out[-1][2:] == (label, bool(held)) and series.frames[i] == series.frames[out[-1][1]] + 1:
            out[-1] = (out[-1][0], i, label, bool(held))
        else:
            out.append((i, i, label, bool(held)))
    return out


def _label_bars(ax, series: TrackSeries, classes: list[str], frame_s: float, base: float, height: float,
                horizontal: bool = False) -> None:
    """The label the video showed, as bars along time: full height in the emotion's colour (darker when held),
    a thin grey line where the face was uncertain (seen, no label)."""
    t, half = series.times, frame_s / 2
    for first, last, label, held in label_runs(series):
        color = rgb(label, classes)
        color = tuple(v / 2 for v in color) if held else color
        y, h = (base + 0.4 * height, 0.2 * height) if label is None else (base, height)
        left, width = t[first] - half, t[last] - t[first] + frame_s
        if horizontal:
            ax.broken_barh([(left, width)], (y, h), color=color, lw=0)
        else:
            ax.axvspan(left, left + width, ymin=y, ymax=y + h, color=color, lw=0)


def _label_legend(classes: list[str]) -> list:
    return ([Patch(color=rgb(c, classes), label=c) for c in classes]
            + [Patch(color=tuple(v / 2 for v in rgb(classes[0], classes)), label="held (darker)"),
               Line2D([], [], color=rgb(None, classes), lw=2, label="uncertain")])


def overview_figure(tracks: list[TrackSeries], classes: list[str], cuts: list[float], duration: float,
                    frame_s: float) -> Figure:
    """Every drawn track as a row over the whole video, coloured by the label it showed (grey: uncertain)."""
    fig = Figure(figsize=(10, 0.9 + 0.28 * len(tracks)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for row, s in enumerate(tracks):
        _label_bars(ax, s, classes, frame_s, row - 0.35, 0.7, horizontal=True)
    for cut in cuts:
        ax.axvline(cut - frame_s / 2, color="black", lw=1, ls="--")
    ax.set(yticks=range(len(tracks)), yticklabels=[f"track {s.track}" for s in tracks], xlim=(0, duration),
           ylim=(len(tracks) - 0.5, -0.5), xlabel="seconds (dashed: scene cuts)")
    ax.legend(handles=_label_legend(classes), loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.tick_params(axis="y", labelsize=8)
    return fig


def find_video(doc: dict, results_path: Path | None, video: str | Path | None) -> tuple[Path | None, str | None]:
    """The source video to cut thumbnails from (``video`` when given, else the results' ``input``, as given or
    beside the results file), or None and why not."""
    if video is not None:
        candidates = [Path(video)]
    else:
        given = Path(doc.get("input") or "")
        candidates = [given] + ([results_path.parent / given] if results_path and not given.is_absolute() else [])
    for path in candidates:
        if path.is_file():
            return path, None
    return None, f"the source video {printable(candidates[0])} was not found"


def thumbnails(path: Path, doc: dict, tracks: list[TrackSeries]) -> tuple[dict[int, np.ndarray], str | None]:
    """Each track's clearest face cut from the video at ``path`` (BGR, THUMB_HEIGHT high), or none and why: the
    video cannot be read, or it is not the one the results describe."""
    want: dict[int, list[tuple[int, list[int]]]] = {}
    for s in tracks:
        i = s.clearest()
        want.setdefault(int(s.frames[i]), []).append((s.track, s.boxes[i]))
    meta = doc.get("video", {})
    out: dict[int, np.ndarray] = {}
    try:
        with VideoReader(path) as reader:
            info = reader.info
            if (info.width, info.height) != (meta.get("width"), meta.get("height")) or (
                    info.frame_count and meta.get("frame_count") and abs(info.frame_count - meta["frame_count"]) > 1):
                return {}, (f"{printable(path)} is {info.width}x{info.height} with {info.frame_count} frames, not the "
                            f"{meta.get('width')}x{meta.get('height')} video of {meta.get('frame_count')} frames the "
                            "results describe")
            last = max(want, default=-1)
            for index, frame in enumerate(reader):
                for track, box in want.get(index, []):
                    out[track] = _crop(frame, box)
                if index >= last:
                    break
    except VideoError as exc:
        return {}, str(exc)
    missing = len(tracks) - len(out)
    return out, (f"{missing} faces lie past the frames {printable(path)} decodes" if missing else None)


def _crop(frame: np.ndarray, box: list[int], margin: float = 0.2) -> np.ndarray:
    x0, y0, x1, y1 = box
    pad = round(margin * max(x1 - x0, y1 - y0))
    h, w = frame.shape[:2]
    crop = frame[max(0, y0 - pad):min(h, y1 + pad), max(0, x0 - pad):min(w, x1 + pad)]
    scale = THUMB_HEIGHT / crop.shape[0]
    return cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), THUMB_HEIGHT),
                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def track_rows(doc: dict, series: dict[int, TrackSeries], frame_s: float) -> list[dict]:
    """The summary table, one row per track: when and how long it was seen, each emotion's share (weighted as
    the results summary weighs them), the share of uncertain and of held frames."""
    summary = doc.get("summary", {}).get("tracks", {})
    rows = []
    for track, s in series.items():
        t = summary.get(str(track), {})
        rows.append({"track": track, "first_s": round(float(s.times[0]), 2), "last_s": round(float(s.times[-1]), 2),
                     "seen_s": round(len(s.times) * frame_s, 2), "frames": len(s.times),
                     "dominant": t.get("dominant"), "uncertain": round(float(s.uncertain.mean()), 4),
                     "held": round(float(s.held.mean()), 4),
                     **{c: t.get("emotions", {}).get(c, 0.0) for c in doc["classes"]}})
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["track"])
        writer.writeheader()
        writer.writerows(rows)


def write_report(results: str | Path | dict, out_dir: str | Path, video: str | Path | None = None,
                 min_seconds: float = MIN_SECONDS) -> Report:
    """Write the report of a video's results (a results file, or its document) into ``out_dir``. ``video``: the
    source video for the thumbnails (default: the results' ``input``); tracks seen less than ``min_seconds``
    get a table row only."""
    results_path = None if isinstance(results, dict) else Path(results)
    doc = results if isinstance(results, dict) else load_results(results)
    out = Path(out_dir)
    classes = doc["classes"]
    fps = doc.get("video", {}).get("fps") or 25.0
    frame_s = 1.0 / fps
    duration = len(doc["frames"]) * frame_s
    series = track_series(doc)
    cuts = cut_times(doc)
    drawn = [s for s in series.values() if len(s.times) * frame_s >= min_seconds]
    report = Report(out / "index.html")
    path, why = find_video(doc, results_path, video)
    faces: dict[int, np.ndarray] = {}
    if path is not None:
        faces, why = thumbnails(path, doc, drawn)
    if why:
        report.notes.append(f"no thumbnails: {why}" if not faces else f"some thumbnails missing: {why}")
    images: dict[str, bytes] = {}
    if drawn:
        images["overview.png"] = _png(overview_figure(drawn, classes, cuts, duration, frame_s))
    for s in drawn:
        images[f"track_{s.track}.png"] = _png(timeline_figure(s, classes, cuts, frame_s))
        if s.track in faces:
            images[f"face_{s.track}.jpg"] = _jpeg(faces[s.track])
    rows = track_rows(doc, series, frame_s)
    for name, data in images.items():
        with atomic_path(out / name) as tmp:
            tmp.write_bytes(data)
        report.files.append(out / name)
    write_csv(out / "summary.csv", rows)
    report.files.append(out / "summary.csv")
    page = render_html(doc, rows, drawn, images, cuts, duration, min_seconds, report.notes)
    with atomic_path(report.page) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return report


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 88])[1].tobytes()


def _data_uri(name: str, data: bytes) -> str:
    kind = "image/png" if name.endswith(".png") else "image/jpeg"
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


_STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1100px}
table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}img{max-width:100%}.note{color:#8a4b00}
section{margin:1.2em 0;border-top:1px solid #ddd;padding-top:0.6em}.row{display:flex;gap:1em;align-items:flex-start}
.muted{color:#666;font-size:0.9em}"""


def _table(rows: list[dict], classes: list[str], images: dict[str, bytes], link: bool) -> str:
    """The summary rows as an HTML table: face, time seen, each emotion's share, uncertain and held."""
    esc = html.escape
    cols = "".join(f"<th>{esc(c)}</th>" for c in classes)
    out = ["<table><tr><th class=l>track</th><th>face</th><th>seen (s)</th><th>from-to (s)</th>"
           f"<th class=l>mostly</th>{cols}<th>uncertain</th><th>held</th></tr>"]
    for r in rows:
        face = images.get(f"face_{r['track']}.jpg")
        img = f"<img alt='' height=40 src='{_data_uri('x.jpg', face)}'>" if face else ""
        name = f"<a href='#track{r['track']}'>{r['track']}</a>" if link else str(r["track"])
        shares = "".join(f"<td>{r[c]:.0%}</td>" if r[c] else "<td></td>" for c in classes)
        out.append(f"<tr><td class=l>{name}</td><td>{img}</td><td>{r['seen_s']:.1f}</td>"
                   f"<td>{r['first_s']:.1f}-{r['last_s']:.1f}</td><td class=l>{esc(r['dominant'] or '-')}</td>"
                   f"{shares}<td>{r['uncertain']:.0%}</td><td>{r['held']:.0%}</td></tr>")
    return "".join(out) + "</table>"


def render_html(doc: dict, rows: list[dict], drawn: list[TrackSeries], images: dict[str, bytes], cuts: list[float],
                duration: float, min_seconds: float, notes: list[str]) -> str:
    """The page: what was analysed, the overview, the table, then each drawn track's face and timeline."""
    esc = html.escape
    classes = doc["classes"]
    video = doc.get("video", {})
    settings = doc.get("settings", {})
    drawn_ids = {s.track for s in drawn}
    head = (f"<h1>Emotions over time: {esc(str(doc.get('input', '')))}</h1>"
            f"<p class=muted>{video.get('width')}x{video.get('height')}, {video.get('fps')} fps, "
            f"{count_of(len(doc['frames']), 'frames')} ({duration:.1f} s), {count_of(len(cuts), 'scene cuts')}, "
            f"{count_of(len(rows), 'tracks')}. "
            f"Model {esc(str(settings.get('checkpoint')))}, smoothing {settings.get('smoothing')}.</p>"
            "<p class=muted>A track is one face followed from frame to frame until it leaves the picture or the "
            "scene cuts: one person may have several tracks. Shares weigh each frame by its evidence, as the "
            "results summary does; <i>uncertain</i> is the share of frames whose face got no label, <i>held</i> "
            "the share labelled from earlier frames through a view that cannot be read.</p>")
    head += "".join(f"<p class=note>{esc(n)}</p>" for n in notes)
    parts = [head]
    if "overview.png" in images:
        overview = _data_uri("overview.png", images["overview.png"])
        parts.append(f"<h2>Who is seen when</h2><img alt='every track over the video' src='{overview}'>")
    parts.append("<h2>Summary per track</h2>" + _table([r for r in rows if r["track"] in drawn_ids], classes,
                                                          images, link=True))
    short = [r for r in rows if r["track"] not in drawn_ids]
    if short:
        parts.append(f"<details><summary class=muted>{count_of(len(short), 'tracks')} seen for less than "
                     f"{min_seconds:g} s (brief or false faces), without a timeline</summary>"
                     f"{_table(short, classes, images, link=False)}</details>")
    for s in drawn:
        face = images.get(f"face_{s.track}.jpg")
        img = f"<img alt='clearest face of track {s.track}' src='{_data_uri('x.jpg', face)}'>" if face else \
            "<p class=muted>(no thumbnail)</p>"
        timeline = _data_uri("x.png", images[f"track_{s.track}.png"])
        parts.append(f"<section id=track{s.track}><div class=row><div>{img}</div>"
                     f"<img alt='timeline of track {s.track}' src='{timeline}'></div></section>")
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            f"<title>Emotions over time: {esc(Path(str(doc.get('input', ''))).name)}</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>\n")
