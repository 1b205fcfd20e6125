import pytest
import torch

from fercore.classes import EMOTIONS
from fercore.readability import ReadabilityLimits
from models import build_model
from models.checkpoint import CheckpointError, atomic_save, load_model, make_checkpoint, read_checkpoint


def test_round_trip_rebuilds_the_same_model(tmp_path):
    model = build_model("cnn", width=0.25).eval()
    with torch.no_grad():  # make BatchNorm statistics non-trivial so they must travel too
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
    path = tmp_path / "model.pt"
    atomic_save(make_checkpoint(model, EMOTIONS, config={"seed": 3}, epoch=4,
                                metrics={"val_acc": 0.5}), path)
    loaded, ckpt = load_model(path)
    x = torch.randn(4, 1, 48, 48)
    assert torch.equal(loaded(x), model(x))
    assert not loaded.training
    assert ckpt["classes"] == list(EMOTIONS) and ckpt["epoch"] == 4 and ckpt["metrics"]["val_acc"] == 0.5
    assert ckpt["preprocessing"] == {"size": 48, "mean": 0.5, "std": 0.5, "margin": 0.15}
    assert ckpt["config"] == {"seed": 3}
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_missing_file_and_foreign_files_get_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "nope.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a checkpoint of this project"):
        read_checkpoint(foreign)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        read_checkpoint(garbage)


def test_failed_save_leaves_no_file(tmp_path):
    path = tmp_path / "model.pt"

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_save({"x": Unsaveable()}, path)
    assert list(tmp_path.iterdir()) == []


# --- nothing in a checkpoint is trusted ------------------------------------------------------
def _valid(**args) -> dict:
    torch.manual_seed(0)
    return make_checkpoint(build_model("cnn", width=0.125, **args).eval(), EMOTIONS)


def _nan_weight(ckpt):
    name = next(k for k, v in ckpt["model"].items() if v.is_floating_point())
    ckpt["model"][name] = ckpt["model"][name].clone().fill_(float("nan"))


