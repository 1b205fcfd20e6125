"""One command-line convention for every entry point (fercore.cli): ``usage: python -m <module>``, a help text
for every option, bad values rejected as usage errors (exit 2), a failure the user can fix as one ``error:``
line without a traceback (exit 1), Ctrl-C as 130."""
import argparse
import importlib
import inspect
import subprocess
import sys

import pytest

from fercore import cli
from fercore.paths import ROOT

ENTRY_POINTS = ["training.run", "training.evaluate", "training.average", "training.preview", "training.benchmark",
                "training.corrupted_val", "training.calibrate", "training.curves", "training.compare_exports",
                "models.onnx_export", "models.quantize", "realtime.commands.report", "tools.real_footage",
                "realtime.commands.webcam", "realtime.commands.annotate", "realtime.commands.evaluate", "tools.benchmark",
                "tools.detector_eval", "tools.readability_curves", "realtime.commands.crop_faces"]


def python_m(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_the_help_parser_finds_an_undocumented_option(undocumented):
    p = cli.parser("some.module", "Does things.\n\n    python -m some.module --here")
    g = p.add_argument_group("group")
    g.add_argument("--documented", help="a long help text " * 6)
    g.add_argument("--bare")
    g.add_argument("--bare-with-a-long-name-and-metavar", metavar="SOMETHING_LONG")
    p.add_argument("input")
    text = p.format_help()
    assert text.startswith("usage: python -m some.module")
    assert undocumented(text) == ["input", "--bare BARE", "--bare-with-a-long-name-and-metavar SOMETHING_LONG"]


@pytest.mark.slow
@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_help_names_the_command_and_describes_every_option(module, undocumented):
    done = python_m(module, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m {module} ")
    assert undocumented(done.stdout) == []


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_every_command_has_get_parser_command_and_main(module):
    """One entry-point convention: ``get_parser()`` builds the parser (named as ``program`` names the command),
    ``command(argv)`` parses and works, ``main(argv) -> int`` runs it through fercore.cli.run."""
    mod = importlib.import_module(module)
    assert [name for name in ("get_parser", "command", "main") if not callable(getattr(mod, name, None))] == []
    ap = mod.get_parser()
    assert isinstance(ap, argparse.ArgumentParser) and ap.prog == cli.program(module)
    assert inspect.signature(mod.main, eval_str=True).return_annotation is int


@pytest.mark.parametrize("module, args", [
    pytest.param("training.run", ["--config", "training/configs/cnn.yaml", "--set", "data.root={missing}/fer2013",
                                  "--set", "output.dir={tmp}/run"], marks=pytest.mark.slow),
    ("training.evaluate", ["{missing}/model.pt", "--out", "{tmp}/eval"]),
    ("training.average", ["{missing}/a.pt", "{missing}/b.pt", "--out", "{tmp}/swa.pt"]),
    pytest.param("models.onnx_export", ["{missing}/model.pt", "-o", "{tmp}/model.onnx"], marks=pytest.mark.slow),
])
def test_a_user_error_is_one_error_line_and_exit_status_1(module, args, tmp_path):
    missing = tmp_path / "missing"
    done = python_m(module, *(a.format(missing=missing, tmp=tmp_path) for a in args))
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert f"not found: {missing}" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("module, args, wrong", [
    ("training.run", ["--config", "training/configs/cnn.yaml", "--device", "gpu"], "--device"),
    ("training.run", ["--config", "training/configs/cnn.yaml", "--set", "train.epocs=3"], "--set"),
    ("training.run", ["--set", "train.epochs=3"], "--config"),
    ("training.evaluate", ["weights/default.pt", "--batch-size", "0"], "--batch-size"),
    ("training.evaluate", ["weights/default.pt", "--device", "gpu"], "--device"),
    ("training.evaluate", ["weights/default.pt", "--tta", "mirror"], "--tta"),
    ("training.average", ["a.pt", "b.pt", "--out", "swa.pt", "--batch-size", "0"], "--batch-size"),
    ("training.average", ["a.pt", "b.pt"], "--out"),
    ("training.preview", ["--seed", "-1"], "--seed"),
    ("training.benchmark", ["--models", "resnet18 (48, imagenet stem)"], "--models"),
    ("training.benchmark", ["--steps", "0"], "--steps"),
    ("training.corrupted_val", ["--out", "copy", "--seed", "x"], "--seed"),
    ("models.onnx_export", [], "checkpoint"),
    ("models.onnx_export", ["weights/default.pt", "-o"], "--output"),
])
def test_a_bad_option_is_a_usage_error(module, args, wrong, capsys):
    main = __import__(module, fromlist=["main"]).main
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: python -m {module}") and f"python -m {module}: error: " in err and wrong in err


def test_a_device_the_machine_lacks_is_a_user_error(capsys):
    from training.evaluate import main

    assert main(["weights/default.pt", "--device", "cuda:99"]) == 1
    assert capsys.readouterr().err.startswith("error: --device=cuda:99: ")


def test_the_benchmark_returns_its_exit_status(capsys):
    from training.benchmark import main

    assert main(["--models", "cnn-0.5", "--batch", "2", "--steps", "1", "--device", "cpu"]) == 0
    assert "train cnn-0.5" in capsys.readouterr().out


# --- fercore.cli itself --------------------------------------------------------------------------------------
def test_number_checks_kind_and_range():
    assert cli.number(1, kind=int)("3") == 3
    assert cli.number(0, 1, hi_open=True)("0.5") == 0.5
    for parse, text in [(cli.number(1, kind=int), "0"), (cli.number(1, kind=int), "1.5"),
                        (cli.number(0, 1, hi_open=True), "1"), (cli.number(0), "x")]:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_realtime_and_training_share_the_code():
    from realtime.commands import options

    assert options.number is cli.number


def test_a_console_script_names_itself(monkeypatch):
    """``fer-annotate --help`` says ``usage: fer-annotate``; ``python -m`` keeps the module's name."""
    monkeypatch.setattr(sys, "argv", ["/venv/bin/fer-annotate", "--help"])
    assert cli.parser("realtime.commands.annotate", None).prog == "fer-annotate"
    monkeypatch.setattr(sys, "argv", ["/work/realtime/commands/annotate.py", "--help"])
    assert cli.parser("realtime.commands.annotate", None).prog == "python -m realtime.commands.annotate"


@pytest.mark.parametrize("text", ["cpu", "cuda", "cuda:0", "cuda:12", "auto"])
def test_device_names(text):
    assert cli.device_name(text) == text


@pytest.mark.parametrize("text", ["gpu", "CUDA", "cuda:", "cuda:x", "mps", "cpu:0", ""])
def test_bad_device_names(text):
    with pytest.raises(argparse.ArgumentTypeError):
        cli.device_name(text)


def test_resolve_device():
    assert cli.resolve_device("cpu", 0) == "cpu"
    assert cli.resolve_device("auto", 0) == "cpu" and cli.resolve_device("auto", 2) == "cuda"
    assert cli.resolve_device("cuda", 1) == "cuda" and cli.resolve_device("cuda:1", 2) == "cuda:1"
    with pytest.raises(cli.CommandError, match="CUDA is not available"):
        cli.resolve_device("cuda", 0)
    with pytest.raises(cli.CommandError, match="has 2 CUDA device"):
        cli.resolve_device("cuda:2", 2)


def test_add_data_args():
    p = cli.parser("x", None)
    cli.add_data_args(p)
    args = p.parse_args(["--cache-dir", "none", "--device", "cuda:1", "--batch-size", "8"])
    assert args.cache_dir is None and args.device == "cuda:1" and args.batch_size == 8
    assert p.parse_args([]).cache_dir == cli.DEFAULT_CACHE_DIR
    p = cli.parser("x", None)
    cli.add_data_args(p, device=False)
    assert not hasattr(p.parse_args([]), "device")


class Oops(ValueError):
    pass


def _raising(exc):
    def main(argv):
        raise exc
    return main


@pytest.mark.parametrize("main, status", [
    (lambda argv: 0, 0), (lambda argv: None, 0), (lambda argv: 1, 1),
    (_raising(Oops("bad input")), 1), (_raising(cli.CommandError("bad input")), 1),
    (_raising(KeyboardInterrupt()), 130), (_raising(SystemExit(2)), 2), (_raising(SystemExit(0)), 0),
])
def test_run_gives_the_exit_status(main, status):
    assert cli.run(main, [], (Oops,)) == status


def test_run_tells_a_user_error_in_one_line(capsys):
    cli.run(_raising(Oops("no such file: x.pt")), [], (Oops,))
    assert capsys.readouterr().err == "error: no such file: x.pt\n"
    cli.run(_raising(KeyboardInterrupt()), [])
    assert capsys.readouterr().err == "interrupted\n"


def test_a_name_with_a_newline_still_makes_one_error_line(capsys):
    """A file name may hold a newline or a carriage return: the message shows them escaped, on one line."""
    cli.run(_raising(Oops("image not found: two\nlines\r.jpg\t")), [], (Oops,))
    assert capsys.readouterr().err == "error: image not found: two\\nlines\\r.jpg\\t\n"
    cli.run(_raising(Oops("bad name: \x1b[31mred\u2028é")), [], (Oops,))  # terminal escapes too; letters stay
    assert capsys.readouterr().err == "error: bad name: \\x1b[31mred\\u2028é\n"


def test_ctrl_c_while_a_command_imports_ends_as_run_ends_it(capsys):
    with pytest.raises(SystemExit) as stopped:
        with cli.interruptible_imports():
            raise KeyboardInterrupt
    assert stopped.value.code == 130 and capsys.readouterr().err == "interrupted\n"
    with cli.interruptible_imports():  # anything else passes through untouched
        value = 1
    assert value == 1


def test_run_lets_a_bug_through():
    with pytest.raises(ValueError):  # not a user error type: a traceback, not one line
        cli.run(_raising(ValueError("bug")), [], (Oops,))
    with pytest.raises(Oops):
        cli.run(_raising(Oops("no types given")), [])
