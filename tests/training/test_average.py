"""Weight averaging (training.average): the mean is exact, BatchNorm statistics are re-measured, and a
run with output.keep_epochs gives the checkpoints it averages."""
import pytest
import torch

from fercore.classes import EMOTIONS
from models import build_model
from models.checkpoint import CheckpointError, atomic_save, load_model, make_checkpoint, read_checkpoint
from training.average import average_checkpoints, main as average_main, recompute_batchnorm
from training.trainer import Trainer



def _checkpoint(tmp_path, name, seed, **args):
    torch.manual_seed(seed)
    model = build_model("cnn", width=0.125, **args)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    path = tmp_path / name
    atomic_save(make_checkpoint(model, EMOTIONS, epoch=seed), path)
    return path


def test_average_is_the_mean_of_the_weights(tmp_path):
    paths = [_checkpoint(tmp_path, f"e{i}.pt", seed=i) for i in range(3)]
    inputs = [read_checkpoint(p) for p in paths]
    ckpts = [c["model"] for c in inputs]
    avg = average_checkpoints(inputs, paths)
    name = next(k for k, v in avg["model"].items() if v.is_floating_point() and v.dim() == 4)
    torch.testing.assert_close(avg["model"][name], sum(c[name] for c in ckpts) / 3)
    assert not torch.equal(avg["model"][name], ckpts[-1][name])
    assert avg["epoch"] == 2  # the metadata of the last one


def test_average_refuses_different_models_and_a_single_checkpoint(tmp_path):
    a = _checkpoint(tmp_path, "a.pt", seed=0)
    b = _checkpoint(tmp_path, "b.pt", seed=1, fc_dropout=0.1)
    with pytest.raises(CheckpointError, match="arch_args"):
        average_checkpoints([read_checkpoint(a), read_checkpoint(b)], [a, b])
    with pytest.raises(CheckpointError, match="at least two"):
        average_checkpoints([read_checkpoint(a)], [a])


def test_recompute_batchnorm_measures_the_first_layer_statistics():
    torch.manual_seed(0)
    model = build_model("cnn", width=0.125).eval()
    images = torch.randint(0, 256, (64, 48, 48), dtype=torch.uint8).numpy()
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = []
    hook = bn.register_forward_hook(lambda m, inp, out: seen.append(inp[0].mean((0, 2, 3))))
    recompute_batchnorm(model, images, batch_size=16)  # four equal batches: their mean is the exact mean
    hook.remove()
    assert len(seen) == 4 and not model.training
    torch.testing.assert_close(bn.running_mean, torch.stack(seen).mean(0))


def test_keep_epochs_then_average_command(tiny_fer_csv, tmp_path, capsys, tiny_run):
    Trainer(tiny_run.cfg(tiny_fer_csv, tmp_path, "train.epochs=2", "output.keep_epochs=true")).fit()
    epochs = sorted(tmp_path.glob("epoch_*.pt"))
    assert [p.name for p in epochs] == ["epoch_001.pt", "epoch_002.pt"]
    assert "training" not in read_checkpoint(epochs[0])
    last = read_checkpoint(tmp_path / "last.pt")["model"]
    assert all(torch.equal(last[k], v) for k, v in read_checkpoint(epochs[1])["model"].items())

    out = tmp_path / "swa.pt"
    args = [*map(str, epochs), "--out", str(out), "--data", str(tiny_fer_csv), "--cache-dir", "none"]
    assert average_main(args) == 0
    model, ckpt = load_model(out)
    assert ckpt["metrics"]["averaged_from"] == ["epoch_001.pt", "epoch_002.pt"]
    assert 0.0 <= ckpt["metrics"]["val_acc"] <= 1.0
    assert "average of 2: val acc" in capsys.readouterr().out
    assert average_main([str(epochs[0]), str(tmp_path / "missing.pt"), "--out", str(out)]) == 1
    assert capsys.readouterr().err == f"error: checkpoint not found: {tmp_path / 'missing.pt'}\n"
    assert average_main([str(epochs[0]), "--out", str(out), "--data", str(tiny_fer_csv), "--cache-dir", "none"]) == 1
    assert "at least two checkpoints" in capsys.readouterr().err
