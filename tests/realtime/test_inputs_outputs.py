"""Outputs that would replace an input, and inputs that cannot be read, in the realtime commands."""
import json
import shutil

from realtime.commands import annotate, evaluate


def _photo(sample_media, where):
    where.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sample_media / "photos" / "astronaut.jpg", where)
    return where


def test_an_output_folder_holding_the_input_folder_is_refused(sample_media, tiny_checkpoint, tmp_path, capsys):
    """``annotate D/sub -o D`` would write D/sub/a.jpg, the annotated copy of D/sub/sub/a.jpg, over the input
    D/sub/a.jpg."""
    first = _photo(sample_media, tmp_path / "D" / "sub" / "a.jpg")
    _photo(sample_media, tmp_path / "D" / "sub" / "sub" / "a.jpg")
    before = first.read_bytes()
    status = annotate.main([str(tmp_path / "D" / "sub"), "-o", str(tmp_path / "D"), "--checkpoint",
                            str(tiny_checkpoint), "--no-progress"])
    assert status == 1 and "hold the input" in capsys.readouterr().err
    assert first.read_bytes() == before


def test_a_link_into_the_output_folder_is_refused(sample_media, tiny_checkpoint, tmp_path, capsys):
    """``in/x.jpg`` -> ``out/x.jpg``: annotating ``in`` into ``out`` would overwrite the photo it reads."""
    target = _photo(sample_media, tmp_path / "out" / "x.jpg")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.jpg").symlink_to(target)
    before = target.read_bytes()
    status = annotate.main([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--checkpoint", str(tiny_checkpoint),
                            "--no-progress"])
    assert status == 1 and "is a link to" in capsys.readouterr().err
    assert target.read_bytes() == before


def test_unreadable_photos_make_an_evaluation_incomplete(sample_media, tiny_checkpoint, tmp_path, capsys):
    """Half the photos broken (a dangling link, a truncated file): the report counts them, and exit status 1 says
    the run was incomplete, instead of '100% end to end' and 0."""
    happy = tmp_path / "photos" / "happy"
    _photo(sample_media, happy / "a.jpg")
    _photo(sample_media, happy / "b.jpg")
    (happy / "broken.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (happy / "cut.jpg").write_bytes((sample_media / "photos" / "astronaut.jpg").read_bytes()[:200])
    out = tmp_path / "r.json"
    status = evaluate.main([str(tmp_path / "photos"), "--checkpoint", str(tiny_checkpoint), "--json", str(out),
                            "--no-progress", "--label-all"])
    assert status == 1
    assert "2 of 4 photos could not be read" in capsys.readouterr().err
    report = json.loads(out.read_text())
    assert (report["photos"], report["readable"], len(report["unreadable"])) == (4, 2, 2)


def test_an_output_inside_a_loop_of_links_is_one_error_line(sample_media, tiny_checkpoint, tmp_path, capsys):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    photo = sample_media / "photos" / "astronaut.jpg"
    assert annotate.main([str(photo), "--json", str(tmp_path / "loop" / "x.json"), "--checkpoint",
                          str(tiny_checkpoint), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot follow") and err.count("\n") == 1 and "Traceback" not in err
    (tmp_path / "photos" / "happy").mkdir(parents=True)
    _photo(sample_media, tmp_path / "photos" / "happy" / "a.jpg")
    assert evaluate.main([str(tmp_path / "photos"), "--json", str(tmp_path / "loop" / "r.json"), "--checkpoint",
                          str(tiny_checkpoint), "--no-progress"]) == 1
    assert capsys.readouterr().err.startswith("error: cannot follow")


def test_a_link_in_the_output_folder_to_an_input_is_refused(sample_media, tiny_checkpoint, tmp_path, capsys):
    """``out/x.jpg`` -> ``in/x.jpg``: writes follow links, so the annotated copy would replace the input."""
    photo = _photo(sample_media, tmp_path / "in" / "x.jpg")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x.jpg").symlink_to(photo)
    before = photo.read_bytes()
    status = annotate.main([str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--checkpoint", str(tiny_checkpoint),
                            "--no-progress"])
    assert status == 1 and "is a link to the input" in capsys.readouterr().err
    assert photo.read_bytes() == before


def test_a_folder_or_a_pipe_given_as_a_video_or_a_model_is_not_called_missing(sample_media, tmp_path, capsys):
    """It is there, and 'not found' sends the user looking for a typo: the message says what it is instead."""
    import os

    import pytest

    from models.errors import CheckpointError
    from realtime import EmotionRecognizer
    from realtime.classifier import checkpoint_paths
    from realtime.commands import webcam
    from realtime.video_io import CaptureError, VideoError, VideoReader, open_source

    folder = tmp_path / "clip.mp4"
    folder.mkdir()
    pipe = tmp_path / "pipe.mp4"
    os.mkfifo(pipe)
    said = "is not a video file (a folder, a device or a pipe)"
    for path in (folder, pipe):
        with pytest.raises(VideoError, match=said.replace("(", r"\(").replace(")", r"\)")):
            VideoReader(path)
        with pytest.raises(CaptureError, match="is not a video file"):
            open_source(str(path))
        assert webcam.main(["--source", str(path), "--no-display"]) == 1
        assert capsys.readouterr().err == f"error: {path} {said}\n"
    assert annotate.main([str(pipe), "-o", str(tmp_path / "out.mp4")]) == 1  # a folder is one of photos there
    assert capsys.readouterr().err == f"error: {pipe} {said}\n"
    with pytest.raises(CheckpointError, match="is not a checkpoint file"):
        checkpoint_paths(str(tmp_path))
    (tmp_path / "model.onnx").mkdir()
    with pytest.raises(CheckpointError, match="is not an ONNX model file"):
        checkpoint_paths(str(tmp_path / "model.onnx"))
    with pytest.raises(VideoError, match="is not a video file"), EmotionRecognizer(threads=1) as fer:
        fer.stream(pipe)
    with pytest.raises(CaptureError, match="video not found"):  # what is missing still is
        open_source(str(tmp_path / "missing.mp4"))
