"""Training configuration: defaults, YAML files, dotted command-line overrides, validation.

Every key a config may set appears in DEFAULTS; an unknown key or a value of the wrong type fails at
load time, naming the key, before any data is read.

A config file may name another with a top-level ``base:`` (a path relative to the file that names it): the
base is loaded first (and its own base before it), then this file's keys go on top, so a file holds only
what differs from its base. ``model.args`` is updated key by key, so a child can change one dropout and keep
the width. ``output.dir`` is not inherited: unless the file itself sets it, it is derived from the file's
name, ``runs/<path under training/configs without .yaml>`` (``training/configs/default/stage3.yaml`` ->
``runs/default/stage3``), or ``runs/<file stem>`` for a file elsewhere.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from fercore.tta import TTA_MODES

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "data": {
        "root": "../shared/data/fer2013",  # a folder layout, fer2013.csv or icml_face_data.csv
        "train_split": "train",
        "val_split": "val",
        "cache_dir": "~/.cache/fer-emotion",
        "limit": None,  # keep at most this many images per split (stratified), for smoke runs and tests
    },
    # init_from: a checkpoint of this project whose weights start the run (a new schedule on a trained
    # model); unlike --resume it keeps no optimizer state or progress.
    "model": {"name": "cnn", "pretrained": False, "weights_path": None, "init_from": None, "args": {}},
    "augment": {
        "hflip": 0.5,
        "brightness": 0.2,
        "contrast": 0.2,
        "rotation": 10.0,
        "crop_padding": 4,
        "erasing_p": 0.5,
        "erasing_scale": [0.02, 0.2],
        "erasing_ratio": [0.3, 3.3],
        "equalize_p": 0.0,
        "mixup_alpha": 0.0,  # > 0: mixup with lambda ~ Beta(alpha, alpha) on every batch; 0 = off
        "zoom": 0.0,  # > 0: each face scaled by a random factor in [1 - zoom, 1 + zoom] (box size jitter)
        "camera_p": 0.0,  # probability of each camera effect (low light, blur, low resolution, noise, JPEG)
    },
    # teacher: a checkpoint whose predictions on the training images (with test-time augmentation
    # teacher_tta) become soft targets (distillation), weighted teacher_weight against the labels.
    "loss": {"name": "focal", "gamma": 2.0, "label_smoothing": 0.0, "class_weights": None,
             "teacher": None, "teacher_weight": 0.5, "teacher_tta": "flip"},
    "optim": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0, "momentum": 0.9, "backbone_lr": None},
    "sched": {
        "name": "none",  # none | step | plateau | cosine | onecycle
        "step_size": 10, "gamma": 0.1,  # step
        "factor": 0.5, "patience": 3,  # plateau (on validation accuracy)
        "min_lr": 0.0,  # cosine, plateau
        "pct_start": 0.3,  # onecycle; max_lr is optim.lr (and optim.backbone_lr)
    },
    "train": {
        "epochs": 30,
        "batch_size": 64,
        "eval_batch_size": 256,
        "early_stopping": 0,  # epochs without a better val accuracy before stopping; 0 = off
        "device": "auto",  # auto | cpu | cuda
        "amp": True,  # mixed precision, CUDA only
        "channels_last": True,  # CUDA only
        "threads": 0,  # torch CPU threads; 0 = torch's default
    },
    # keep_epochs: also save every epoch's weights as epoch_NNN.pt, for weight averaging (training.average)
    # dir: null = derived from the config file's name (see the module docstring)
    "output": {"dir": None, "tensorboard": True, "keep_epochs": False},
}

CONFIG_ROOT = Path(__file__).resolve().parent / "configs"
NO_FILE_OUTPUT_DIR = "runs/unnamed"  # output.dir when no config file is given and none is set

CHOICES = {
    "loss.name": ("focal", "cross_entropy"),
    "optim.name": ("adam", "adamw", "sgd"),
    "sched.name": ("none", "step", "plateau", "cosine", "onecycle"),
    "train.device": ("auto", "cpu", "cuda"),
    "loss.teacher_tta": TTA_MODES,
}
FREE_FORM = {"model.args"}  # checked when the model is built


class ConfigError(ValueError):
    pass


def _merge(base: dict, override: dict, prefix: str = "", update_free_form: bool = False) -> dict:
    """``override`` onto ``base``, validated. A free-form mapping (model.args) is replaced, or with
    ``update_free_form`` updated, so ``model.args.x=1`` keeps the other arguments."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        name = f"{prefix}{key}"
        if key not in base:
            known = ", ".join(sorted(base))
            raise ConfigError(f"unknown config key {name!r} (known at this level: {known})")
        if isinstance(base[key], dict) and name not in FREE_FORM:
            if not isinstance(value, dict):
                raise ConfigError(f"config key {name!r} must be a mapping, got {value!r}")
            out[key] = _merge(base[key], value, f"{name}.", update_free_form)
        else:
            value = _check_value(name, base[key], value)
            out[key] = _deep_update(base[key], value) if update_free_form and name in FREE_FORM else value
    return out


