"""Annotate a video, a photo or a folder of photos, and write the results per frame and face.

    python -m realtime.annotate INPUT.mp4 -o OUTPUT.mp4 [--json results.json] [--csv results.csv]
    python -m realtime.annotate photo.jpg -o annotated.jpg [--json ...]
    python -m realtime.annotate photos/ -o annotated/ [--json ...]

A video keeps its size, frame rate and frame count. Every output goes to a temporary file first and is renamed
when complete, so an interrupted run never leaves a file that looks finished.
"""
from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path

import cv2
from tqdm import tqdm

from fercore.atomic import atomic_path
from realtime import cli
from realtime.overlay import draw_faces
from realtime.photos import ImageError, is_image, list_images, read_image
from realtime.pipeline import Pipeline
from realtime.results import FrameResult, format_summary, header, summarize, write_csv, write_json
from realtime.video_io import VideoError, VideoReader, video_writer

DEFAULT_FPS = 25.0  # for the rare container that does not say


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m realtime.annotate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path, help="a video file, a photo, or a folder of photos")
    p.add_argument("-o", "--output", type=Path,
                   help="annotated video (.mp4 or .avi), photo, or folder for a folder of photos")
    p.add_argument("--json", type=Path, help="results per frame and face, and the summary, as JSON")
    p.add_argument("--csv", type=Path, help="results as CSV, one row per face")
    p.add_argument("--allow-short", action="store_true",
                   help="keep the output of a video that ends before the frame count its container announces")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    cli.add_pipeline_args(p)
    args = p.parse_args(argv)
    if not (args.output or args.json or args.csv):
        p.error("nothing to write: give -o OUTPUT, --json FILE and/or --csv FILE")
    return args


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse any output that would overwrite the input (or, for a folder, land inside it)."""
    if not args.input.exists():
        raise cli.InputError(f"input not found: {args.input}")
    src = args.input.resolve()
    for out in (args.output, args.json, args.csv):
        if out is None:
            continue
        dst = out.resolve()
        if dst == src or (args.input.is_dir() and src in dst.parents):
            raise cli.InputError(f"refusing to write {out}: it would overwrite or land inside the input {args.input}")
    if args.output is None:
        return
    if args.input.is_dir() and args.output.is_file():
        raise cli.InputError(f"the output of a folder of photos must be a folder; {args.output} is a file")
    if args.input.is_file() and is_image(args.input) and not is_image(args.output):
        raise cli.InputError(f"the output of a photo must be a photo (.jpg, .png, ...), got {args.output}")


def write_results(args: argparse.Namespace, pipe: Pipeline, frames: list[FrameResult], summary: dict,
                  **meta) -> None:
    if args.json:
        write_json(args.json, header(pipe.classes, input=str(args.input), **meta, settings=cli.settings(args, pipe)),
                   frames, summary)
    if args.csv:
        write_csv(args.csv, frames, pipe.classes)


def annotate_video(args: argparse.Namespace) -> int:
    with ExitStack() as stack:
        reader = stack.enter_context(VideoReader(args.input))
        info = reader.info
        fps = info.fps or DEFAULT_FPS
        if info.fps is None:
            print(f"warning: {args.input} does not state its frame rate; assuming {fps:g} fps", file=sys.stderr)
        pipe = stack.enter_context(cli.pipeline_from_args(args, video=True))
        writer = (stack.enter_context(video_writer(args.output, fps, (info.width, info.height)))
                  if args.output else None)
        frames = []
        for i, frame in enumerate(tqdm(reader, total=info.frame_count, unit="frame", disable=args.no_progress,
                                       desc=args.input.name)):
            result = pipe.process(frame, i, i / fps)
            frames.append(result)
            if writer is not None:
                draw_faces(frame, result.faces, pipe.classes)
                writer.write(frame)
        if info.frame_count and reader.frames_read < info.frame_count and not args.allow_short:
            raise VideoError(f"{args.input}: decoding stopped after {reader.frames_read} of the "
                             f"{info.frame_count} frames it announces (truncated or damaged); nothing written "
                             "(--allow-short keeps what was decoded)")
        summary = summarize(frames, pipe.classes)
        write_results(args, pipe, frames, summary, kind="video",
                      video={"width": info.width, "height": info.height, "fps": fps,
                             "frame_count": reader.frames_read})
    print(format_summary(summary))
    if args.output:
        print(f"wrote {args.output} ({reader.frames_read} frames, {info.width}x{info.height}, {fps:g} fps)")
    return 0


def annotate_photos(args: argparse.Namespace) -> int:
    """One photo to one photo, or a folder to a folder with the same relative names."""
    if args.input.is_dir():
        photos = list_images(args.input)
        if not photos:
            raise cli.InputError(f"no photos in {args.input}")
        targets = [args.output / p.relative_to(args.input) if args.output else None for p in photos]
    else:
        photos, targets = [args.input], [args.output]
    frames, skipped = [], []
    with cli.pipeline_from_args(args, video=False) as pipe:
        for i, (src, dst) in enumerate(tqdm(list(zip(photos, targets)), unit="photo", disable=args.no_progress)):
            try:
                image = read_image(src)
            except ImageError as exc:
                if len(photos) == 1:
                    raise
                print(f"warning: skipped {exc}", file=sys.stderr)
                skipped.append({"source": str(src), "error": str(exc)})
                continue
            result = pipe.process(image, i, None, source=str(src))
            frames.append(result)
            if dst is not None:
                draw_faces(image, result.faces, pipe.classes)
                with atomic_path(dst) as tmp:
                    if not cv2.imwrite(str(tmp), image):
                        raise ImageError(f"cannot write {dst}")
        summary = summarize(frames, pipe.classes, per_track=False)
        write_results(args, pipe, frames, summary, kind="images", skipped=skipped)
    print(format_summary(summary, unit="photos"))
    if skipped:
        print(f"{len(skipped)} of {len(photos)} photos could not be read (listed above)", file=sys.stderr)
    return 1 if skipped else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_outputs(args)
    if args.input.is_dir() or is_image(args.input):
        return annotate_photos(args)
    return annotate_video(args)


if __name__ == "__main__":
    sys.exit(cli.run(main))
