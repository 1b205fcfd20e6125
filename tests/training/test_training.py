"""Tiny trainings: loss falls on real FER-2013 images, resume is exact, Ctrl-C is resumable, DDP runs; the
training step with ready-made parts."""
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchvision.models import resnet18 as tv_resnet18

from models.checkpoint import CheckpointError, load_model, read_checkpoint
from models.inference import predict
from training.errors import ConfigError
from training.losses import Objective, mix_targets
from training.run import main as run_main
from training.trainer import Trainer, build_parts

ROOT = Path(__file__).resolve().parents[2]
def weights(path):
    return read_checkpoint(path)["model"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.slow
def test_tiny_training_on_real_fer2013_loss_falls(shared_fer, tmp_path, tiny_run):
    cfg = tiny_run.cfg(shared_fer, tmp_path, "data.limit=320", "train.epochs=4", "model.args.width=0.25",
                   "sched.name=none", "optim.lr=0.003", "output.tensorboard=true",
                   "augment.erasing_p=0.0", "augment.rotation=0.0", f"data.cache_dir={tmp_path / 'cache'}")
    best = Trainer(cfg).fit()
    history = read_checkpoint(tmp_path / "last.pt")["training"]["history"]
    assert len(history) == 4
    assert history[-1]["train_loss"] < 0.9 * history[0]["train_loss"]
    assert best["val_acc"] == max(h["val_acc"] for h in history)
    assert read_checkpoint(tmp_path / "best.pt")["metrics"]["val_acc"] == best["val_acc"]
    assert "training" not in read_checkpoint(tmp_path / "best.pt")  # shipped files carry no optimizer state
    log = (tmp_path / "train.log").read_text()
    assert "epoch   4/4" in log and "val loss" in log
    assert list((tmp_path / "tensorboard").iterdir())


def test_the_model_trains_channels_last_on_the_cpu_unless_told_not_to(tiny_fer_csv, tmp_path, tiny_run):
    """train.channels_last (on by default) stores the model and each batch NHWC on the CPU too: 15-20% faster
    there (training.benchmark --contiguous times the other); the checkpoint loads either way."""
    for on in (True, False):
        cfg = tiny_run.cfg(tiny_fer_csv, tmp_path / str(on), f"train.channels_last={str(on).lower()}",
                           "train.epochs=1")
        trainer = Trainer(cfg)
        conv = next(p for p in trainer.model.parameters() if p.dim() == 4 and p.shape[1] > 1)
        assert conv.is_contiguous(memory_format=torch.channels_last) == on
        trainer.fit()
        load_model(tmp_path / str(on) / "best.pt")


@pytest.mark.parametrize("sched, mixup_alpha", [("step", 0.0), pytest.param("plateau", 0.3, marks=pytest.mark.slow)])
def test_resume_after_a_finished_epoch_gives_the_same_weights(tiny_fer_csv, tmp_path, sched, mixup_alpha, tiny_run):
    extra = ("data.train_split=train", f"sched.name={sched}", "sched.step_size=1", "sched.patience=0",
             f"augment.mixup_alpha={mixup_alpha}")
    Trainer(tiny_run.cfg(tiny_fer_csv, tmp_path / "straight", "train.epochs=3", *extra)).fit()
    Trainer(tiny_run.cfg(tiny_fer_csv, tmp_path / "split", "train.epochs=1", *extra)).fit()
    Trainer(tiny_run.cfg(tiny_fer_csv, tmp_path / "split", "train.epochs=3", *extra), resume=True).fit()
    assert_same_weights(weights(tmp_path / "straight/last.pt"), weights(tmp_path / "split/last.pt"))
    a = read_checkpoint(tmp_path / "straight/last.pt")["training"]
    b = read_checkpoint(tmp_path / "split/last.pt")["training"]
    assert [h["val_acc"] for h in a["history"]] == [h["val_acc"] for h in b["history"]]
    assert a["best_acc"] == b["best_acc"]


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_that_resumes_exactly(tiny_fer_csv, tmp_path, tiny_run):
    """SIGINT mid-run (mid-epoch, one-cycle schedule) then --resume equals an uninterrupted run."""
    common = ["--config", str(ROOT / "training/configs/cnn.yaml")] + [
        f"--set={s}" for s in tiny_run.overrides + [f"data.root={tiny_fer_csv}", "train.epochs=6", "train.batch_size=8",
                                      "sched.name=onecycle"]]
    assert run_main(common + [f"--set=output.dir={tmp_path / 'straight'}"]) == 0

    out = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, "-m", "training.run", *common, f"--set=output.dir={out}"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "last.pt").exists():  # first epoch done
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, output
    assert "continue with --resume" in output
    state = read_checkpoint(out / "last.pt")["training"]
    assert (state["epoch"], state["step"]) < (6, 0), "the run finished before the signal arrived"

    assert run_main(common + [f"--set=output.dir={out}", "--resume"]) == 0
    assert_same_weights(weights(tmp_path / "straight/last.pt"), weights(out / "last.pt"))


