"""The command-line convention every entry point follows (training.*, models.onnx_export, realtime.*).

- The program is named as it is run: ``parser("training.evaluate", __doc__)`` shows
  ``usage: python -m training.evaluate``, or ``usage: fer-evaluate-model`` from its console script. Options sit in argument groups and every one has a help text.
- Values are checked by their argparse type (``number``, ``device_name``), so a bad value is a usage error.
- Exit status (``run``): 0 done; 1 a failure the user can fix (a missing file, unreadable data, no GPU), told in
  one ``error: ...`` line on stderr without a traceback; 2 a usage error (argparse: usage and the error);
  130 interrupted with Ctrl-C. Anything else is a bug and ends with its traceback.

Each side names its own user-error types (a checkpoint, data or config error, a camera failure) and passes them
to ``run``; ``CommandError`` is for the few failures that have no type of their own. Like all of fercore this
loads nothing heavy: the caller asks torch how many GPUs there are and hands the count to ``resolve_device``.

A command that imports torch, OpenCV or matplotlib for seconds before its ``main`` (and with it ``run``) starts
wraps those imports in ``interruptible_imports()``, so that a Ctrl-C then ends the same way, quietly with 130,
not with a traceback from inside torch.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
import unicodedata
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

from fercore.paths import SHARED_FER

EXIT_OK, EXIT_USER_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_CACHE_DIR = "~/.cache/fer-emotion"


class CommandError(Exception):
    """A failure the user can fix that has no error type of its own (the message says how)."""


def program(module: str) -> str:
    """The name a command is run by: its console script (``fer-annotate``) when started as one, else
    ``python -m <module>``."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name if name.startswith("fer-") else f"python -m {module}"


def parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """The argument parser of a command (named as it was run, see ``program``), with ``doc`` (the module
    docstring) as its description."""
    return argparse.ArgumentParser(prog=program(module), description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def raise_all(failures: Sequence[BaseException]) -> None:
    """Raise the one failure, or one CommandError joining several (the outputs that did not fail were kept)."""
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise CommandError("; ".join(str(f) for f in failures))


def number(lo: float, hi: float = math.inf, hi_open: bool = False, kind: type = float) -> Callable[[str], float]:
    """An argparse type: a number in [lo, hi] (or [lo, hi) with ``hi_open``), so a bad value is a usage error."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a{'n integer' if kind is int else ' number'}: {text!r}")
        if not (lo <= value and (value < hi if hi_open else value <= hi)):
            raise argparse.ArgumentTypeError(f"{text} is outside [{lo:g}, {hi:g}{')' if hi_open else ']'}")
        return value
    return parse


_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def device_name(text: str) -> str:
    """An argparse type: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when there is a GPU). Whether the
    machine has that device is checked by ``resolve_device``."""
    if not _DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a device: {text!r} (use cpu, cuda, cuda:N or auto)")
    return text


def resolve_device(name: str, cuda_devices: int, option: str = "--device") -> str:
    """The device ``name`` (see ``device_name``) means on a machine with ``cuda_devices`` GPUs (the caller asks
    ``torch.cuda.device_count()``); CommandError when it has no such device."""
    if name == "auto":
        return "cuda" if cuda_devices else "cpu"
    if name == "cpu":
        return name
    if not cuda_devices:
        raise CommandError(f"{option}={name}: CUDA is not available on this machine (PyTorch sees no GPU); "
                           "use cpu")
    index = int(name.partition(":")[2] or 0)
    if index >= cuda_devices:
        raise CommandError(f"{option}={name}: this machine has {cuda_devices} CUDA device(s), "
                           f"cuda:0 to cuda:{cuda_devices - 1}")
    return name


def _cache_dir(text: str) -> str | None:
    return None if text.lower() == "none" else text


def add_data_args(p: argparse.ArgumentParser, device: bool = True, batch_size: int = 256) -> argparse._ArgumentGroup:
    """The FER-2013 options the training commands share, in one group (returned, for a command's own split
    options): ``--data``, ``--cache-dir`` (``args.cache_dir`` is None for 'none') and, with ``device``,
    ``--device`` (checked with resolve_device) and ``--batch-size``."""
    g = p.add_argument_group("data and device" if device else "data")
    g.add_argument("--data", default=str(SHARED_FER),
                   help="FER-2013 as a folder of <split>/<emotion>/ images, fer2013.csv or icml_face_data.csv "
                        "(default: ../shared/data/fer2013 beside the checkout)")
    g.add_argument("--cache-dir", type=_cache_dir, default=DEFAULT_CACHE_DIR,
                   help=f"where decoded images are cached; 'none' to disable (default {DEFAULT_CACHE_DIR})")
    if device:
        g.add_argument("--device", type=device_name, default="cpu",
                       help="cpu, cuda, cuda:N, or auto: cuda when there is a GPU (default cpu)")
        g.add_argument("--batch-size", type=number(1, kind=int), default=batch_size,
                       help=f"images per forward pass (default {batch_size})")
    return g


def one_line(text: str) -> str:
    """``text`` on one line: control characters and line separators (a newline in a file name, a terminal
    escape) written as Python escapes (\\n, \\x1b, \\u2028); everything else, letters of any script included, kept."""
    return "".join(ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in ("Cc", "Zl", "Zp")
                   else ch for ch in text)


def count_of(n: int, nouns: str) -> str:
    """'1 face', '2 faces', '0 faces': ``nouns`` is the plural of a noun whose singular drops the final s."""
    return f"{n} {nouns[:-1] if n == 1 else nouns}"


def run(main: Callable[[list[str] | None], int | None], argv: Sequence[str] | None = None,
        user_errors: tuple[type[BaseException], ...] = ()) -> int:
    """Run an entry point and return its exit status (see the module docstring): ``user_errors`` (and
    CommandError) become one 'error:' line on stderr (``one_line``: a file name with a newline cannot split it)
    and 1, Ctrl-C 130, argparse's exit (usage error 2, --help 0) its status. Other exceptions propagate with their
    traceback."""
    try:
        return main(None if argv is None else list(argv)) or EXIT_OK
    except (CommandError, *user_errors) as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as exc:  # argparse: a usage error or --help
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or EXIT_OK
        print(exc.code, file=sys.stderr)  # sys.exit("message"), as Python itself would
        return EXIT_USER_ERROR


@contextmanager
def interruptible_imports() -> Iterator[None]:
    """Ctrl-C inside the block: 'interrupted' on stderr and exit status 130, as ``run`` gives later."""
    try:
        yield
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
