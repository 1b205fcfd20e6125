"""Draw a video's emotion timeline and report from its results file, without running the model again.

    fer-report RESULTS.json -o REPORT_DIR [--video SOURCE.mp4]

Writes REPORT_DIR/index.html (one self-contained page: every image inlined, no script, opens from disk
offline), overview.png (every track over the whole video), track_<id>.png (a track's probabilities over time:
the evidence its label comes from as lines, each frame's own reading as dots, uncertain stretches shaded, held
ones hatched, scene cuts dashed), face_<id>.jpg (the track's clearest face, cut from the source video when it
can be read) and summary.csv (per track: time seen, share of each emotion, share uncertain and held).
Write a results file with `fer-annotate VIDEO --json RESULTS.json`, or the report at once with
`fer-annotate VIDEO --report REPORT_DIR`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fercore.atomic import check_writable, interrupt_on_termination, printable
from fercore.cli import count_of, number, parser
from realtime.commands import options
from realtime.report import MIN_SECONDS, write_report


def get_parser() -> argparse.ArgumentParser:
    p = parser("realtime.commands.report", __doc__)
    p.add_argument("results", type=Path, help="a video's results file (fer-annotate --json)")
    p.add_argument("-o", "--output", type=Path, required=True, help="folder to write the report into")
    p.add_argument("--video", type=Path, default=None,
                   help="the source video to cut the thumbnails from (default: the results' \"input\", as given "
                        "or beside the results file)")
    p.add_argument("--min-seconds", type=number(0), default=MIN_SECONDS,
                   help=f"tracks seen for less get a table row but no timeline (default {MIN_SECONDS:g})")
    return p


def command(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    check_writable(args.output, folder=True)
    with interrupt_on_termination():  # SIGTERM and SIGHUP clean up like Ctrl-C
        report = write_report(args.results, args.output, video=args.video, min_seconds=args.min_seconds)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {printable(report.page)} and {count_of(len(report.files), 'files')} beside it")
    return 0


def main(argv: list[str] | None = None) -> int:
    return options.run(command, argv)


if __name__ == "__main__":
    sys.exit(main())
