"""Annotate a video, a photo or a folder of photos, and write the results per frame and face.

    fer-annotate INPUT.mp4 -o OUTPUT.mp4 [--json results.json] [--csv results.csv]
    fer-annotate photo.jpg -o annotated.jpg [--json ...]
    fer-annotate photos/ -o annotated/ [--json ...]
    fer-annotate INPUT.mp4 --report REPORT_DIR [-o ...] [--json ...]
    fer-annotate a.mp4 b.mp4 videos/ -o OUT/ [--report] [--jobs N] [--cluster local|tcp://HOST:8786]

A video keeps its size, frame rate and frame count (an odd width or height is padded by one black column or
row: the encoders need even sizes). Outputs are checked before the work starts (not the input, not the same file
twice, writable); each goes to a temporary file first and is renamed when complete (a video only once every frame
reads back), so an interrupted run (Ctrl-C, SIGTERM, SIGHUP) or a full disk never leaves a file that looks
finished. An output that fails at the end does not take the others with it. GIFs are read as videos.
--report writes a video's emotion timeline and report (realtime.report; fer-report re-draws it from --json).

Several inputs, a folder of videos (with no photos), or a video and an output folder (-o OUT/, with the slash)
make a batch (realtime.batch): each video gets OUT/NAME/ with NAME.mp4, results.json, log.txt and, with
--report, report/; OUT/manifest.json records every input (digest, settings, status, figures). A rerun skips
what is done with the same settings and retries what failed; a failed video does not stop the others.
--jobs N annotates N videos at once in local processes; --cluster runs the batch on Dask (realtime.cluster).
"""
from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack, redirect_stderr, redirect_stdout
from pathlib import Path

from tqdm import tqdm

from fercore.atomic import OutputError, check_writable, interrupt_on_termination, printable
from fercore.cli import count_of, number, parser, raise_all
from realtime import batch, cluster
from realtime.commands import options
from realtime.errors import InputError, resolved
from realtime.overlay import draw_faces
from realtime.photos import VIDEO_SUFFIXES, ImageError, is_image, list_folder, read_image, write_image
from realtime.pipeline import Pipeline
from realtime.report import write_report
from realtime.results import FrameResult, format_summary, header, summarize, write_csv, write_json
from realtime.settings import MAX_THREADS, Settings, build_pipeline, record
from realtime.video_io import DEFAULT_FPS, WRITER_FOURCC, VideoError, VideoReader, opencv_path, video_writer

WRITE_FAILURES = (OutputError, VideoError, ImageError)  # an output that could not be written; the others are kept


def get_parser() -> argparse.ArgumentParser:
    p = parser("realtime.commands.annotate", __doc__)
    p.add_argument("inputs", type=Path, nargs="+", metavar="input",
                   help="a video file (GIFs are videos), a photo, or a folder of photos; several videos or folders "
                        "of videos make a batch")
    p.add_argument("-o", "--output",
                   help="annotated video (.mp4 or .avi), photo, or folder for a folder of photos; for a batch, the "
                        "folder that gets one folder per video and the manifest")
    p.add_argument("--json", type=Path, help="results per frame and face, and the summary, as JSON")
    p.add_argument("--csv", type=Path, help="results as CSV, one row per face")
    p.add_argument("--report", type=Path, nargs="?", const=True, metavar="FOLDER",
                   help="folder for a video's report: per-track emotion timelines (PNG), a summary table, the "
                        "clearest face of each track and one self-contained HTML page (see fer-report); in a batch, "
                        "without a folder: each video's report in its own folder")
    p.add_argument("--jobs", type=number(1, MAX_THREADS, kind=int), default=1,
                   help="a batch: videos annotated at once, each in its own process with --threads lowered so that "
                        "jobs x threads stays within the cores (default 1)")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="a batch on Dask (the cluster extra): 'local' starts a local cluster of --jobs workers, "
                        "tcp://HOST:8786 uses an existing one (its workers need this project and the same paths)")
    p.add_argument("--allow-short", action="store_true",
                   help="keep the output of a video that ends before the frame count its container announces")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    options.add_pipeline_args(p)
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = get_parser()
    args = p.parse_args(argv)
    args.input = args.inputs[0]
    args.output_folder = args.output is not None and args.output.endswith(("/", os.sep))
    args.output = None if args.output is None else Path(args.output)
    args.batch = is_batch(args)
    if args.batch:
        if args.output is None:
            p.error("several videos need -o OUTPUT_FOLDER: each gets a folder there")
        if args.json or args.csv or isinstance(args.report, Path):
            p.error("in a batch each video's results go to OUTPUT/NAME/results.json and its report (--report, "
                    "without a folder) to OUTPUT/NAME/report/: --json, --csv and --report FOLDER name one file")
        return args
    if args.jobs > 1 or args.cluster:
        p.error("--jobs and --cluster run several videos at once; for one input use --threads")
    if args.report is True:
        p.error("--report needs a folder for one video")
    if not (args.output or args.json or args.csv or args.report):
        p.error("nothing to write: give -o OUTPUT, --json FILE, --csv FILE and/or --report FOLDER")
    return args


