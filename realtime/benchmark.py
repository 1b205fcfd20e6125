"""Per-stage latency and end-to-end frames per second of the realtime pipeline (a measurement, not a test).

    python -m realtime.benchmark [--checkpoint PATH] [--frames 150] [--threads 2]

Frames show 1 or 4 real faces (photos from ../shared/media tiled into 640x480 and 1280x720 frames, drifting a
few pixels per frame); they are written to an mp4 and decoded back, so decoding is measured as annotate does it.
End to end = decode + detect + crop + classify + track + draw. Figures depend on the machine and on what else
runs on it; the load average is printed with them.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from fercore.paths import DEFAULT_CHECKPOINT, SHARED_MEDIA
from realtime import cli
from realtime.overlay import draw_faces, draw_fps
from realtime.photos import read_image
from realtime.video_io import VideoReader, video_writer

MEDIA = SHARED_MEDIA / "photos"
PORTRAITS = ("neutral.jpg", "surprised.jpg", "sad.jpg", "angry.jpg")  # one face each
SIZES = ((640, 480), (1280, 720))
TARGET_FPS = {((640, 480), 1): 60.0, ((640, 480), 4): 30.0}  # the goal on a 2-core CPU
STAGES = ("decode", "detect", "crop", "classify", "track", "draw")


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


def run_case(args: argparse.Namespace, clip: Path) -> dict:
    """Seconds per frame per stage, faces found per frame and end-to-end FPS over one clip."""
    with cli.pipeline_from_args(args, video=True) as pipe, VideoReader(clip) as reader:
        fps_shown, faces, n = 0.0, 0, 0
        decode = draw = 0.0
        frames = iter(reader)
        start = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            frame = next(frames, None)
            t1 = time.perf_counter()
            if frame is None:
                break
            decode += t1 - t0
            result = pipe.process(frame, n, n / 30.0)
            t2 = time.perf_counter()
            draw_faces(frame, result.faces, pipe.classes)
            draw_fps(frame, fps_shown)
            draw += time.perf_counter() - t2
            faces += len(result.faces)
            n += 1
        total = time.perf_counter() - start
        seconds = {"decode": decode, "draw": draw, **pipe.timer.seconds}
    return {"ms": {s: 1000 * seconds.get(s, 0.0) / n for s in STAGES}, "faces": faces / n, "fps": n / total}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m realtime.benchmark", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=150, help="frames per case (default 150)")
    p.add_argument("--media", type=Path, default=MEDIA, help=f"folder with the portraits {', '.join(PORTRAITS)}")
    cli.add_pipeline_args(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [name for name in PORTRAITS if not (args.media / name).is_file()]
    if missing:
        raise cli.InputError(f"benchmark photos missing in {args.media}: {', '.join(missing)} "
                             "(the shared media folder sits beside the checkout; or pass --media)")
    portraits = [read_image(args.media / name) for name in PORTRAITS]
    cli.pipeline_from_args(args, video=False).close()  # fail early on a missing checkpoint or detector
    load = os.getloadavg()
    print(f"checkpoint {args.checkpoint or DEFAULT_CHECKPOINT}, backend {args.backend} ({args.threads} thread(s)), "
          f"detector {args.detector}, "
          f"{args.frames} frames per case, {os.cpu_count()} CPUs, load average {load[0]:.2f} before the run")
    print(f"{'frame':>9} {'faces':>5} {'found':>5} " + "".join(f"{s:>9}" for s in STAGES)
          + f" {'total ms':>9} {'FPS':>6}  target")
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            for n_faces in (1, 4):
                clip = Path(tmp) / f"{size[0]}x{size[1]}_{n_faces}.mp4"
                make_clip(clip, compose(portraits, size, n_faces), args.frames)
                r = run_case(args, clip)
                target = TARGET_FPS.get((size, n_faces))
                verdict = "" if target is None else f"{target:g} FPS: {'met' if r['fps'] >= target else 'MISSED'}"
                print(f"{size[0]:>4}x{size[1]:<4} {n_faces:>5} {r['faces']:>5.2f} "
                      + "".join(f"{r['ms'][s]:>9.2f}" for s in STAGES)
                      + f" {sum(r['ms'].values()):>9.2f} {r['fps']:>6.1f}  {verdict}")
    print(f"load average {os.getloadavg()[0]:.2f} after the run; per-stage figures are milliseconds per frame")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
