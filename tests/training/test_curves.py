"""training.curves: the epochs a train.log records, chains of stages followed through model.init_from, and the
cumulative epochs and hours the picture is drawn on."""
import logging

import pytest

from fs_faults import fifo_with_reader
from training.config import ConfigError
from training.curves import cumulative, main, read_chain, read_log
from training.logs import log_epoch


def epoch_line(epoch: int, val_acc: float, seconds: int, epochs: int = 3) -> str:
    return (f"12:00:00 epoch {epoch:3d}/{epochs}  train loss 1.2000 acc 0.6000 | val loss 1.1000 acc {val_acc:.4f} "
            f"macro-F1 0.5000 | lr 1.00e-03 | {seconds}s\n")


def make_run(folder, lines, init_from=None):
    folder.mkdir(parents=True)
    (folder / "train.log").write_text("12:00:00 model cnn ...\n" + "".join(lines))
    (folder / "config.yaml").write_text(f"model:\n  name: cnn\n  init_from: {init_from or 'null'}\n")
    return folder


def test_the_line_the_trainer_logs_is_read_back(tmp_path, caplog):
    metrics = {"epoch": 7, "train_loss": 1.25, "train_acc": 0.5625, "val_loss": 1.125, "val_acc": 0.6543,
               "val_macro_f1": 0.61, "lr": 4e-3, "epoch_seconds": 301.4}
    with caplog.at_level(logging.INFO, logger="training"):
        log_epoch(metrics, 40, True, None, [4e-3], {})
    (tmp_path / "train.log").write_text(caplog.text)
    epochs, planned = read_log(tmp_path / "train.log")
    assert planned == 40 and len(epochs) == 1
    e = epochs[0]
    assert (e.epoch, e.val_acc, e.seconds) == (7, 0.6543, 301)


def test_a_restarted_epoch_counts_once_with_its_later_figures(tmp_path):
    log = make_run(tmp_path / "a", [epoch_line(1, 0.5, 10), epoch_line(2, 0.55, 10), epoch_line(2, 0.56, 12),
                                    "12:00:00 interrupted at epoch 3, batch 5; saved last.pt\n",
                                    epoch_line(3, 0.6, 11)]) / "train.log"
    epochs, planned = read_log(log)
    assert [(e.epoch, e.val_acc, e.seconds) for e in epochs] == [(1, 0.5, 10), (2, 0.56, 12), (3, 0.6, 11)]
    assert planned == 3


def test_a_log_without_a_finished_epoch_is_a_clear_error(tmp_path):
    make_run(tmp_path / "a", [])
    with pytest.raises(ConfigError, match="no finished epoch"):
        read_log(tmp_path / "a" / "train.log")


def test_a_chain_of_stages_is_followed_through_init_from(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # init_from paths are relative to where training.run ran
    make_run(tmp_path / "runs/one", [epoch_line(1, 0.5, 3600), epoch_line(2, 0.6, 3600)], "weights/default.pt")
    make_run(tmp_path / "runs/two", [epoch_line(1, 0.62, 1800)], "runs/one/best.pt")
    make_run(tmp_path / "runs/three", [epoch_line(1, 0.61, 900), epoch_line(2, 0.65, 900)], "runs/two/best.pt")
    chain = read_chain("runs/three")
    assert [r.name for r in chain] == ["one", "two", "three"]  # weights/default.pt has no log: the chain starts
    assert chain[-1].best.val_acc == 0.65 and chain[0].best.epoch == 2
    (xs1, hs1, acc1), (xs2, hs2, _), (xs3, hs3, acc3) = cumulative(chain)
    assert xs1 == [0, 1, 2] and xs2 == [2, 3] and xs3 == [3, 4, 5]  # each led by where its run started
    assert hs1 == [0, 1, 2] and hs2 == [2, 2.5] and hs3 == [2.5, 2.75, 3.0]
    assert acc1 == [50.0, 60.0] and acc3 == [61.0, 65.0]
    assert [r.name for r in read_chain("runs/one/train.log")] == ["one"]
    make_run(tmp_path / "runs/self", [epoch_line(1, 0.5, 60)], "runs/self/best.pt")  # a loop ends the chain
    assert [r.name for r in read_chain("runs/self")] == ["self"]


def test_the_command_prints_each_run_and_draws_the_png(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_run(tmp_path / "runs/one", [epoch_line(1, 0.5, 3600), epoch_line(2, 0.6, 3600)])
    make_run(tmp_path / "runs/two", [epoch_line(1, 0.62, 1800)], "runs/one/best.pt")
    assert main(["runs/two", "--target", "71.5", "--out", "curves.png"]) == 0
    out = capsys.readouterr().out
    assert "one " in out and "2/3" in out and "60.00% (epoch 2)" in out and "two " in out and "0.50" in out
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    reader, received = fifo_with_reader(tmp_path / "pipe.png")  # a pipe gets the picture, drawn in memory first
    assert main(["runs/two", "--out", "pipe.png"]) == 0
    reader.join(10)
    assert received and received[0][:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input_is_an_error_line_and_a_bad_output_name_a_usage_error(tmp_path, capsys):
    assert main([str(tmp_path / "missing"), "--out", str(tmp_path / "c.png")]) == 1
    assert "not found" in capsys.readouterr().err
    make_run(tmp_path / "a", [epoch_line(1, 0.5, 10)])
    assert main([str(tmp_path / "a"), "--out", str(tmp_path / "c.jpg")]) == 2
    assert not (tmp_path / "c.jpg").exists()
