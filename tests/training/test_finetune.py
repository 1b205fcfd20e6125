"""Fine-tune on your own photos (README): realtime.commands.crop_faces turns <emotion>/<photo> folders into FER-2013's
folder layout with the app's own detector and crop, training/configs/finetune.yaml fine-tunes the shipped model
on them, and realtime.commands.evaluate scores the fine-tuned checkpoint on the held-out photos."""
import json
import shlex
import shutil

import cv2
import numpy as np
import pytest

from fercore.classes import EMOTIONS
from fercore.paths import CONFIGS, DEFAULT_CHECKPOINT, ROOT
from models.preprocessing import resize_face
from realtime import classifier as classifier_module

from realtime.commands import crop_faces
from realtime.commands import evaluate as evaluate_module
from realtime.photos import read_image

CONFIG = CONFIGS / "finetune.yaml"
# The shared posed portraits, one per emotion, in folders named as people name them.
PORTRAITS = {"angry": "angry.jpg", "disgusted": "disgusted.jpg", "fearful": "fearful.jpg", "happy": "happy.jpg",
             "neutral": "neutral.jpg", "sad": "sad.jpg", "surprised": "surprised.jpg"}


@pytest.fixture(scope="module")
def photos(media, tmp_path_factory):
    """Three photos of each emotion (the portrait, its mirror image as PNG, a copy at 70%), a photo without a
    face and one that is no image."""
    root = tmp_path_factory.mktemp("finetune") / "my photos"
    for folder, name in PORTRAITS.items():
        (root / folder).mkdir(parents=True)
        image = cv2.imread(str(media / "photos" / name))
        stem = name.split(".")[0]
        shutil.copy(media / "photos" / name, root / folder / name)
        cv2.imwrite(str(root / folder / f"{stem}_mirror.png"), image[:, ::-1])
        cv2.imwrite(str(root / folder / f"{stem}_small.jpg"), cv2.resize(image, None, fx=0.7, fy=0.7))
    cv2.imwrite(str(root / "neutral" / "wall.png"), np.full((200, 300, 3), 128, np.uint8))
    (root / "neutral" / "broken.jpg").write_bytes(b"not a jpeg")
    return root


