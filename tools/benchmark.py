"""How fast the realtime pipeline runs (a measurement, not a test), three ways:

    python -m tools.benchmark [--checkpoint MODEL [MODEL ...]] [--frames 150] [--threads N]
                                 [--modes throughput live startup]

- throughput: frames pushed through as fast as they go; per-stage milliseconds per frame (median after a
  warm-up) and end-to-end frames per second. End to end = decode + scene-cut check + detect + crop + classify + track + draw.
- live: the clip played at a camera's rate (30 and 60 FPS) through the webcam app's own capture thread, which
  keeps only the newest frame; reports the CPU cores the process used (its CPU time over wall time, MediaPipe's
  and ONNX Runtime's threads included), frames dropped, and latency from a frame's arrival to its drawn result
  (median and 95th percentile). This is what a webcam user feels: a laptop kept busy, or not.
- startup: seconds from launching a fresh Python process to the first processed frame, as the webcam app does it.

Frames show 1 or 4 real faces (photos from ../shared/media tiled into 640x480 and 1280x720 frames, drifting a
few pixels per frame), written to an mp4 and decoded back. Figures depend on the machine and on what else runs
on it; the load average is printed with them.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from fercore.cli import number, parser
from fercore.paths import ROOT, SHARED_MEDIA, one_or_more
from realtime.commands import options
from realtime.errors import InputError
from realtime.overlay import draw_faces, draw_fps
from realtime.photos import read_image
from realtime.settings import Settings, build_pipeline, checkpoint_record
from realtime.video_io import LatestFrameCapture, VideoReader, open_source, video_writer

MEDIA = SHARED_MEDIA / "photos"
PORTRAITS = ("neutral.jpg", "surprised.jpg", "sad.jpg", "angry.jpg")  # one face each
SIZES = ((640, 480), (1280, 720))
TARGET_FPS = {((640, 480), 1): 60.0, ((640, 480), 4): 30.0}  # the throughput goal on a 2-core CPU
STAGES = ("decode", "cut", "detect", "crop", "classify", "track", "draw")
LIVE_RATES = (30.0, 60.0)
WARMUP = 10  # frames processed before timing starts (first-call allocations, caches)
MODES = ("throughput", "live", "startup")


def fit(image: np.ndarray, w: int, h: int) -> np.ndarray:
    """``image`` scaled to fit inside w x h, centred on grey."""
    s = min(w / image.shape[1], h / image.shape[0])
    small = cv2.resize(image, (round(image.shape[1] * s), round(image.shape[0] * s)), interpolation=cv2.INTER_AREA)
    canvas = np.full((h, w, 3), 90, np.uint8)
    y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
    return canvas


def compose(portraits: list[np.ndarray], size: tuple[int, int], faces: int) -> np.ndarray:
    """One portrait filling the frame, or four in a 2x2 grid."""
    w, h = size
    if faces == 1:
        return fit(portraits[0], w, h)
    tiles = [fit(p, w // 2, h // 2) for p in portraits[:4]]
    return np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])


def make_clip(path: Path, base: np.ndarray, frames: int) -> None:
    with video_writer(path, 30.0, (base.shape[1], base.shape[0])) as writer:
        for i in range(frames):
            writer.write(np.roll(base, (i % 20 - 10, i % 30 - 15), axis=(0, 1)))  # faces drift a little


def throughput(settings: Settings, clip: Path) -> dict:
    """Median milliseconds per frame per stage after WARMUP frames, faces found per frame, and end-to-end FPS
    (timed frames over their total time), with a camera's settings."""
    with build_pipeline(settings, "camera") as pipe, VideoReader(clip) as reader:
        per_frame: list[dict[str, float]] = []
        faces, n, fps_shown = 0, 0, 0.0
        frames = iter(reader)
        while True:
            before = dict(pipe.timer.seconds)
            t0 = time.perf_counter()
            frame = next(frames, None)
            t1 = time.perf_counter()
            if frame is None:
                break
            result = pipe.process(frame, n, n / 30.0)
            t2 = time.perf_counter()
            draw_faces(frame, result.faces, pipe.classes)
            draw_fps(frame, fps_shown)
            t3 = time.perf_counter()
            if n >= WARMUP:
                times = {s: pipe.timer.seconds[s] - before.get(s, 0.0) for s in pipe.timer.seconds}
                per_frame.append({"decode": t1 - t0, "draw": t3 - t2, **times, "total": t3 - t0})
                faces += len(result.faces)
            n += 1
    if not per_frame:
        raise InputError(f"--frames must exceed the {WARMUP} warm-up frames")
    ms = {s: 1000 * float(np.median([f.get(s, 0.0) for f in per_frame])) for s in (*STAGES, "total")}
    return {"ms": ms, "faces": faces / len(per_frame), "fps": len(per_frame) / sum(f["total"] for f in per_frame)}


def live(settings: Settings, clip: Path, rate: float) -> dict:
    """The clip played at ``rate`` FPS through the webcam app's capture thread, with a camera's settings: CPU
    cores used, frames dropped, latency from arrival to drawn result."""
    with build_pipeline(settings, "camera") as pipe:
        cap, _ = open_source(str(clip))
        cpu0, wall0 = time.process_time(), time.monotonic()
        capture = LatestFrameCapture(cap, pace_fps=rate)
        latencies, last_index, processed = [], -1, 0
        try:
            while (item := capture.read(timeout=5.0)) is not None:
                index, t, frame = item
                result = pipe.process(frame, index, t)
                draw_faces(frame, result.faces, pipe.classes)
                latencies.append(time.monotonic() - wall0 - t)
                last_index, processed = index, processed + 1
        finally:
            capture.close()
        cores = (time.process_time() - cpu0) / (time.monotonic() - wall0)
    return {"cores": cores, "frames": last_index + 1, "dropped": last_index + 1 - processed,
            "latency_ms": 1000 * float(np.median(latencies)), "p95_ms": 1000 * float(np.percentile(latencies, 95))}


