"""One set of pipeline settings, owned by the library (realtime.settings): the API and every command resolve the
same settings for photos, video files and cameras, and bad values are refused in words."""
import math
import os
import threading

import pytest

from realtime.commands import annotate, crop_faces, evaluate, options, webcam
from realtime.settings import SOURCE_KINDS, Settings, build_pipeline, record


def _command_settings(argv_by_kind: dict) -> dict:
    return {kind: options.settings_from_args(parse(argv)).for_source(kind) for kind, (parse, argv) in
            argv_by_kind.items()}


def test_the_api_and_the_commands_resolve_the_same_settings_per_source_kind(tiny_checkpoint):
    from realtime import EmotionRecognizer

    ckpt = str(tiny_checkpoint)
    commands = {
        "photo": (annotate.parse_args, ["in.jpg", "-o", "out.jpg", "--checkpoint", ckpt]),
        "file": (annotate.parse_args, ["in.mp4", "-o", "out.mp4", "--checkpoint", ckpt]),
        "camera": (webcam.get_parser().parse_args, ["--checkpoint", ckpt]),
    }
    from_commands = _command_settings(commands)
    with EmotionRecognizer(ckpt) as fer:
        from_api = {kind: fer.settings.for_source(kind) for kind in SOURCE_KINDS}
        for kind in SOURCE_KINDS:
            with fer._pipeline(kind) as pipe, build_pipeline(from_commands[kind], kind) as command_pipe:
                assert record(fer.settings, kind, pipe) == record(from_commands[kind], kind, command_pipe)
    assert from_api == from_commands
    assert {k: s.detector for k, s in from_api.items()} == {"photo": "full", "file": "full", "camera": "short"}
    assert from_api["photo"].smoothing == 0.0 and from_api["file"].smoothing == from_api["camera"].smoothing > 0
    # evaluate and crop_faces read photos with the photo settings
    photo = options.settings_from_args(evaluate.get_parser().parse_args(["photos/", "--checkpoint", ckpt]))
    assert photo.for_source("photo") == from_commands["photo"]
    assert crop_faces.parse_args(["photos/", "-o", "out"]).detector is None  # the photo default, decided by kind


def test_faces_are_read_as_cropped_unless_align_is_asked_for():
    """Turning faces upright by their eye line cost every model on the hand-labelled real faces
    (docs/choosing_models.md), so it is off unless asked for, in the API and on every command line."""
    parse = annotate.get_parser().parse_args
    assert Settings().align is False
    assert options.settings_from_args(parse(["in.mp4", "-o", "out.mp4"])).align is False
    assert options.settings_from_args(parse(["in.mp4", "-o", "out.mp4", "--align"])).align is True
    assert options.settings_from_args(parse(["in.mp4", "-o", "out.mp4", "--align", "--no-align"])).align is False
    assert options.settings_from_args(webcam.get_parser().parse_args(["--align"])).align is True


def test_a_webcam_given_a_file_reads_it_as_a_file():
    parse = webcam.get_parser().parse_args
    assert webcam.source_kind(parse(["--source", "clip.mp4"])) == "file"
    assert webcam.source_kind(parse(["--source", "rtsp://cam/1"])) == "camera"
    assert webcam.source_kind(parse(["--camera", "1"])) == "camera"


@pytest.mark.parametrize("options_, message", [
    ({"margin": math.nan}, "margin must be a number in"), ({"margin": math.inf}, "margin must be a number in"),
    ({"margin": 1e6}, "margin must be a number in"), ({"threads": "2"}, "threads must be a whole number"),
    ({"threads": 0}, "threads must be a whole number"), ({"threads": 1000}, "threads must be a whole number"),
    ({"smoothing": 1.0}, "smoothing must be"), ({"min_confidence": -0.1}, "min_confidence must be"),
    ({"max_yaw": 91}, "max_yaw must be"), ({"backend": "tensorrt"}, "backend must be one of"),
    ({"label_all": "yes"}, "label_all must be True or False"),
])
def test_bad_settings_are_refused_in_words(options_, message):
    with pytest.raises(ValueError, match=message):
        Settings(**options_)


@pytest.mark.parametrize("command", ["annotate", "evaluate", "webcam"])
def test_options_that_cannot_go_together_are_one_error_line(command, sample_media, tmp_path, capsys):
    """--backend torch --precision int8: each value is valid alone, the pair is not; told in one line, no
    traceback (Settings refuses it with a ValueError)."""
    photos = tmp_path / "photos" / "happy"
    photos.mkdir(parents=True)
    (photos / "a.jpg").write_bytes((sample_media / "photos" / "astronaut.jpg").read_bytes())
    argv = {"annotate": [str(photos / "a.jpg"), "-o", str(tmp_path / "out.jpg")],
            "evaluate": [str(tmp_path / "photos")],
            "webcam": ["--source", str(sample_media / "portraits.mp4"), "--no-display"]}[command]
    main = {"annotate": annotate.main, "evaluate": evaluate.main, "webcam": webcam.main}[command]
    assert main(argv + ["--backend", "torch", "--precision", "int8"]) == 1
    err = capsys.readouterr().err
    assert err == "error: precision int8 runs on the onnx backend only; the torch backend runs fp32\n"
    assert not (tmp_path / "out.jpg").exists()


def test_the_api_validates_its_options_before_loading_anything(tiny_checkpoint):
    from realtime import EmotionRecognizer

    with pytest.raises(ValueError, match="margin must be a number"):
        EmotionRecognizer(tiny_checkpoint, margin=math.nan)
    with pytest.raises(ValueError, match="threads must be a whole number"):
        EmotionRecognizer(tiny_checkpoint, threads="2")
    with pytest.raises(TypeError, match="unknown setting.*colour"):
        EmotionRecognizer(tiny_checkpoint, colour="red")
    for wrong in (42, [tiny_checkpoint, 3], b"default"):  # named in words, not os.fspath's TypeError
        with pytest.raises(ValueError, match="checkpoint must be a model name, a path or a list of paths"):
            EmotionRecognizer(wrong)


def test_shipped_models_resolve_by_name_everywhere():
    from fercore.paths import WEIGHTS
    from fercore.shipped import format_models, model_files

    assert model_files(None) == model_files("default") == [WEIGHTS / "default.pt"]
    assert model_files("accurate") == [WEIGHTS / "default.pt", WEIGHTS / "fast.pt", WEIGHTS / "wide.pt"]
    assert model_files(["x/a.pt", "fast"]) == [__import__("pathlib").Path("x/a.pt"), WEIGHTS / "fast.pt"]
    listing = format_models()
    assert all(name in listing for name in ("default", "fast", "accurate")) and "FER-2013 val" in listing


def test_the_native_log_capture_leaves_stderr_alone_across_threads():
    """Several threads holding MediaPipe's logs back at once must leave file descriptor 2 where it was (a race
    of dup2 calls left it on a deleted temporary file, and every later message was lost)."""
    from realtime.detector import _native_logs_held_back

    before = os.fstat(2)
    barrier = threading.Barrier(4)

    def hold() -> None:
        barrier.wait()
        for _ in range(300):
            with _native_logs_held_back():
                pass

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