@pytest.fixture(scope="module")
def cropped(photos):
    """The faces crop_faces wrote, and what it printed."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    faces = photos.parent / "faces"
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = crop_faces.main([str(photos), "-o", str(faces), "--no-progress"])
    assert status == 0, err.getvalue()
    return faces, out.getvalue(), err.getvalue()


def test_crops_each_photos_face_as_the_app_does_into_fer2013s_layout(photos, cropped):
    faces, printed, warnings = cropped
    manifest = json.loads((faces / "crops.json").read_text())
    assert sorted(p.name for p in faces.iterdir()) == ["crops.json", "heldout", "train", "val"]
    for split, per_class in (("train", 2), ("val", 1)):
        assert sorted(p.name for p in (faces / split).iterdir()) == sorted(EMOTIONS)
        for emotion in EMOTIONS:
            pngs = sorted((faces / split / emotion).iterdir())
            assert len(pngs) == per_class and all(p.suffix == ".png" for p in pngs)
            for png in pngs:
                image = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
                assert image.shape == (48, 48) and image.dtype == np.uint8  # the checkpoint's size, grayscale
    assert manifest["counts"] == {"train": dict.fromkeys(EMOTIONS, 2), "val": dict.fromkeys(EMOTIONS, 1)}
    assert manifest["settings"]["margin"] == 0.15 and manifest["settings"]["size"] == 48
    assert manifest["settings"]["detector"] == "full"
    assert [e["photo"] for e in manifest["no_face"]] == [str(photos / "neutral" / "wall.png")]
    assert [e["photo"] for e in manifest["unreadable"]] == [str(photos / "neutral" / "broken.jpg")]
    assert "broken.jpg" in warnings and "wall.png" in printed and "broken.jpg" in printed
    # The held-out photos themselves, for realtime.commands.evaluate; each val face's photo and nothing else.
    val = [f for f in manifest["faces"] if f["split"] == "val"]
    assert sorted(p.relative_to(faces).as_posix() for p in (faces / "heldout").rglob("*.*")) == \
        sorted(f["heldout"] for f in val)
    for f in val:
        assert (faces / f["heldout"]).read_bytes() == open(f["photo"], "rb").read()
    # The next step, with a batch that fits 14 training faces.
    assert shlex.join(["fer-train", "--config", "training/configs/finetune.yaml",
                       "--set", f"data.root={faces}", "--set", "train.batch_size=14"]) in printed
    assert shlex.join(["fer-evaluate", f"{faces}/heldout", "--checkpoint",
                       "runs/finetune/best.pt"]) in printed

    # Exactly the pixels the app feeds the model for this photo (before normalising): realtime.commands.evaluate's
    # pipeline, with its options for photos, cropping the same face.
    happy = next(f for f in manifest["faces"] if f["photo"].endswith("happy/happy.jpg"))
    assert happy["faces"] == 1
    seen = []
    from realtime.commands import options
    from realtime.settings import build_pipeline

    settings = options.settings_from_args(evaluate_module.get_parser().parse_args([str(photos)]))
    with build_pipeline(settings, "photo") as pipe:
        predict = pipe.classifier.predict
        pipe.classifier.predict = lambda crops: (seen.extend(crops), predict(crops))[1]
        pipe.process(read_image(photos / "happy" / "happy.jpg"), 0)
    assert len(seen) == 1
    written = cv2.imread(str(faces / happy["file"]), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(written, resize_face(seen[0], 48))


def test_the_same_photos_hold_out_the_same_faces_and_overwrite_replaces_only_an_earlier_output(photos, cropped,
                                                                                              tmp_path, capsys):
    faces = cropped[0]
    moved = shutil.copytree(photos, tmp_path / "elsewhere" / "photos")  # the split does not depend on where
    again = tmp_path / "again"
    assert crop_faces.main([str(moved), "-o", str(again), "--no-progress"]) == 0
    for split in ("train", "val"):
        assert sorted(p.relative_to(again).as_posix() for p in (again / split).rglob("*.png")) == \
            sorted(p.relative_to(faces).as_posix() for p in (faces / split).rglob("*.png"))
    capsys.readouterr()
    assert crop_faces.main([str(photos), "-o", str(again), "--no-progress"]) == 1
    assert "pass --overwrite" in capsys.readouterr().err
    (again / "train" / "happy" / "mine.png").write_bytes(b"a file of the user's, not in crops.json")
    assert crop_faces.main([str(photos), "-o", str(again), "--no-progress", "--overwrite"]) == 1
    assert "train/happy/mine.png" in capsys.readouterr().err  # refused, and the user's file is kept
    assert (again / "train" / "happy" / "mine.png").read_bytes().startswith(b"a file")
    (again / "train" / "happy" / "mine.png").unlink()
    assert crop_faces.main([str(photos), "-o", str(again), "--no-progress", "--overwrite"]) == 0
    assert not list(tmp_path.glob(".again.*"))  # no temporary folder left
    mine = tmp_path / "mine"
    (mine / "notes").mkdir(parents=True)
    capsys.readouterr()
    assert crop_faces.main([str(photos), "-o", str(mine), "--overwrite"]) == 1
    assert "holds other files" in capsys.readouterr().err and (mine / "notes").is_dir()


def test_an_output_folder_given_as_a_link_is_written_where_the_link_points(photos, tmp_path):
    """-o LINK to a folder: the faces land in the folder, the link stays, and nothing is left beside either (the
    link itself was renamed away as an 'old' output and left as a hidden file)."""
    real = tmp_path / "disk" / "faces"
    real.mkdir(parents=True)
    link = tmp_path / "faces"
    link.symlink_to(real)
    for extra in ([], ["--overwrite"]):
        assert crop_faces.main([str(photos), "-o", str(link), "--no-progress", *extra]) == 0
        assert link.is_symlink() and (real / "crops.json").is_file() and (real / "train").is_dir()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["disk", "faces"]
        assert [p.name for p in (tmp_path / "disk").iterdir()] == ["faces"]


@pytest.mark.slow
def test_fine_tunes_the_shipped_model_into_a_checkpoint_realtime_evaluate_scores(cropped, tmp_path, monkeypatch,
                                                                                 capsys):
    import torch

    from models.checkpoint import read_checkpoint
    from training import run

    faces = cropped[0]
    monkeypatch.chdir(ROOT)  # the config's model.init_from is weights/default.pt, from the repository root
    monkeypatch.setattr(classifier_module, "ONNX_CACHE", tmp_path / "onnx")
    base = ["--config", str(CONFIG), "--set", f"data.root={faces}", "--set", "train.threads=1",
            "--set", "output.tensorboard=false"]
    # A batch larger than the training set: one clear line, not a traceback.
    assert run.main([*base, "--set", f"output.dir={tmp_path / 'too_big'}"]) == 1
    assert "train.batch_size 16 is larger than the training set per process (14 images)" in capsys.readouterr().err

    run_dir = tmp_path / "run"
    assert run.main([*base, "--set", f"output.dir={run_dir}", "--set", "train.epochs=1",
                     "--set", "train.batch_size=14"]) == 0
    tuned, shipped = read_checkpoint(run_dir / "best.pt"), read_checkpoint(DEFAULT_CHECKPOINT)
    assert tuned["arch"] == shipped["arch"] and tuned["arch_args"] == shipped["arch_args"]
    assert tuned["config"]["model"]["init_from"] == "weights/default.pt"
    assert tuned["metrics"]["epoch"] == 1 and 0 <= tuned["metrics"]["val_acc"] <= 1
    changed = [k for k, v in shipped["model"].items() if v.is_floating_point() and not torch.equal(v, tuned["model"][k])]
    assert changed  # trained from the shipped weights, not a copy of them
    capsys.readouterr()

    report = tmp_path / "heldout.json"
    assert evaluate_module.main([str(faces / "heldout"), "--checkpoint", str(run_dir / "best.pt"),
                                          "--json", str(report), "--no-progress"]) == 0
    r = json.loads(report.read_text())
    assert (r["photos"], r["readable"], r["detected"]) == (7, 7, 7)
    assert r["settings"]["checkpoint"] == str(run_dir / "best.pt")
    assert 0 <= r["end_to_end_accuracy"] <= 1 and sum(map(sum, r["report"]["confusion_matrix"])) == r["labelled"]


def test_the_config_fine_tunes_the_shipped_architecture_gently():
    from models.checkpoint import read_checkpoint
    from training.config import load_config

    cfg = load_config(CONFIG, ["data.root=elsewhere"])
    shipped = read_checkpoint(DEFAULT_CHECKPOINT)
    assert cfg["model"]["name"] == shipped["arch"] and cfg["model"]["args"] == shipped["arch_args"]
    assert (ROOT / cfg["model"]["init_from"]).resolve() == DEFAULT_CHECKPOINT.resolve()
    assert cfg["optim"]["lr"] < shipped["config"]["optim"]["lr"] and cfg["train"]["early_stopping"] > 0
    assert cfg["data"]["root"] == "elsewhere" and cfg["data"]["cache_dir"] is None
    # What crop_faces prints as the next step matches the config.
    assert cfg["output"]["dir"] == crop_faces.FINETUNE_RUN
    assert cfg["train"]["batch_size"] == crop_faces.FINETUNE_BATCH_SIZE
    assert (ROOT / crop_faces.FINETUNE_CONFIG).resolve() == CONFIG.resolve()


def test_held_out_faces_are_stratified_and_stable():
    items = [(f"{e}/{i}.jpg", e) for e, n in (("happy", 10), ("sad", 3), ("fear", 2), ("angry", 1)) for i in range(n)]
    val = crop_faces.held_out(items, 0.2)
    per_class = {e: sum(k in val for k, emotion in items if emotion == e) for e in ("happy", "sad", "fear", "angry")}
    assert per_class == {"happy": 2, "sad": 1, "fear": 1, "angry": 0}  # at least one of 2+, none of a single one
    assert crop_faces.held_out(list(reversed(items)), 0.2) == val  # the order of listing does not matter
    assert crop_faces.held_out(items, 0.2, seed=1) != val
    assert all(sum(k in crop_faces.held_out(items, 0.99) for k, emotion in items if emotion == e) == n - 1
               for e, n in (("happy", 10), ("sad", 3), ("fear", 2)))  # never all of an emotion


def test_two_folders_of_one_emotion_never_give_one_name(tmp_path):
    root = tmp_path / "photos"
    photos = [root / "happy" / "me.jpg", root / "happiness" / "me.jpg", root / "happy" / "trip" / "me.jpg",
              root / "happy" / "me.png"]
    rels = [crop_faces.photo_path(p, root, "happy") for p in photos]
    assert [r.as_posix() for r in rels] == ["me.jpg", "happiness/me.jpg", "trip/me.jpg", "me.png"]
    used = set()
    assert [crop_faces.face_name(r, used) for r in [*rels, rels[0]]] == [
        "me_jpg.png", "happiness__me_jpg.png", "trip__me_jpg.png", "me_png.png", "me_jpg_2.png"]


def test_user_errors_are_one_line_and_usage_errors_exit_2(photos, tmp_path, capsys):
    def error(args):
        status = crop_faces.main([str(a) for a in args])
        return status, capsys.readouterr().err

    assert error([tmp_path / "missing", "-o", tmp_path / "out"]) == (1, f"error: not a folder: {tmp_path / 'missing'}\n")
    (tmp_path / "odd" / "bored").mkdir(parents=True)
    status, err = error([tmp_path / "odd", "-o", tmp_path / "out"])
    assert status == 1 and "unknown emotion folder 'bored'" in err and err.count("\n") == 1
    status, err = error([photos, "-o", photos / "faces"])
    assert status == 1 and "inside the photo folder" in err
    status, err = error([photos, "-o", photos.parent])
    assert status == 1 and "holds the photo folder" in err
    for share in ("0", "1", "x"):
        status, err = error([photos, "-o", tmp_path / "out", "--val-share", share])
        assert status == 2 and "--val-share" in err
    assert error([photos])[0] == 2  # -o is required
    # One face per emotion: nothing to hold out.
    (tmp_path / "few" / "happy").mkdir(parents=True)
    shutil.copy(photos / "happy" / "happy.jpg", tmp_path / "few" / "happy")
    status, err = error([tmp_path / "few", "-o", tmp_path / "out", "--no-progress"])
    assert status == 1 and "too few faces to hold any out" in err and not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.*"))


def test_help_describes_every_option(capsys, undocumented):
    assert crop_faces.main(["--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: python -m realtime.commands.crop_faces ") and undocumented(text) == []