_STARTUP_CHILD = """
import sys, time
from realtime.commands import options
from realtime.commands.webcam import get_parser
from realtime.settings import build_pipeline
from realtime.video_io import LatestFrameCapture, open_source
args = get_parser().parse_args(sys.argv[1:])
with build_pipeline(options.settings_from_args(args), "camera") as pipe:
    capture = LatestFrameCapture(open_source(args.source)[0])
    index, t, frame = capture.read(timeout=10.0)
    pipe.process(frame, index, t)
    print(time.time())
    capture.close()
"""


def startup(settings: Settings, clip: Path, repeats: int = 3) -> float:
    """Median seconds from launching Python to the first processed frame, with the webcam app's options."""
    s = settings.for_source("camera")
    argv = ["--source", str(clip), "--backend", s.backend, "--threads", str(s.threads), "--detector", s.detector]
    argv += ["--checkpoint", *one_or_more(s.checkpoint)] if s.checkpoint else []
    seconds = []
    for _ in range(repeats):
        start = time.time()
        out = subprocess.run([sys.executable, "-c", _STARTUP_CHILD, *argv], cwd=ROOT, capture_output=True,
                             text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"the start-up run failed:\n{out.stderr[-2000:]}")
        seconds.append(float(out.stdout.strip().splitlines()[-1]) - start)
    return float(np.median(seconds))


def get_parser() -> argparse.ArgumentParser:
    p = parser("tools.benchmark", __doc__)
    p.add_argument("--frames", type=number(WARMUP + 1, kind=int), default=150,
                   help=f"frames per case, the first {WARMUP} not timed (default 150)")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="what to measure (default all)")
    p.add_argument("--media", type=Path, default=MEDIA, help=f"folder with the portraits {', '.join(PORTRAITS)}")
    options.add_pipeline_args(p)
    return p


def command(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    missing = [name for name in PORTRAITS if not (args.media / name).is_file()]
    if missing:
        raise InputError(f"benchmark photos missing in {args.media}: {', '.join(missing)} "
                             "(the shared media folder sits beside the checkout; or pass --media)")
    portraits = [read_image(args.media / name) for name in PORTRAITS]
    settings = options.settings_from_args(args)
    build_pipeline(settings, "camera").close()  # fail early on a missing checkpoint or detector
    checkpoint = checkpoint_record(settings.checkpoint)
    shown = checkpoint if isinstance(checkpoint, str) else f"ensemble of {' + '.join(checkpoint)}"
    print(f"checkpoint {shown}, backend {settings.backend} ({settings.threads} thread(s)), "
          f"detector {settings.for_source('camera').detector}, {args.frames} frames per case, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} before the run")
    with tempfile.TemporaryDirectory() as tmp:
        clips = {}
        for size in SIZES:
            for n_faces in (1, 4):
                clips[size, n_faces] = Path(tmp) / f"{size[0]}x{size[1]}_{n_faces}.mp4"
                make_clip(clips[size, n_faces], compose(portraits, size, n_faces), args.frames)
        if "throughput" in args.modes:
            print(f"\nthroughput: median ms per frame after {WARMUP} warm-up frames")
            print(f"{'frame':>9} {'faces':>5} {'found':>5} " + "".join(f"{s:>9}" for s in STAGES)
                  + f" {'total ms':>9} {'FPS':>6}  target")
            for (size, n_faces), clip in clips.items():
                r = throughput(settings, clip)
                target = TARGET_FPS.get((size, n_faces))
                verdict = "" if target is None else f"{target:g} FPS: {'met' if r['fps'] >= target else 'MISSED'}"
                print(f"{size[0]:>4}x{size[1]:<4} {n_faces:>5} {r['faces']:>5.2f} "
                      + "".join(f"{r['ms'][s]:>9.2f}" for s in STAGES)
                      + f" {r['ms']['total']:>9.2f} {r['fps']:>6.1f}  {verdict}")
        if "live" in args.modes:
            print("\nlive: the clip played at a camera's rate through the webcam app's capture thread")
            print(f"{'frame':>9} {'faces':>5} {'rate':>5} {'CPU cores':>9} {'dropped':>11} "
                  f"{'latency ms':>10} {'p95 ms':>7}")
            for (size, n_faces), clip in clips.items():
                for rate in LIVE_RATES:
                    r = live(settings, clip, rate)
                    print(f"{size[0]:>4}x{size[1]:<4} {n_faces:>5} {rate:>5g} {r['cores']:>9.2f} "
                          f"{r['dropped']:>4} of {r['frames']:<4} {r['latency_ms']:>10.1f} {r['p95_ms']:>7.1f}")
        if "startup" in args.modes:
            seconds = startup(settings, clips[SIZES[0], 1])
            print(f"\nstartup: {seconds:.2f} s from launching Python to the first processed frame (median of 3)")
    print(f"\nload average {os.getloadavg()[0]:.2f} after the run")
    return 0


def main(argv: list[str] | None = None) -> int:
    return options.run(command, argv)


if __name__ == "__main__":
    sys.exit(main())