def is_batch(args: argparse.Namespace) -> bool:
    """Several inputs; a folder holding videos and no photos; or one video and an output named as a folder
    (ending in a slash)."""
    if len(args.inputs) > 1:
        return True
    if args.input.is_dir():
        photos, others = list_folder(args.input)
        return not photos and any(Path(o["source"]).suffix.lower() in VIDEO_SUFFIXES for o in others)
    out = args.output
    return out is not None and args.input.suffix.lower() in VIDEO_SUFFIXES and args.output_folder


def check_outputs(args: argparse.Namespace) -> None:
    """Before any work: refuse an output that would overwrite the input (or, for a folder, land inside it), two
    outputs naming the same file, an output of the wrong kind, and one that cannot be written."""
    if not args.input.exists():
        raise InputError(f"input not found: {printable(args.input)}")
    src = resolved(args.input)
    outputs = {name: path for name, path in (("-o", args.output), ("--json", args.json), ("--csv", args.csv))
               if path is not None}
    seen: dict[Path, str] = {}
    for name, out in outputs.items():
        dst = resolved(out)
        if dst == src or (args.input.is_dir() and (src in dst.parents or dst in src.parents)):
            raise InputError(f"refusing to write {printable(out)}: it would overwrite, land inside or hold the "
                             f"input {printable(args.input)}")
        if dst in seen:
            raise InputError(f"{seen[dst]} and {name} name the same file {printable(out)}: one would "
                                 "replace the other")
        seen[dst] = name
    if args.output is not None:
        if args.input.is_dir():
            check_writable(args.output, folder=True)
        elif is_image(args.input):
            if not is_image(args.output):
                raise InputError(f"the output of a photo must be a photo (.jpg, .png, ...), got "
                                     f"{printable(args.output)}")
        elif args.output.suffix.lower() not in WRITER_FOURCC:
            raise InputError(f"{printable(args.output)}: cannot write this video type; use one of "
                                 f"{', '.join(WRITER_FOURCC)} ({printable(args.input)} is read as a video)")
        else:
            opencv_path(args.output)
    for name, out in outputs.items():
        if not (name == "-o" and args.input.is_dir()):
            check_writable(out)
    if args.report is not None:
        if args.input.is_dir() or is_image(args.input):
            raise InputError("--report draws a video's timeline; photos have none (their results are in --json)")
        if resolved(args.report) == src:
            raise InputError(f"refusing to write the report into {printable(args.report)}: it is the input")
        check_writable(args.report, folder=True)


def check_links(photos: list[Path], targets: list[Path], output: Path) -> None:
    """Refuse links that would make an annotated copy overwrite a photo: an input that is a link into the output
    folder, and a target in the output folder that is a link to an input (writes follow links)."""
    out = resolved(output)
    inputs = {resolved(photo): photo for photo in photos}
    for real, photo in inputs.items():
        if out in real.parents:
            raise InputError(f"refusing to write into {printable(output)}: the input {printable(photo)} is a link to "
                             f"{printable(real)}, inside it, which the annotated photos would overwrite")
    for target in targets:
        if target.is_symlink() and resolved(target) in inputs:
            raise InputError(f"refusing to write {printable(target)}: it is a link to the input "
                             f"{printable(inputs[resolved(target)])}, which the annotated photo would overwrite")


