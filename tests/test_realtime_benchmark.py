from realtime import cli
from realtime.benchmark import main


def test_the_benchmark_runs_and_prints_every_case(tiny_checkpoint, media, capsys):
    assert cli.run(main, ["--frames", "3", "--checkpoint", str(tiny_checkpoint)]) == 0
    out = capsys.readouterr().out
    for case in (" 640x480      1", " 640x480      4", "1280x720      1", "1280x720      4"):
        assert case in out
    assert "60 FPS:" in out and "30 FPS:" in out


def test_the_benchmark_says_what_is_missing(tiny_checkpoint, tmp_path, capsys):
    assert cli.run(main, ["--media", str(tmp_path), "--checkpoint", str(tiny_checkpoint)]) == 1
    assert "benchmark photos missing" in capsys.readouterr().err