def test_resume_refuses_a_different_model(tiny_fer_csv, tmp_path, tiny_run):
    Trainer(tiny_run.cfg(tiny_fer_csv, tmp_path, "train.epochs=1")).fit()
    with pytest.raises(CheckpointError, match="config asks for"):
        Trainer(tiny_run.cfg(tiny_fer_csv, tmp_path, "train.epochs=2", "model.args.width=0.25"), resume=True)


def test_init_from_starts_a_new_run_from_trained_weights(tiny_fer_csv, tmp_path, tiny_run):
    Trainer(tiny_run.cfg(tiny_fer_csv, tmp_path / "first", "train.epochs=1")).fit()
    first = weights(tmp_path / "first/last.pt")
    second = Trainer(tiny_run.cfg(tiny_fer_csv, tmp_path / "second", "train.epochs=1",
                              "model.args.fc_dropout=0.1", f"model.init_from={tmp_path / 'first/last.pt'}"))
    assert_same_weights(first, second.model_without_ddp.state_dict())
    assert second.epoch == 0  # a new schedule, not a resume
    second.fit()
    aside = (tmp_path / "first/last.pt").rename(tmp_path / "aside.pt")  # resuming needs second/last.pt alone
    resumed = Trainer(tiny_run.cfg(tiny_fer_csv, tmp_path / "second", "train.epochs=2",
                               "model.args.fc_dropout=0.1", f"model.init_from={tmp_path / 'first/last.pt'}"),
                      resume=True)
    assert_same_weights(weights(tmp_path / "second/last.pt"), resumed.model_without_ddp.state_dict())
    aside.rename(tmp_path / "first/last.pt")
    with pytest.raises(CheckpointError, match="does not fit"):
        Trainer(tiny_run.cfg(tiny_fer_csv, tmp_path / "third", "model.args.width=0.25",
                         f"model.init_from={tmp_path / 'first/last.pt'}"))
    with pytest.raises(CheckpointError, match="resnet18"):
        Trainer(tiny_run.cfg(tiny_fer_csv, tmp_path / "fourth", "model.name=resnet18", "model.args={}",
                         "model.pretrained=false", f"model.init_from={tmp_path / 'first/last.pt'}"))


@pytest.mark.slow
def test_a_pretrained_run_resumes_without_its_imagenet_file(tiny_fer_csv, tmp_path, tiny_run):
    """The ImageNet weights only start a run; resuming it (maybe on another machine) needs its own last.pt alone."""
    imagenet = tmp_path / "resnet18-imagenet.pth"
    torch.save(tv_resnet18(weights=None).state_dict(), imagenet)  # same keys and shapes as the ImageNet file
    resnet = ("model.name=resnet18", "model.args={}", "model.pretrained=true", f"model.weights_path={imagenet}")
    Trainer(tiny_run.cfg(tiny_fer_csv, tmp_path / "run", "train.epochs=1", *resnet)).fit()
    imagenet.unlink()
    resumed = Trainer(tiny_run.cfg(tiny_fer_csv, tmp_path / "run", "train.epochs=2", *resnet), resume=True)
    assert_same_weights(weights(tmp_path / "run/last.pt"), resumed.model_without_ddp.state_dict())
    with pytest.raises(ConfigError, match="not found"):  # a new run still needs it
        Trainer(tiny_run.cfg(tiny_fer_csv, tmp_path / "new", "train.epochs=1", *resnet))


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(tiny_fer_csv, tmp_path, tiny_run):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "training.run", "--config", str(ROOT / "training/configs/cnn.yaml"), "--device", "cpu"]
    cmd += [f"--set={s}" for s in tiny_run.overrides + [f"data.root={tiny_fer_csv}", "train.epochs=2", f"output.dir={tmp_path}"]]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 process(es)" in result.stdout
    assert result.stdout.count("epoch   2/2") == 1  # only rank 0 logs
    ckpt = read_checkpoint(tmp_path / "last.pt")
    assert ckpt["epoch"] == 2
    # 192 images over 2 ranks at batch 32: 3 steps each, so 192 images seen per epoch in all.
    assert ckpt["training"]["step"] == 0 and len(ckpt["training"]["history"]) == 2


