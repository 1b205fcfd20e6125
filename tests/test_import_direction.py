"""Dependencies point one way: fercore <- models <- training, realtime (the library) <- realtime.commands <- tools.
Light modules stay light."""
import ast
import subprocess
import sys

import pytest

from fercore.paths import ROOT


def imported_modules(package: str) -> dict[str, set[str]]:
    """Every module each file of ``package`` imports (at any depth of the file); ``realtime`` is the library
    alone, without its commands."""
    out = {}
    paths = (ROOT / package).rglob("*.py") if package != "realtime" else (ROOT / "realtime").glob("*.py")
    for path in paths:
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        out[str(path.relative_to(ROOT))] = names
    return out


@pytest.mark.parametrize("package, forbidden", [
    ("fercore", ("models", "training", "realtime", "tools", "torch", "cv2", "mediapipe")),
    ("models", ("training", "realtime", "tools")),
    ("realtime", ("training", "tools", "realtime.commands")),
    ("realtime/commands", ("training", "tools")),
    ("training", ("realtime", "tools")),
])
def test_no_module_imports_against_the_direction(package, forbidden):
    wrong = {f: sorted(m for m in mods if any(m == x or m.startswith(x + ".") for x in forbidden))
             for f, mods in imported_modules(package).items()}
    assert not {f: m for f, m in wrong.items() if m}


def test_commands_import_no_other_command():
    """A command uses the library and the shared options, never another command."""
    wrong = {f: sorted(m for m in mods if m.startswith("realtime.commands.") and m != "realtime.commands.options")
             for f, mods in imported_modules("realtime/commands").items()}
    assert not {f: m for f, m in wrong.items() if m}


@pytest.mark.parametrize("module, heavy", [
    ("realtime.tracking", ("torch", "mediapipe", "cv2")),
    ("realtime.results", ("torch", "mediapipe")),
    ("training.config", ("torch",)),
    ("fercore.metrics", ("torch", "matplotlib")),
])
def test_light_modules_load_nothing_heavy(module, heavy):
    code = (f"import sys, {module}\n"
            f"if {module!r} == 'training.config':\n"
            f"    training.config.load_config('training/configs/cnn.yaml')\n"
            f"print(' '.join(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
