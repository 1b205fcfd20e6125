"""Training configuration: defaults, YAML files, dotted command-line overrides, validation.

Every key a config may set appears in DEFAULTS; an unknown key or a value of the wrong type fails at
load time, naming the key, before any data is read.

A config file may name another with a top-level ``base:`` (a path relative to the file that names it): the
base is loaded first (and its own base before it), then this file's keys go on top, so a file holds only
what differs from its base. ``model.args`` is updated key by key, so a child can change one dropout and keep
the width. ``output.dir`` is not inherited: unless the file itself sets it, it is derived from the file's
name, ``runs/<path under training/configs without .yaml>`` (``training/configs/fast/stage3.yaml`` ->
``runs/fast/stage3``), or ``runs/<file stem>`` for a file elsewhere.

Numbers are read as YAML 1.2 reads them: ``3e-4`` is a float (YAML 1.1, PyYAML's default, would read a string).
Non-finite numbers, values out of their range and model arguments its constructor does not take are refused
when the config loads, before anything is built.
"""
from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import yaml

from fercore.classes import EMOTIONS
from fercore.tta import TTA_MODES
from models.description import ARCH_ARGS, PRETRAINED_ARCHS, check_arch_args
from training.errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "data": {
        "root": "../shared/data/fer2013",  # a folder layout, fer2013.csv or icml_face_data.csv
        "train_split": "train",
        "val_split": "val",
        "cache_dir": "~/.cache/fer-emotion",
        "limit": None,  # keep at most this many images per split (stratified), for smoke runs and tests
        # a FER+ alignment csv: the training images it marks as not a face are left out (training.ferplus)
        "exclude_not_faces": None,
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
    # teacher: a checkpoint, or a list of them (an ensemble: their probabilities averaged), whose predictions
    # become soft targets (distillation), weighted teacher_weight against the labels. teacher_mode cached:
    # its predictions on the training images (with test-time augmentation teacher_tta), computed once;
    # online: its predictions on each augmented (and mixed) batch as the model sees it, a forward pass a step.
    "loss": {"name": "focal", "gamma": 2.0, "label_smoothing": 0.0, "class_weights": None,
             "teacher": None, "teacher_weight": 0.5, "teacher_tta": "flip", "teacher_mode": "cached"},
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
        "channels_last": True,  # NHWC tensors: 15-20% faster CPU training of the cnn (training.benchmark), and on CUDA
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
    "loss.teacher_mode": ("cached", "online"),
}
FREE_FORM = {"model.args"}  # checked against the model's constructor (models.description)
# Keys whose default is null, with the type a value must have; and the one key with a default that may be null.
NULLABLE = {"data.limit": int, "data.exclude_not_faces": str, "model.weights_path": str, "model.init_from": str,
            "loss.teacher": str, "optim.backbone_lr": float, "output.dir": str}
MAY_BE_NULL = {"data.cache_dir", "loss.class_weights", *NULLABLE}
PATHS = {"data.root", "data.cache_dir", "data.exclude_not_faces", "model.weights_path", "model.init_from",
         "loss.teacher", "output.dir"}