def results_head(args: argparse.Namespace, pipe: Pipeline, settings: dict, **meta) -> dict:
    """The fields that open the results: what was read, with which settings."""
    return header(pipe.classes, input=printable(args.input), **meta, settings=settings)


def write_results(args: argparse.Namespace, pipe: Pipeline, settings: dict, frames: list[FrameResult],
                  summary: dict, **meta) -> list[Exception]:
    """Write --json and --csv, each on its own: the failures (the other file is still written)."""
    failures: list[Exception] = []
    if args.json:
        try:
            write_json(args.json, results_head(args, pipe, settings, **meta), frames, summary)
        except WRITE_FAILURES as exc:
            failures.append(exc)
    if args.csv:
        try:
            write_csv(args.csv, frames, pipe.classes)
        except WRITE_FAILURES as exc:
            failures.append(exc)
    return failures


def annotate_video(args: argparse.Namespace, settings: Settings) -> dict:
    """Annotate one video; its figures for a batch's manifest."""
    failures: list[Exception] = []
    with VideoReader(args.input) as reader, build_pipeline(settings, "file") as pipe:
        info = reader.info
        fps = info.fps or DEFAULT_FPS
        if info.fps is None:
            print(f"warning: {args.input} does not state its frame rate; assuming {fps:g} fps", file=sys.stderr)
        writing = ExitStack()
        writer = (writing.enter_context(video_writer(args.output, fps, (info.width, info.height)))
                  if args.output else None)
        with writing:  # an error or interruption before the end deletes the partial video
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
            try:
                writing.close()  # the video is read back, synced and renamed into place
            except WRITE_FAILURES as exc:
                failures.append(exc)
                writer = None
        summary = summarize(frames, pipe.classes)
        meta = {"kind": "video", "video": {"width": info.width, "height": info.height, "fps": fps,
                                           "frame_count": reader.frames_read}}
        applied, report = record(settings, "file", pipe), None
        failures += write_results(args, pipe, applied, frames, summary, **meta)
        if args.report:
            doc = {**results_head(args, pipe, applied, **meta), "frames": [fr.to_dict() for fr in frames],
                   "summary": summary}
            try:
                report = write_report(doc, args.report, video=args.input)
                print("".join(f"note: {note}\n" for note in report.notes), end="", file=sys.stderr)
            except WRITE_FAILURES as exc:
                failures.append(exc)
    print(format_summary(summary))
    if writer is not None:
        padding = f"; {writer.padding}" if writer.padding else ""
        print(f"wrote {args.output} ({count_of(reader.frames_read, 'frames')}, {info.width}x{info.height}, "
              f"{fps:g} fps{padding})")
    if report is not None:
        print(f"wrote the report {printable(report.page)}")
    raise_all(failures)
    return {"frames": reader.frames_read, "video_s": round(reader.frames_read / fps, 2), "faces": summary["faces"],
            "tracks": len(summary["tracks"]), "uncertain": summary["uncertain"]}


def annotate_job(job: batch.Job) -> dict:
    """One video of a batch into its folder (realtime.batch calls this, in a worker process or a cluster's): the
    annotated video, results.json, the report if asked; what it prints goes to log.txt there."""
    out = job.output
    args = argparse.Namespace(input=job.input, output=out / f"{job.input.stem}.mp4", json=out / "results.json",
                              csv=None, report=out / "report" if job.report else None, allow_short=job.allow_short,
                              no_progress=True)
    check_outputs(args)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "log.txt", "w") as log, redirect_stdout(log), redirect_stderr(log):  # kept when it fails
        try:
            return annotate_video(args, job.settings)
        except Exception as exc:
            print(f"error: {exc}")
            raise


