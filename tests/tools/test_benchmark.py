import pytest


from tools.benchmark import main


@pytest.mark.slow
def test_the_benchmark_runs_and_prints_every_case(tiny_checkpoint, media, capsys):
    assert main(["--frames", "12", "--checkpoint", str(tiny_checkpoint)]) == 0
    out = capsys.readouterr().out
    throughput, live = out.split("throughput:")[1].split("live:")
    for case in (" 640x480      1", " 640x480      4", "1280x720      1", "1280x720      4"):
        assert case in throughput
        assert live.count(case) == 2  # at 30 and at 60 FPS
    assert "60 FPS:" in throughput and "30 FPS:" in throughput
    assert "of 12" in live and "startup:" in out


def test_too_few_frames_is_a_usage_error(tiny_checkpoint, capsys):
    assert main(["--frames", "10", "--checkpoint", str(tiny_checkpoint)]) == 2


def test_the_benchmark_says_what_is_missing(tiny_checkpoint, tmp_path, capsys):
    assert main(["--media", str(tmp_path), "--checkpoint", str(tiny_checkpoint)]) == 1
    assert "benchmark photos missing" in capsys.readouterr().err
