from pathlib import Path

import pytest

from models import build_model
from training.config import DEFAULTS, ConfigError, load_config, parse_override
from training.losses import load_teacher
from training.build import init_from

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "training" / "configs"
CONFIGS = sorted(CONFIG_DIR.rglob("*.yaml"))


def _name(path: Path) -> str:
    return path.relative_to(CONFIG_DIR).with_suffix("").as_posix()


@pytest.mark.parametrize("path", CONFIGS, ids=_name)
def test_every_shipped_config_loads_and_builds_its_model(path):
    """A stage that starts from a shipped model (``weights/``) must load it."""
    cfg = load_config(path)
    m = cfg["model"]
    model = build_model(m["name"], **m["args"])  # pretrained weights are not needed to check the shape
    assert model.preprocessing.size == 48
    if str(m["init_from"]).startswith("weights/"):
        init_from(model, str(ROOT / m["init_from"]), cfg)


def test_expected_configs_exist():
    assert {"cnn", "resnet18", "default/stage1", "fast/stage1", "fast/stage5", "experiments/distill"} <= \
        {_name(p) for p in CONFIGS}


def test_overrides_are_typed_and_nested():
    assert parse_override("train.epochs=5") == {"train": {"epochs": 5}}
    assert parse_override("augment.erasing_scale=[0.1, 0.3]") == {"augment": {"erasing_scale": [0.1, 0.3]}}
    cfg = load_config(CONFIGS[0], ["train.epochs=3", "optim.lr=0.01", "model.args.width=0.5", "data.limit=null"])
    assert cfg["train"]["epochs"] == 3 and cfg["optim"]["lr"] == 0.01 and cfg["model"]["args"]["width"] == 0.5


def test_a_model_argument_override_keeps_the_other_arguments():
    stage1 = ROOT / "training/configs/fast/stage1.yaml"
    cfg = load_config(stage1, ["model.args.fc_dropout=0.2", "model.args.conv_dropout=0.1"])
    assert cfg["model"]["args"] == {"width": 0.5, "fc_dropout": 0.2, "conv_dropout": 0.1}
    assert load_config(stage1, ["model.args={fc_dropout: 0.2}"])["model"]["args"] == {"fc_dropout": 0.2}  # replaces