def _check_value(name: str, default: Any, value: Any) -> Any:
    if name in CHOICES and value not in CHOICES[name]:
        raise ConfigError(f"config key {name!r} must be one of {CHOICES[name]}, got {value!r}")
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float):
            ok = value.is_integer()
            value = int(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(f"config key {name!r} expects {type(default).__name__}, got {value!r}")
    if isinstance(default, list) and len(value) != len(default):
        raise ConfigError(f"config key {name!r} expects {len(default)} values, got {value!r}")
    return value


def parse_override(text: str) -> dict:
    """``a.b.c=value`` -> {"a": {"b": {"c": value}}} with the value read as YAML (numbers, lists, null)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.path=value")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else None
    for part in reversed(key.strip().split(".")):
        value = {part: value}
    return value


def _deep_update(base: dict, new: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in new.items():
        out[key] = _deep_update(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> dict:
    """Defaults <- base config files <- YAML file <- overrides, validated. Raises ConfigError naming the
    offending key (and the file, for a key read from a file)."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        cfg = _load_file(path, ())
        own = _read_yaml(path).get("output")
        cfg["output"]["dir"] = own.get("dir") if isinstance(own, dict) else None  # not inherited from a base
    for text in overrides:
        key = text.split("=", 1)[0].strip()
        below_free_form = any(key.startswith(f"{name}.") for name in FREE_FORM)
        cfg = _merge(cfg, parse_override(text), update_free_form=below_free_form)
    if cfg["output"]["dir"] is None:
        cfg["output"]["dir"] = default_output_dir(path)
    _check_consistency(cfg)
    return cfg


def default_output_dir(path: str | Path | None) -> str:
    """``runs/<path under training/configs without the suffix>``, ``runs/<stem>`` for a file elsewhere."""
    if path is None:
        return NO_FILE_OUTPUT_DIR
    path = Path(path).resolve()
    try:
        name = path.relative_to(CONFIG_ROOT).with_suffix("").as_posix()
    except ValueError:
        name = path.stem
    return f"runs/{name}"


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping")
    return data


def _load_file(path: Path, chain: tuple[Path, ...]) -> dict:
    """DEFAULTS <- ``path``'s bases, innermost first <- ``path``, validated. ``chain``: the files that
    named this one as their base, to report a cycle."""
    key = path.resolve()
    if key in chain:
        names = " -> ".join(str(p) for p in (*chain, key))
        raise ConfigError(f"config files base on each other in a cycle: {names}")
    data = _read_yaml(path)
    base = data.pop("base", None)
    if base is None:
        cfg = copy.deepcopy(DEFAULTS)
    else:
        if not isinstance(base, str) or not base.strip():
            raise ConfigError(f"{path}: config key 'base' must be the path of another config file, got {base!r}")
        base_path = path.parent / base
        if not base_path.is_file():
            raise ConfigError(f"{path}: base config file not found: {base_path}")
        cfg = _load_file(base_path, (*chain, key))
    try:
        return _merge(cfg, data, update_free_form=True)  # model.args updates the base's key by key
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _check_consistency(cfg: dict) -> None:
    for key in ("train.epochs", "train.batch_size", "train.eval_batch_size"):
        section, name = key.split(".")
        if cfg[section][name] < 1:
            raise ConfigError(f"config key {key!r} must be at least 1, got {cfg[section][name]}")
    if cfg["optim"]["lr"] <= 0:
        raise ConfigError(f"config key 'optim.lr' must be positive, got {cfg['optim']['lr']}")
    cw = cfg["loss"]["class_weights"]
    if cw is not None and cw != "balanced" and not (isinstance(cw, list) and len(cw) == 7):
        raise ConfigError("config key 'loss.class_weights' must be null, 'balanced' or a list of 7 numbers")
    for key in ("hflip", "erasing_p", "equalize_p", "camera_p"):
        if not 0.0 <= cfg["augment"][key] <= 1.0:
            raise ConfigError(f"config key 'augment.{key}' is a probability in [0, 1], got {cfg['augment'][key]}")
    if not 0.0 <= cfg["augment"]["zoom"] < 1.0:
        raise ConfigError(f"config key 'augment.zoom' must be in [0, 1), got {cfg['augment']['zoom']}")
    if cfg["augment"]["mixup_alpha"] < 0:
        raise ConfigError(f"config key 'augment.mixup_alpha' must be 0 (off) or positive, "
                          f"got {cfg['augment']['mixup_alpha']}")
    if not 0.0 <= cfg["loss"]["teacher_weight"] <= 1.0:
        raise ConfigError(f"config key 'loss.teacher_weight' must be in [0, 1], got {cfg['loss']['teacher_weight']}")
    if cfg["data"]["limit"] is not None and cfg["data"]["limit"] < 1:
        raise ConfigError("config key 'data.limit' must be null or at least 1")