def _other_shapes(ckpt):
    ckpt["model"]["classifier.9.weight"] = torch.zeros(7, 3)


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(classes=["a", "b", "c"]), r"3 class names for a model with 7 outputs"),
    (lambda c: c.update(classes=["happy"] * 7), r"classes must be distinct"),
    (lambda c: c.update(classes=[]), r"classes must be a non-empty list"),
    (lambda c: c.update(classes=[1, 2, 3, 4, 5, 6, 7]), r"classes must be non-empty strings"),
    (lambda c: c["preprocessing"].update(std=0), r"preprocessing needs .*std in \[0.001, 100\]"),
    (lambda c: c["preprocessing"].update(mean=float("nan")), r"preprocessing mean must be a finite number"),
    (lambda c: c["preprocessing"].update(size=4096), r"preprocessing size must be a whole number of pixels in"),
    (_nan_weight, r"holds NaN or infinite values"),
    (lambda c: c.update(arch="vgg16"), r"unknown architecture 'vgg16'"),
    (lambda c: c["arch_args"].update(depth=3), r"cnn has no argument 'depth'"),
    (lambda c: c["arch_args"].update(width="wide"), r"arch_args.width must be a number"),
    (lambda c: c["arch_args"].update(width=1000.0), r"arch_args.width must be in \(0, 4\]"),
    (lambda c: c["arch_args"].update(num_classes=0), r"arch_args.num_classes must be in \[1, 1000\]"),
    (lambda c: c.update(version="1"), r"version must be a whole number, got '1'"),
    (lambda c: c.update(version=2), r"has checkpoint version 2; this code reads up to 1"),
    (lambda c: c.pop("model"), r"lacks 'model'"),
    (lambda c: c.pop("classes"), r"lacks 'classes'"),
    (lambda c: c.update(model={"x": 3}), r"model must be a state dict"),
    (lambda c: c.update(temperature=float("inf")), r"temperature must be a number in \[0.01, 100\]"),
    (lambda c: c.update(epoch="five"), r"epoch must be a int"),
    (lambda c: c.update(readability={"max_yaw": 80}), r"readability limits: missing 'max_roll'"),
    (lambda c: c.update(readability={**ReadabilityLimits().to_dict(), "min_confidence": 2}),
     r"min_confidence must be a number in \[0, 1\], got 2"),
    (_other_shapes, r"the weights do not fit cnn .*classifier.9.weight has shape \[7, 3\], the model \[7, 32\]"),
    (lambda c: c["model"].pop("classifier.9.bias"), r"the weights do not fit cnn .*missing classifier.9.bias"),
])
def test_a_forged_checkpoint_is_refused_before_a_model_is_built(tmp_path, capsys, change, message):
    ckpt = _valid()
    change(ckpt)
    path = tmp_path / "forged.pt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=message):
        load_model(path)
    from training.evaluate import main  # and a command says it in one line, exit status 1

    assert main([str(path), "--data", str(tmp_path / "unused.csv"), "--out", str(tmp_path / "eval")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}") and err.count("\n") == 1


def test_an_absurd_width_is_refused_without_allocating(tmp_path, monkeypatch):
    """A width of 1000 tried to allocate more than 12 GB; nothing is built now."""
    import models.cnn

    ckpt = _valid()
    ckpt["arch_args"]["width"] = 1000.0
    torch.save(ckpt, tmp_path / "wide.pt")
    monkeypatch.setattr(models.cnn.EmotionCNN, "__init__", lambda *a, **k: pytest.fail("a model was built"))
    with pytest.raises(CheckpointError, match=r"width must be in \(0, 4\]"):
        load_model(tmp_path / "wide.pt")


def test_a_checkpoint_never_downloads_weights_nor_reads_files_it_names(tmp_path, monkeypatch):
    """A resnet18 checkpoint with pretrained: true or a weights_path in its arguments is rebuilt from its own
    weights only: no download, no other file read."""
    import models.resnet

    def no_weights(*args, **kwargs):
        pytest.fail("the checkpoint made the model fetch initial weights")

    monkeypatch.setattr(models.resnet, "load_imagenet_state_dict", no_weights)
    monkeypatch.setattr(models.resnet, "imagenet_weights", no_weights)
    model = build_model("resnet18", head_hidden=8).eval()
    ckpt = make_checkpoint(model, EMOTIONS)
    ckpt["arch_args"].update(pretrained=True, weights_path="/etc/shadow")
    torch.save(ckpt, tmp_path / "r.pt")
    loaded, _ = load_model(tmp_path / "r.pt")
    x = torch.randn(2, 1, 48, 48)
    assert torch.equal(loaded(x), model(x))


def test_the_argument_table_matches_the_constructors():
    """models.description checks arguments without torch; its table must name what the constructors take."""
    import inspect

    from models.cnn import EmotionCNN
    from models.description import ARCH_ARGS
    from models.registry import list_models
    from models.resnet import EmotionResNet18

    assert sorted(ARCH_ARGS) == list_models()
    for arch, cls in (("cnn", EmotionCNN), ("resnet18", EmotionResNet18)):
        params = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "imagenet_state")]
        assert params == list(ARCH_ARGS[arch])


def test_shipped_and_older_checkpoints_still_load():
    """The validation accepts what this project wrote: the shipped model, and the format of the earlier default
    (stage 5: channels in its preprocessing, no margin) and of checkpoints without a temperature."""
    from fercore.paths import DEFAULT_CHECKPOINT
    from models.checkpoint import model_from_checkpoint

    model, ckpt = load_model(DEFAULT_CHECKPOINT)
    assert ckpt["arch"] == "cnn" and model.preprocessing.size == 48
    old = _valid()
    old["preprocessing"] = {"size": 48, "channels": 1, "mean": 0.5, "std": 0.5}
    del old["temperature"]
    model = model_from_checkpoint(old)
    assert model.temperature == 1.0 and model.preprocessing.margin == 0.15


def test_a_checkpoint_whose_weights_changed_after_saving_is_refused(tmp_path):
    """Every save records the digest of the weights; a load that finds other weights says the file is damaged."""
    import torch

    from models import build_model
    from models.checkpoint import atomic_save, make_checkpoint, read_checkpoint

    path = tmp_path / "m.pt"
    atomic_save(make_checkpoint(build_model("cnn", width=0.125), list(EMOTIONS)), path)
    ckpt = read_checkpoint(path)
    assert len(ckpt["weights_sha256"]) == 64
    name = next(iter(ckpt["model"]))
    ckpt["model"][name] = ckpt["model"][name] + 1e-3  # as flipped bytes inside the weights would
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="damaged: its weights do not match"):
        read_checkpoint(path)


def test_a_folder_or_a_pipe_is_not_called_missing(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.pt")
    for path in (tmp_path, tmp_path / "pipe.pt"):
        with pytest.raises(CheckpointError, match=r"is not a checkpoint file \(a folder, a device or a pipe\)"):
            read_checkpoint(path)