@pytest.mark.parametrize("override, message", [
    ("train.epocs=3", r"unknown config key 'train.epocs'"),
    ("trian.epochs=3", r"unknown config key 'trian'"),
    ("train.epochs=many", r"'train.epochs' expects int"),
    ("train.epochs=2.5", r"'train.epochs' expects int"),
    ("train.epochs=0", r"'train.epochs' must be at least 1"),
    ("optim.name=rmsprop", r"'optim.name' must be one of"),
    ("sched.name=linear", r"'sched.name' must be one of"),
    ("loss.class_weights=[1, 2]", r"'loss.class_weights'"),
    ("augment.erasing_scale=[0.1]", r"'augment.erasing_scale' expects 2 values"),
    ("train=5", r"'train' must be a mapping"),
    ("train.amp=yes please", r"'train.amp' expects bool"),
    ("augment.mixup_alpha=-0.2", r"'augment.mixup_alpha' must be at least 0"),
    ("loss.teacher_weight=1.5", r"'loss.teacher_weight' must be in \[0, 1\]"),
    ("loss.teacher=[]", r"'loss.teacher' must be a path, a non-empty list of paths or null, got \[\]"),
    ("loss.teacher=[a.pt, 3]", r"'loss.teacher' must be a path, a non-empty list of paths or null"),
    ("loss.teacher_mode=live", r"'loss.teacher_mode' must be one of \('cached', 'online'\)"),
    # non-finite numbers, a step size that failed after epoch 1, model arguments and paths
    ("optim.lr=.inf", r"'optim.lr' must be a finite number, got inf"),
    ("augment.rotation=.nan", r"'augment.rotation' must be a finite number, got nan"),
    ("augment.erasing_ratio=[0.3, .inf]", r"'augment.erasing_ratio' must be a finite number"),
    ("sched.step_size=0", r"'sched.step_size' must be at least 1, got 0"),
    ("model.args.width=abc", r"model.args.width must be a number, got 'abc'"),
    ("model.args.bogus=1", r"model.args: cnn has no argument 'bogus' \(its arguments: num_classes, width"),
    ("model.args.width=1000", r"model.args.width must be in \(0, 4\], got 1000"),
    ("model.args={width: 4, input_size: 256}", r"about 1,151 M parameters, more than the 150 M"),
    ("model.args.num_classes=5", r"'model.args.num_classes' must be 7"),
    ("model.name=vgg", r"'model.name' must be one of \('cnn', 'resnet18'\)"),
    ("model.pretrained=true", r"model 'cnn' has no pretrained weights"),
    ("model.init_from=123", r"'model.init_from' expects str, got 123"),
    ("output.dir=''", r"'output.dir' must be a path or null"),
    ("train.epochs=null", r"'train.epochs' must not be null"),
    ("seed=-1", r"'seed' must be in \[0, 4294967295\]"),
    # item 13: ranges
    ("augment.hflip=5", r"'augment.hflip' must be in \[0, 1\], got 5"),
    ("augment.erasing_scale=[0.3, 0.1]", r"'augment.erasing_scale' is a \[min, max\] range, got min 0.3 > max 0.1"),
    ("loss.gamma=-5", r"'loss.gamma' must be at least 0, got -5"),
    ("train.batch_size=1", r"'train.batch_size' must be at least 2, got 1"),
    ("loss.label_smoothing=1", r"'loss.label_smoothing' must be in \[0, 1\)"),
    ("augment.crop_padding=-1", r"'augment.crop_padding' must be in \[0, 16\]"),
    ("sched.pct_start=0", r"'sched.pct_start' must be in \(0, 1\)"),
    ("loss.class_weights=[1, 1, 1, 1, 1, 1, .nan]", r"'loss.class_weights' must be null, 'balanced' or a list of 7"),
    ("optim.lr=[1", r"override 'optim.lr=\[1': not valid YAML"),
])
def test_bad_config_fails_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(CONFIGS[0], [override])


def test_unknown_key_in_yaml_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="unknown config key 'optim.learning_rate'"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_cli_rejects_bad_config_before_training(capsys):
    from training.run import main

    assert main(["--config", str(CONFIGS[0]), "--set", "train.epocs=3"]) == 2
    assert "unknown config key 'train.epocs'" in capsys.readouterr().err