# Ranges of numbers: key -> (low, high, low end open, high end open); every number must also be finite.
RANGES = {
    "seed": (0, 2**32 - 1, False, False),
    "augment.hflip": (0, 1, False, False), "augment.erasing_p": (0, 1, False, False),
    "augment.equalize_p": (0, 1, False, False), "augment.camera_p": (0, 1, False, False),
    "augment.brightness": (0, 1, False, False), "augment.contrast": (0, 1, False, False),
    "augment.rotation": (0, 180, False, False), "augment.crop_padding": (0, 16, False, False),
    "augment.erasing_scale": (0, 1, True, False), "augment.erasing_ratio": (0, math.inf, True, True),
    "augment.zoom": (0, 1, False, True), "augment.mixup_alpha": (0, math.inf, False, True),
    "loss.gamma": (0, math.inf, False, True), "loss.label_smoothing": (0, 1, False, True),
    "loss.teacher_weight": (0, 1, False, False),
    "optim.lr": (0, math.inf, True, True), "optim.backbone_lr": (0, math.inf, True, True),
    "optim.weight_decay": (0, math.inf, False, True), "optim.momentum": (0, 1, False, True),
    "sched.step_size": (1, math.inf, False, True), "sched.gamma": (0, math.inf, True, True),
    "sched.factor": (0, 1, True, True), "sched.patience": (0, math.inf, False, True),
    "sched.min_lr": (0, math.inf, False, True), "sched.pct_start": (0, 1, True, True),
    "train.epochs": (1, math.inf, False, True),
    "train.batch_size": (2, math.inf, False, True),  # BatchNorm needs two images to train on
    "train.eval_batch_size": (1, math.inf, False, True), "train.early_stopping": (0, math.inf, False, True),
    "train.threads": (0, 1024, False, False), "data.limit": (1, math.inf, False, True),
}
PATH_LISTS = {"loss.teacher"}  # a path, or a non-empty list of paths
# [low, high] pairs whose first value may not exceed the second.
PAIRS = ("augment.erasing_scale", "augment.erasing_ratio")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading numbers as YAML 1.2 does: 3e-4 and 1e5 are floats, not strings."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def read_yaml_text(text: str, where: str) -> Any:
    """YAML ``text`` (safe: no Python tags), or ConfigError naming ``where`` and the fault in one line."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML{at}: {problem}") from None


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
    if value is None:
        if name not in MAY_BE_NULL:
            raise ConfigError(f"config key {name!r} must not be null")
        return value
    if name in PATH_LISTS and isinstance(value, list):
        if not value or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"config key {name!r} must be a path, a non-empty list of paths or null, got {value!r}")
        return [_check_value(name, None, v) for v in value]
    if default is None:
        if name not in NULLABLE:
            return value  # loss.class_weights: checked with the others (_check_consistency)
        default = NULLABLE[name](1)
    if isinstance(default, list):
        if not isinstance(value, list) or len(value) != len(default):
            raise ConfigError(f"config key {name!r} expects {len(default)} values, got {value!r}")
        return [_check_value(name, d, v) for d, v in zip(default, value)]
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
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key {name!r} must be a finite number, got {value!r}")
    if name in RANGES:
        lo, hi, lo_open, hi_open = RANGES[name]
        if not ((value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)):
            if hi == math.inf:
                bound = f"more than {lo}" if lo_open else f"at least {lo}"
            else:
                bound = f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
            raise ConfigError(f"config key {name!r} must be {bound}, got {value!r}")
    if name in PATHS and not value.strip():
        raise ConfigError(f"config key {name!r} must be a path or null, got an empty string")
    return value


def parse_override(text: str) -> dict:
    """``a.b.c=value`` -> {"a": {"b": {"c": value}}} with the value read as YAML (numbers, lists, null)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.path=value")
    key, raw = text.split("=", 1)
    value = read_yaml_text(raw, f"override {text!r}") if raw.strip() else None
    for part in reversed(key.strip().split(".")):
        value = {part: value}
    return value


def _deep_update(base: dict, new: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in new.items():
        out[key] = _deep_update(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out


def config_path(name: str | Path) -> Path:
    """A config file: a path, or a shipped recipe's name (``cnn``, ``default/stage2``: training/configs/NAME.yaml),
    so recipes work by name from any folder and in an installed copy."""
    path = Path(name)
    shipped = CONFIG_ROOT / f"{name}.yaml"
    return shipped if not path.is_file() and path.suffix not in (".yaml", ".yml") and shipped.is_file() else path


def shipped_configs() -> list[tuple[str, str]]:
    """Each shipped recipe's name and the first line of its comment."""
    recipes = []
    for path in sorted(CONFIG_ROOT.rglob("*.yaml")):
        first = next((line.lstrip("# ").strip() for line in path.read_text().splitlines() if line.startswith("#")),
                     "")
        recipes.append((path.relative_to(CONFIG_ROOT).with_suffix("").as_posix(), first))
    return recipes


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> dict:
    """Defaults <- base config files <- YAML file (a path or a shipped recipe's name, ``config_path``) <-
    overrides, validated. Raises ConfigError naming the offending key (and the file, for a key read from a
    file)."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = config_path(path)
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
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a YAML config (not UTF-8 text)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    data = read_yaml_text(text, str(path)) or {}
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
    """What one key alone cannot say: pairs in order, class weights, the model and its arguments."""
    for key in PAIRS:
        section, name = key.split(".")
        low, high = cfg[section][name]
        if low > high:
            raise ConfigError(f"config key {key!r} is a [min, max] range, got min {low} > max {high}")
    cw = cfg["loss"]["class_weights"]
    if cw is not None and cw != "balanced" and not (
            isinstance(cw, list) and len(cw) == len(EMOTIONS) and all(
                not isinstance(w, bool) and isinstance(w, (int, float)) and math.isfinite(w) and w >= 0 for w in cw)
            and sum(cw) > 0):
        raise ConfigError(f"config key 'loss.class_weights' must be null, 'balanced' or a list of "
                          f"{len(EMOTIONS)} numbers >= 0, got {cw!r}")
    m = cfg["model"]
    if m["name"] not in ARCH_ARGS:
        raise ConfigError(f"config key 'model.name' must be one of {tuple(ARCH_ARGS)}, got {m['name']!r}")
    try:
        args = check_arch_args(m["name"], m["args"], "model.args")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if args.get("num_classes", len(EMOTIONS)) != len(EMOTIONS):
        raise ConfigError(f"config key 'model.args.num_classes' must be {len(EMOTIONS)}, FER-2013's classes")
    if (m["pretrained"] or m["weights_path"]) and m["name"] not in PRETRAINED_ARCHS:
        raise ConfigError(f"model {m['name']!r} has no pretrained weights; set model.pretrained: false and "
                          "model.weights_path: null")
