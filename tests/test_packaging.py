"""pyproject.toml: `pip install .` and `pip install -e .` give importable packages with the shipped weights and
console scripts that answer --help. Each install goes into a new virtual environment (no network: no build
isolation, no dependencies; the dependencies come from the environment running the tests) and is used from
another folder, so nothing of the checkout is on the path by accident."""
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
from pathlib import Path

import pytest

from fercore.paths import ROOT

pytestmark = pytest.mark.slow

NOT_SHIPPED = shutil.ignore_patterns(".git", ".venv", "runs", "outputs", "build", "*.egg-info", "__pycache__",
                                     ".pytest_cache", "screenshots")

# Run by the installed copy: the API on a sample photo, where its modules and weights come from, and every
# console script with --help in one process (each would otherwise import torch or MediaPipe on its own).
CHECK = textwrap.dedent("""
    import contextlib, io, sys
    from importlib.metadata import distribution
    import fercore.paths, realtime
    from realtime import EmotionRecognizer
    with EmotionRecognizer(threads=1) as fer:
        print("emotion:", fer.top_emotion(sys.argv[1])[0])
    with EmotionRecognizer("accurate", threads=1) as fer:
        print("accurate:", fer.top_emotion(sys.argv[1])[0])
    print("realtime:", realtime.__file__)
    print("weights:", fercore.paths.DEFAULT_CHECKPOINT)
    for ep in distribution("fer-realtime").entry_points:
        sys.argv = [ep.name, "--help"]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                status = ep.load()()
            except SystemExit as exc:
                status = exc.code
        print("script:", ep.name, status, out.getvalue().startswith("usage: "))
""")


def site_packages() -> list[str]:
    """Where the test environment's packages are (torch, MediaPipe, setuptools, pip ...), never the checkout."""
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *sys.path}
    return sorted(p for p in paths if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir())


def install(tmp_path: Path, source: Path, editable: bool) -> Path:
    """A new virtual environment that sees the test environment's packages, with ``source`` installed into it."""
    venv = tmp_path / ("venv-editable" if editable else "venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    own = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    (Path(own) / "test-environment.pth").write_text("\n".join(site_packages()) + "\n")
    cmd = [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
           *(["-e"] if editable else []), source]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return python


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A copy of the checkout to build from: a build writes build/ and *.egg-info into its source folder."""
    copy = tmp_path_factory.mktemp("src") / "fer"
    shutil.copytree(ROOT, copy, ignore=NOT_SHIPPED)
    return copy


def scripts() -> list[str]:
    return sorted(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])


@pytest.mark.parametrize("editable", [False, True], ids=["install", "editable"])
def test_the_installed_packages_work_from_another_folder(source, tmp_path, editable):
    python = install(tmp_path, source, editable)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    photo = ROOT / "samples" / "photos" / "astronaut.jpg"
    done = subprocess.run([python, "-c", CHECK, photo], cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if not line.startswith("script: "))
    assert lines["emotion"] == "happy"
    # The code and the weights come from the install: the copy's site-packages, or for -e the copy's checkout
    home = source if editable else python.parents[1]
    assert Path(lines["realtime"]).is_relative_to(home) and Path(lines["weights"]).is_relative_to(home)
    if not editable:
        assert Path(lines["weights"]).parent.name == "weights" and Path(lines["weights"]).parent.parent.name == "fercore"
    answers = sorted(line.split()[1:] for line in done.stdout.splitlines() if line.startswith("script: "))
    assert answers == [[name, "0", "True"] for name in scripts()]
    assert lines["accurate"] == "happy"  # a shipped model by name
    if not editable:  # the script files themselves, named as they are run (each run costs seconds of imports)
        for name in ("fer-annotate", "fer-train"):
            help_run = subprocess.run([python.parent / name, "--help"], cwd=elsewhere, capture_output=True,
                                      text=True, timeout=120)
            assert help_run.returncode == 0 and help_run.stdout.startswith(f"usage: {name} "), help_run.stderr


def test_the_readme_options_work_from_an_installed_copy(source, tmp_path, tiny_fer_csv):
    """From a folder outside the checkout: a shipped model by name on the command line, and a shipped recipe by
    name trained for one epoch on a small data set."""
    python = install(tmp_path, source, editable=False)
    bin_dir, elsewhere = python.parent, tmp_path / "elsewhere"
    elsewhere.mkdir()
    photo = ROOT / "samples" / "photos" / "astronaut.jpg"
    done = subprocess.run([bin_dir / "fer-annotate", photo, "-o", "out.jpg", "--checkpoint", "fast", "--threads", "1",
                           "--no-progress"], cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and (elsewhere / "out.jpg").is_file(), done.stderr
    assert "1 photo, 1 with faces; 1 face: 1 labelled" in done.stdout
    done = subprocess.run([bin_dir / "fer-train", "--config", "cnn", "--set", f"data.root={tiny_fer_csv}",
                           "--set", "data.limit=64", "--set", "train.batch_size=16", "--set", "train.epochs=1",
                           "--set", "train.device=cpu",
                           "--set", "data.cache_dir=none", "--set", "output.tensorboard=false"],
                          cwd=elsewhere, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (elsewhere / "runs" / "cnn" / "best.pt").is_file()