def _flat(cfg: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in cfg.items():
        if isinstance(value, dict) and f"{prefix}{key}" != "model.args":
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _resolved(name: str) -> dict:
    """A shipped config (``name`` under training/configs, without .yaml), resolved and flattened by _flat."""
    return _flat(load_config(CONFIG_DIR / f"{name}.yaml"))


# The recipes that trained the shipped models, resolved (weights/README.md): the values each stage sets, every
# other value the default. Stage 5 keeps stage 4's sched.pct_start 0.2, which its constant schedule does not read.
_RECIPE = {"model.name": "cnn", "loss.name": "cross_entropy", "loss.label_smoothing": 0.1,
           "optim.name": "adamw", "optim.weight_decay": 1.0e-2, "sched.name": "onecycle", "train.batch_size": 64}
_DROPOUT = {"model.args": {"width": 0.5, "conv_dropout": 0.1, "fc_dropout": 0.3}, "augment.erasing_p": 0.25}
EXPECTED = {
    "fast/stage1": _RECIPE | {"model.args": {"width": 0.5}, "optim.lr": 2.0e-3, "sched.pct_start": 0.25,
                              "train.epochs": 12, "output.dir": "runs/fast/stage1"},
    "fast/stage2": _RECIPE | _DROPOUT | {"model.init_from": "runs/fast/stage1/best.pt", "optim.lr": 1.5e-3,
                                         "sched.pct_start": 0.2, "train.epochs": 15,
                                         "output.dir": "runs/fast/stage2"},
    "fast/stage3": _RECIPE | _DROPOUT | {"model.init_from": "runs/fast/stage2/best.pt", "optim.lr": 1.0e-3,
                                         "sched.pct_start": 0.15, "train.epochs": 16,
                                         "output.dir": "runs/fast/stage3"},
    "fast/stage4": _RECIPE | _DROPOUT | {"model.init_from": "runs/fast/stage3/best.pt",
                                         "augment.mixup_alpha": 0.2, "optim.lr": 5.0e-4, "sched.pct_start": 0.2,
                                         "train.epochs": 16, "output.dir": "runs/fast/stage4"},
    "fast/stage5": _RECIPE | _DROPOUT | {"model.init_from": "runs/fast/stage4/best.pt",
                                         "augment.mixup_alpha": 0.2, "optim.lr": 2.0e-4, "sched.name": "none",
                                         "sched.pct_start": 0.2, "train.epochs": 17,
                                         "output.dir": "runs/fast/stage5", "output.keep_epochs": True},
    "fast/stage6": {"model.name": "cnn", "model.args": _DROPOUT["model.args"],
                    "model.init_from": "runs/fast/stage5/best.pt", "augment.rotation": 15.0,
                    "augment.zoom": 0.1, "augment.camera_p": 0.15, "loss.name": "cross_entropy",
                    "loss.label_smoothing": 0.1, "optim.name": "sgd", "optim.lr": 2.0e-3, "optim.momentum": 0.9,
                    "optim.weight_decay": 5.0e-4, "sched.name": "cosine", "train.epochs": 6,
                    "output.dir": "runs/fast/stage6"},
    "experiments/distill": _RECIPE | _DROPOUT | {
        "model.init_from": "runs/fast/stage4/best.pt", "loss.teacher": "runs/fast/stage4/best.pt",
        "augment.mixup_alpha": 0.2, "optim.lr": 5.0e-4, "sched.pct_start": 0.2, "train.epochs": 21,
        "output.dir": "runs/experiments/distill"},
}


# The default's stages: the camera recipe with AdamW one-cycle, and its second one-cycle.
_CAMPAIGN = {"model.name": "cnn", "model.args": {"width": 0.75, "conv_dropout": 0.1, "fc_dropout": 0.3},
             "augment.rotation": 15.0, "augment.zoom": 0.1, "augment.camera_p": 0.15, "loss.name": "cross_entropy",
             "loss.label_smoothing": 0.1, "optim.name": "adamw", "optim.weight_decay": 1.0e-2,
             "sched.name": "onecycle"}
EXPECTED |= {
    "default/stage1": _CAMPAIGN | {"optim.lr": 2.0e-3, "sched.pct_start": 0.25, "train.epochs": 40,
                                   "output.dir": "runs/default/stage1"},
    "default/stage2": _CAMPAIGN | {"model.init_from": "runs/default/stage1/best.pt", "augment.erasing_p": 0.25,
                                   "optim.lr": 1.0e-3, "sched.pct_start": 0.2, "train.epochs": 20,
                                   "output.dir": "runs/default/stage2"},
}


@pytest.mark.parametrize("name", EXPECTED)
def test_the_chains_keep_the_recipes_that_trained_the_shipped_models(name):
    cfg = _resolved(name)
    assert {k: cfg[k] for k in EXPECTED[name]} == EXPECTED[name]
    defaults = _flat(DEFAULTS)
    assert {k: v for k, v in cfg.items() if k not in EXPECTED[name]} == \
        {k: v for k, v in defaults.items() if k not in EXPECTED[name]}


def _makefile_chain(variable: str) -> list[str]:
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line.startswith(f"{variable} :="):
            return line.split(":=", 1)[1].split()
    raise AssertionError(f"no {variable} in the Makefile")


@pytest.mark.parametrize("variable, folder, stages", [("DEFAULT_CHAIN", "default", 2), ("FAST_CHAIN", "fast", 6)])
def test_the_makefile_chains_are_the_stage_order_and_each_stage_starts_from_the_one_before(variable, folder, stages):
    chain = _makefile_chain(variable)
    assert chain == [f"{folder}/stage{i}" for i in range(1, stages + 1)]
    previous = None
    for stage in chain:
        cfg = load_config(CONFIG_DIR / f"{stage}.yaml")
        assert cfg["output"]["dir"] == f"runs/{stage}"
        assert cfg["model"]["init_from"] == (None if previous is None else f"runs/{previous}/best.pt")
        previous = stage


def test_a_child_config_changes_one_model_argument_and_keeps_the_others(tmp_path):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "parent.yaml").write_text(
        "model: {name: cnn, args: {width: 0.5, conv_dropout: 0.1, fc_dropout: 0.3}}\noptim: {lr: 0.01}\n"
        "train: {epochs: 7}\n")
    (tmp_path / "child.yaml").write_text("base: recipes/parent.yaml\nmodel: {args: {fc_dropout: 0.2}}\n"
                                         "optim: {lr: 0.02}\n")
    cfg = load_config(tmp_path / "child.yaml")
    assert cfg["model"]["args"] == {"width": 0.5, "conv_dropout": 0.1, "fc_dropout": 0.2}
    assert cfg["optim"]["lr"] == 0.02 and cfg["optim"]["name"] == "adam" and cfg["train"]["epochs"] == 7
    # the parent is unchanged, and overrides still go on top of the chain
    assert load_config(tmp_path / "recipes" / "parent.yaml")["model"]["args"]["fc_dropout"] == 0.3
    assert load_config(tmp_path / "child.yaml", ["model.args.width=0.25"])["model"]["args"] == {
        "width": 0.25, "conv_dropout": 0.1, "fc_dropout": 0.2}


