"""training.run's folder and resume faults: a user's config.yaml in output.dir is not replaced without
--overwrite, and --resume refuses changed settings (naming them) except more epochs, which it records while
config.yaml keeps the first run's record."""
import yaml

from models.checkpoint import read_checkpoint
from training.run import main as run_main


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error: ") == 1, err
    return err[err.index("error: "):]


def test_a_users_config_in_output_dir_is_not_replaced(tiny_fer_csv, tmp_path, capsys, tiny_run):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.yaml").write_text("# my own settings\nlr: 0.1\n")
    assert run_main(tiny_run.args(tiny_fer_csv, out, "train.epochs=1")) == 1
    err = _error(capsys)
    assert "holds config.yaml but no checkpoint" in err and "--overwrite" in err
    assert (out / "config.yaml").read_text() == "# my own settings\nlr: 0.1\n"
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml"]


def test_resume_refuses_changed_settings_and_records_more_epochs(tiny_fer_csv, tmp_path, capsys, tiny_run):
    out = tmp_path / "run"
    assert run_main(tiny_run.args(tiny_fer_csv, out, "train.epochs=1")) == 0
    first_config, last = (out / "config.yaml").read_text(), (out / "last.pt").read_bytes()
    capsys.readouterr()
    for changes, named in ((["optim.lr=0.01"], "optim.lr: 0.001 -> 0.01"),
                           (["data.limit=70", "seed=3"], "data.limit: None -> 70; seed: 0 -> 3"),
                           (["train.batch_size=16"], "train.batch_size: 32 -> 16")):
        assert run_main(tiny_run.args(tiny_fer_csv, out, "train.epochs=2", *changes) + ["--resume"]) == 1
        err = _error(capsys)
        assert f"cannot resume {out / 'last.pt'} with other settings ({named})" in err, err
        assert (out / "last.pt").read_bytes() == last and (out / "config.yaml").read_text() == first_config
    assert not (out / "resume_history.yaml").exists()
    assert run_main(tiny_run.args(tiny_fer_csv, out, "train.epochs=2", "train.device=cpu") + ["--resume"]) == 0
    assert read_checkpoint(out / "last.pt")["training"]["epoch"] == 2
    assert (out / "config.yaml").read_text() == first_config
    (entry,) = yaml.safe_load((out / "resume_history.yaml").read_text())
    assert entry["epoch"] == 1 and entry["batch"] == 0
    assert entry["changed"] == {"train.epochs": {"was": 1, "now": 2}}


def test_resume_refuses_more_epochs_under_a_schedule_laid_out_for_fewer(tiny_fer_csv, tmp_path, capsys, tiny_run):
    out = tmp_path / "cosine"
    assert run_main(tiny_run.args(tiny_fer_csv, out, "train.epochs=1", "sched.name=cosine")) == 0
    capsys.readouterr()
    assert run_main(tiny_run.args(tiny_fer_csv, out, "train.epochs=2", "sched.name=cosine") + ["--resume"]) == 1
    assert "train.epochs (the cosine schedule was laid out for 1 epochs)" in _error(capsys)


def test_a_run_refused_for_a_full_disk_leaves_no_log(tiny_fer_csv, tmp_path, capsys, tiny_run, monkeypatch):
    from collections import namedtuple

    from training import rundir

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda path: usage(2**30, 2**30 - 4096, 4096))
    out = tmp_path / "run"
    assert run_main(tiny_run.args(tiny_fer_csv, out, "train.epochs=1")) == 1
    assert "has 0 MB free; this run's checkpoints need about" in _error(capsys)
    assert not out.exists() or list(out.iterdir()) == []
    monkeypatch.undo()
    assert run_main(tiny_run.args(tiny_fer_csv, out, "train.epochs=1")) == 0  # nothing in the way after


def test_a_resnet_run_without_imagenet_weights_is_one_line(tiny_fer_csv, tmp_path, capsys, monkeypatch):
    import torch

    import models.resnet as resnet
    from fercore.paths import CONFIGS

    class Offline:  # torchvision's weights entry on a machine without the internet or a cached file
        url = resnet.imagenet_weights().url

        def get_state_dict(self, **kwargs):
            raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(resnet, "imagenet_weights", Offline)
    args = ["--config", str(CONFIGS / "resnet18.yaml"), f"--set=data.root={tiny_fer_csv}", "--set=data.cache_dir=null",
            f"--set=output.dir={tmp_path / 'run'}", "--set=output.tensorboard=false", "--set=train.threads=1"]
    assert run_main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: could not get the ImageNet ResNet-18 weights (network unreachable): put ")
    assert err.count("\n") == 1 and "model.weights_path=FILE" in err and "model.pretrained=false" in err


def test_data_limit_keeps_exactly_that_many_images_and_every_class():
    import numpy as np

    from training.data import stratified_subset

    rng = np.random.default_rng(0)
    labels = rng.choice(7, size=3000, p=[0.14, 0.015, 0.14, 0.25, 0.17, 0.11, 0.175])  # FER-2013's proportions
    for limit in (7, 8, 50, 99, 640, 641, 1000, 2999):
        idx = stratified_subset(labels, limit)
        assert len(idx) == limit == len(set(idx.tolist())), limit
        assert set(labels[idx].tolist()) == set(range(7))
    assert len(stratified_subset(labels, 3)) == 3 and len(stratified_subset(labels, 5000)) == 3000