@pytest.mark.slow
def test_teacher_targets_are_its_tta_predictions_fed_to_the_objective(tiny_fer_csv, tiny_checkpoint, tmp_path,
                                                                       tiny_run):
    cfg = tiny_run.cfg(tiny_fer_csv, tmp_path, "train.epochs=1", f"loss.teacher={tiny_checkpoint}",
                   "loss.teacher_weight=0.25", "loss.teacher_tta=tencrop", "augment.mixup_alpha=0.2")
    parts = build_parts(cfg)
    teacher, _ = load_model(tiny_checkpoint)
    expected = predict(teacher, parts.data.train_images, teacher.preprocessing, tta="tencrop")
    torch.testing.assert_close(parts.teacher_probs, torch.from_numpy(expected))
    assert parts.criterion.teacher_weight == 0.25
    calls = []

    class Recording(Objective):
        def forward(self, logits, y, teacher_probs=None, partner=None, lam=1.0):
            calls.append((y, teacher_probs, partner, lam))
            return super().forward(logits, y, teacher_probs, partner, lam)

    trainer = Trainer(cfg, replace(parts, criterion=Recording(parts.criterion.label_loss, 0.25)))
    idx = torch.tensor([3, 1, 4])
    trainer._train_step(idx)
    y, probs, partner, lam = calls[0]  # each image's label, teacher rows mixed as the images, and mixup's pairs
    assert torch.equal(y, torch.from_numpy(parts.data.train_labels)[idx])
    assert torch.equal(probs, mix_targets(parts.teacher_probs[idx], partner, lam))
    assert sorted(partner.tolist()) == [0, 1, 2] and 0 < lam < 1
    trainer.fit()
    assert "teacher agrees with the training labels" in (tmp_path / "train.log").read_text()
    with pytest.raises(CheckpointError, match="not found"):
        Trainer(tiny_run.cfg(tiny_fer_csv, tmp_path / "b", f"loss.teacher={tmp_path / 'missing.pt'}"))


@pytest.mark.parametrize("members", [1, 2])
def test_a_teacher_online_scores_each_batch_as_the_model_sees_it(tiny_fer_csv, tiny_checkpoint, tmp_path, tiny_run,
                                                                 members):
    """teacher_mode online runs the teacher (one calibrated checkpoint, or the ensemble a list of them makes) on
    every augmented, mixed batch instead of caching per-image targets."""
    ckpt = read_checkpoint(tiny_checkpoint)
    ckpt["temperature"] = 1.7
    torch.save(ckpt, tmp_path / "teacher.pt")
    teacher = ", ".join([str(tmp_path / "teacher.pt")] * members)
    cfg = tiny_run.cfg(tiny_fer_csv, tmp_path / "run", "train.epochs=1", f"loss.teacher=[{teacher}]",
                       "loss.teacher_mode=online", "augment.mixup_alpha=0.2")
    parts = build_parts(cfg)
    assert parts.teacher_probs is None and (members == 1) != (parts.teacher.arch == "ensemble")
    calls = []

    class Recording(Objective):
        def forward(self, logits, y, soft=None, partner=None, lam=1.0):
            calls.append(soft)
            return super().forward(logits, y, soft, partner, lam)

    trainer = Trainer(cfg, replace(parts, criterion=Recording(parts.criterion.label_loss, 0.5)))
    gen_state = trainer.gen.get_state()
    idx = torch.tensor([3, 1, 4, 0])
    trainer._train_step(idx)
    trainer.gen.set_state(gen_state)  # the same augmented, mixed batch again
    x, _, _ = parts.augment(parts.data.train_images[idx], trainer.gen)
    single, _ = load_model(tmp_path / "teacher.pt")
    expected = torch.softmax(single.eval()(x) / 1.7, dim=1)  # two copies: their mean is one's
    torch.testing.assert_close(calls[0], expected)
    trainer.fit()
    assert (tmp_path / "run" / "best.pt").is_file()


@pytest.mark.slow
def test_an_online_teacher_must_normalise_as_the_model_does(tiny_fer_csv, tmp_path, tiny_run):
    teacher = tmp_path / "teacher"
    Trainer(tiny_run.cfg(tiny_fer_csv, teacher, "train.epochs=1", "model.args.width=0.25")).fit()
    ckpt = read_checkpoint(teacher / "best.pt")
    ckpt["preprocessing"]["mean"] = 0.4
    torch.save(ckpt, teacher / "shifted.pt")
    cfg = tiny_run.cfg(tiny_fer_csv, tmp_path / "b", f"loss.teacher={teacher / 'shifted.pt'}",
                       "loss.teacher_mode=online")
    with pytest.raises(CheckpointError, match="normalises faces with mean 0.4"):
        build_parts(cfg)
    cached = tiny_run.cfg(tiny_fer_csv, tmp_path / "c", f"loss.teacher={teacher / 'shifted.pt'}")
    assert build_parts(cached).teacher_probs is not None  # cached targets come from its own preprocessing


def test_a_mixed_image_counts_as_its_dominant_images_class(tiny_fer_csv, tmp_path, tiny_run):
    cfg = tiny_run.cfg(tiny_fer_csv, tmp_path, "train.epochs=1")
    parts = build_parts(cfg)
    idx = torch.arange(8)
    y = torch.from_numpy(parts.data.train_labels)[idx]  # 0, 1, ..., 6, 0
    partner = torch.roll(idx, 1)  # partners' labels 0, 0, 1, ..., 6: equal to y only for the first image

    class OwnLabel(torch.nn.Module):  # a "model" that answers every image's own label
        def forward(self, x):
            return F.one_hot(y, 7).float().requires_grad_()

    for lam, correct in ((0.7, 8), (0.3, 1)):
        def mixed(faces, gen, lam=lam):  # each image mixed with its partner by lam
            return faces.float().unsqueeze(1), partner, lam

        trainer = Trainer(cfg, replace(parts, model=OwnLabel(), augment=mixed))
        assert trainer._train_step(idx)[1] == correct