def test_a_cycle_of_bases_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "b.yaml").write_text("base: sub/../a.yaml\ntrain: {epochs: 3}\n")  # the same file, spelled otherwise
    with pytest.raises(ConfigError, match=r"cycle: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "self.yaml").write_text("base: self.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "self.yaml")


def test_a_missing_or_bad_base_is_an_error_naming_the_file(tmp_path):
    (tmp_path / "child.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(ConfigError, match=r"child\.yaml: base config file not found: .*nowhere\.yaml"):
        load_config(tmp_path / "child.yaml")
    (tmp_path / "child.yaml").write_text("base: [a.yaml]\n")
    with pytest.raises(ConfigError, match=r"config key 'base' must be the path of another config file"):
        load_config(tmp_path / "child.yaml")
    (tmp_path / "parent.yaml").write_text("optim: {learning_rate: 0.1}\n")
    (tmp_path / "child.yaml").write_text("base: parent.yaml\n")
    with pytest.raises(ConfigError, match=r"parent\.yaml: unknown config key 'optim.learning_rate'"):
        load_config(tmp_path / "child.yaml")


def test_output_dir_is_derived_from_the_config_name_unless_set(tmp_path):
    assert load_config(CONFIG_DIR / "fast" / "stage3.yaml")["output"]["dir"] == "runs/fast/stage3"
    assert load_config(CONFIG_DIR / "cnn.yaml")["output"]["dir"] == "runs/cnn"
    assert load_config(CONFIG_DIR / "experiments" / "distill.yaml")["output"]["dir"] == "runs/experiments/distill"
    (tmp_path / "mine.yaml").write_text("train: {epochs: 3}\n")
    assert load_config(tmp_path / "mine.yaml")["output"]["dir"] == "runs/mine"  # a file outside training/configs
    (tmp_path / "fixed.yaml").write_text("output: {dir: elsewhere/fixed}\n")
    assert load_config(tmp_path / "fixed.yaml")["output"]["dir"] == "elsewhere/fixed"
    # a base's own folder is not inherited: two runs would share one output folder
    (tmp_path / "child.yaml").write_text("base: fixed.yaml\n")
    assert load_config(tmp_path / "child.yaml")["output"]["dir"] == "runs/child"
    assert load_config(tmp_path / "child.yaml", ["output.dir=out"])["output"]["dir"] == "out"
    assert load_config(None)["output"]["dir"] == "runs/unnamed"
    assert DEFAULTS["output"]["dir"] is None


def test_numbers_in_exponent_notation_are_floats_on_the_command_line_and_in_files(tmp_path, capsys):
    """the README's and training.run's own example, --set optim.lr=3e-4, is a float (YAML 1.1
    read it as a string and the config refused it)."""
    cfg = load_config(CONFIG_DIR / "cnn.yaml", ["train.epochs=5", "optim.lr=3e-4", "optim.weight_decay=1E-2"])
    assert cfg["optim"]["lr"] == 3e-4 and cfg["optim"]["weight_decay"] == 1e-2
    (tmp_path / "e.yaml").write_text("optim: {lr: 3e-4, weight_decay: 5e-4}\nsched: {min_lr: 1e-6}\n")
    cfg = load_config(tmp_path / "e.yaml")
    assert (cfg["optim"]["lr"], cfg["optim"]["weight_decay"], cfg["sched"]["min_lr"]) == (3e-4, 5e-4, 1e-6)
    assert parse_override("data.root=1e5x") == {"data": {"root": "1e5x"}}  # not a number: still a string
    for doc in ((ROOT / "training" / "run.py").read_text(), (ROOT / "README.md").read_text()):
        assert "--set optim.lr=3e-4" in doc


@pytest.mark.parametrize("content, message", [
    (b"optim: {lr: 0.1\n", r"not valid YAML \(line 2, column 1\)"),
    (b"optim: !!python/object/apply:os.system ['echo hacked']\n", r"not valid YAML .*could not determine a "),
    (b"\x80\x02}q\x00(X\x06\x00\x00\x00formatq\x01\xff\xfe", r"not a YAML config \(not UTF-8 text\)"),
    (b"train: {epochs: 3}\x00\n", r"not valid YAML: unacceptable character"),
])
def test_a_broken_yaml_file_is_one_config_error(tmp_path, capsys, content, message):
    """bad syntax, a Python tag and binary data are a ConfigError naming the file, and
    training.run says so in one line with exit status 1."""
    from training.run import main

    bad = tmp_path / "bad.yaml"
    bad.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(bad)
    assert str(bad) in str(err.value)
    assert main(["--config", str(bad)]) == 1
    out = capsys.readouterr().err
    assert out.startswith("error: ") and out.count("\n") == 1 and "Traceback" not in out


def test_a_shipped_recipe_loads_by_name_from_any_folder(tmp_path, monkeypatch, capsys):
    from training import run

    monkeypatch.chdir(tmp_path)
    assert load_config("cnn") == load_config(CONFIG_DIR / "cnn.yaml")
    assert load_config("default/stage2")["output"]["dir"] == "runs/default/stage2"
    assert load_config("resnet18_focal")["loss"]["name"] == "focal"
    with pytest.raises(ConfigError, match="not found"):
        load_config("no_such_recipe")
    assert run.main(["--list-configs"]) == 0
    listed = capsys.readouterr().out
    assert all(f"{name} " in listed for name in ("cnn", "resnet18_focal", "default/stage1", "fast/stage6"))
    assert run.main(["--config", "fast/stage1", "--set", "train.epochs=2", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "epochs: 2" in printed and "width: 0.5" in printed and "dir: runs/fast/stage1" in printed
