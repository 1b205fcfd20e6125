from pathlib import Path

import pytest

from models import build_model
from training.config import ConfigError, load_config, parse_override

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "training" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads_and_builds_its_model(path):
    cfg = load_config(path)
    m = cfg["model"]
    model = build_model(m["name"], **m["args"])  # pretrained weights are not needed to check the shape
    assert model.preprocessing.size == 48


def test_expected_configs_exist():
    assert {"cnn.yaml", "resnet18.yaml", "default.yaml"} <= {p.name for p in CONFIGS}


def test_overrides_are_typed_and_nested():
    assert parse_override("train.epochs=5") == {"train": {"epochs": 5}}
    assert parse_override("augment.erasing_scale=[0.1, 0.3]") == {"augment": {"erasing_scale": [0.1, 0.3]}}
    cfg = load_config(CONFIGS[0], ["train.epochs=3", "optim.lr=0.01", "model.args.width=0.5", "data.limit=null"])
    assert cfg["train"]["epochs"] == 3 and cfg["optim"]["lr"] == 0.01 and cfg["model"]["args"]["width"] == 0.5


def test_a_model_argument_override_keeps_the_other_arguments():
    default = ROOT / "training/configs/default.yaml"
    cfg = load_config(default, ["model.args.fc_dropout=0.2", "model.args.conv_dropout=0.1"])
    assert cfg["model"]["args"] == {"width": 0.5, "fc_dropout": 0.2, "conv_dropout": 0.1}
    assert load_config(default, ["model.args={depth: 2}"])["model"]["args"] == {"depth": 2}  # a mapping replaces


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
    ("augment.mixup_alpha=-0.2", r"'augment.mixup_alpha' must be 0 \(off\) or positive"),
    ("loss.teacher_weight=1.5", r"'loss.teacher_weight' must be in \[0, 1\]"),
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