def annotate_batch(args: argparse.Namespace, settings: Settings) -> int:
    """Several videos into one output folder (realtime.batch); 1 when some failed (the manifest says which)."""
    run = dict(report=args.report is True, allow_short=args.allow_short, progress=not args.no_progress)
    if args.cluster:
        with cluster.dask_executor(args.cluster, workers=args.jobs) as executor:
            result = batch.run_batch(args.inputs, args.output, settings, annotate_job, executor=executor,
                                     jobs=args.jobs if args.cluster == cluster.LOCAL else 1, **run)
    else:
        result = batch.run_batch(args.inputs, args.output, settings, annotate_job, jobs=args.jobs, **run)
    print(f"{len(result.done)} done, {len(result.failed)} failed, {len(result.skipped)} already done, in "
          f"{result.seconds:.0f} s; manifest: {printable(args.output / batch.MANIFEST)}")
    for path, error in result.failed.items():
        print(f"failed: {printable(Path(path))}: {error}", file=sys.stderr)
    return result.exit_status


def annotate_photos(args: argparse.Namespace, settings: Settings) -> int:
    """One photo to one photo, or a folder to a folder with the same relative names."""
    ignored: list[dict] = []
    if args.input.is_dir():
        photos, ignored = list_folder(args.input)
        if not photos:
            raise InputError(f"no photos in {printable(args.input)}"
                                 + (f" ({len(ignored)} other files: {describe_ignored(ignored)})" if ignored else ""))
        targets = [args.output / p.relative_to(args.input) if args.output else None for p in photos]
        if args.output:
            check_links(photos, targets, args.output)
    else:
        photos, targets = [args.input], [args.output]
    frames, skipped, failures, written, photo_failed = [], [], [], 0, False
    with build_pipeline(settings, "photo") as pipe:
        for i, (src, dst) in enumerate(tqdm(list(zip(photos, targets)), unit="photo", disable=args.no_progress)):
            try:
                image = read_image(src)
            except ImageError as exc:
                if len(photos) == 1:
                    raise
                print(f"warning: skipped {exc}", file=sys.stderr)
                skipped.append({"source": printable(src), "error": str(exc)})
                continue
            result = pipe.process(image, i, None, source=printable(src))
            frames.append(result)
            if dst is not None and not photo_failed:  # after a failed write (a full disk) the results go on
                draw_faces(image, result.faces, pipe.classes)
                try:
                    write_image(dst, image)
                    written += 1
                except WRITE_FAILURES as exc:
                    failures.append(exc)
                    photo_failed = True
        summary = summarize(frames, pipe.classes, per_track=False)
        meta = {"ignored": ignored} if args.input.is_dir() else {}
        failures += write_results(args, pipe, record(settings, "photo", pipe), frames, summary, kind="images",
                                  skipped=skipped, **meta)
    print(format_summary(summary, unit="photos"))
    if ignored:
        print(f"note: {count_of(len(ignored), 'files')} that are not photos were left out: {describe_ignored(ignored)}",
              file=sys.stderr)
    if skipped:
        print(f"{len(skipped)} of {count_of(len(photos), 'photos')} could not be read (listed above)", file=sys.stderr)
    if photo_failed and len(photos) > 1:
        print(f"{written} of {len(photos)} annotated photos were written to {printable(args.output)} before a write "
              "failed (they are kept)", file=sys.stderr)
    raise_all(failures)
    return 1 if skipped else 0


def describe_ignored(ignored: list[dict], limit: int = 5) -> str:
    shown = ", ".join(f"{Path(i['source']).name} ({i['reason']})" for i in ignored[:limit])
    return shown + (f" and {len(ignored) - limit} more" if len(ignored) > limit else "")


def command(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = options.settings_from_args(args)
    if args.batch:
        check_writable(args.output, folder=True)
        with interrupt_on_termination():
            return annotate_batch(args, settings)
    check_outputs(args)
    with interrupt_on_termination():  # SIGTERM and SIGHUP clean up like Ctrl-C
        if args.input.is_dir() or is_image(args.input):
            return annotate_photos(args, settings)
        annotate_video(args, settings)
        return 0


def main(argv: list[str] | None = None) -> int:
    return options.run(command, argv)


if __name__ == "__main__":
    sys.exit(main())
