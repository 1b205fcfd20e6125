"""Measure where faces stop being readable, to set the app's "uncertain" limits (fercore.readability):
accuracy of a checkpoint on FER-2013 val as faces get smaller, blurrier, more tilted, more turned away, and
accuracy against coverage as the confidence threshold rises, on clean and corrupted val.

    python -m tools.readability_curves --checkpoint weights/default.pt --store

Each limit is where the accuracy of faces *at* that value falls to ``--target`` (default 0.5: a label as likely
wrong as right). ``--store`` writes them into the checkpoint (rounded: ReadabilityLimits.from_curves), where
the app reads them, and re-exports the .onnx beside it; measure a calibrated checkpoint, as the confidence limit
depends on its temperature. Head turn (yaw) and tilt (roll) are measured with the face detector's keypoints on
val faces scaled up to 192 pixels; faces it does not find there are left out of the yaw curve, and the tilt curve is
measured both as cropped and with the eyes levelled by the measured roll (the app's --align, for tilts past
realtime.faces.ALIGN_ABOVE_DEGREES). Writes a JSON of every curve and one PNG, by default into eval/<name>/
beside the checkpoint (weights/eval/default/ for weights/default.pt).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from tqdm import tqdm

from fercore import cli
from fercore.atomic import atomic_path, write_figure
from fercore.classes import EMOTIONS
from fercore.paths import DEFAULT_CHECKPOINT, SHARED_FER, eval_folder
from fercore.readability import ReadabilityLimits, head_pose, sharpness
from models.checkpoint import atomic_save, load_model
from models.corruptions import affine, blur, corrupted_copies, low_resolution
from models.inference import predict
from models.preprocessing import resize_face
from realtime.detector import FaceDetector
from realtime.errors import USER_ERRORS, InputError
from realtime.labelled import labelled_photos
from realtime.faces import ALIGN_ABOVE_DEGREES
RESOLUTIONS = (6, 8, 10, 12, 14, 16, 20, 24, 32, 48)  # pixels across the model's crop
SIGMAS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)
ROLLS = (0, 10, 20, 30, 40, 50, 60)


def limit(xs: list[float], accs: list[float], target: float, decreasing: bool) -> float | None:
    """The x where accuracy crosses ``target`` (linear between measured points). ``decreasing``: accuracy
    falls as x grows (roll, yaw); else it rises (size, sharpness). None when it never crosses."""
    pairs = list(zip(xs, accs))
    for (x0, a0), (x1, a1) in zip(pairs, pairs[1:]):
        if (a0 >= target > a1) if decreasing else (a0 < target <= a1):
            return float(x0 + (x1 - x0) * (a0 - target) / (a0 - a1))
    return None


def binned(values: np.ndarray, correct: np.ndarray, edges: list[float]) -> tuple[list[float], list[float], list[int]]:
    """Mean value, accuracy and count per bin of ``values`` (empty bins left out)."""
    xs, accs, counts = [], [], []
    which = np.digitize(values, edges[1:-1])
    for b in range(len(edges) - 1):
        sel = which == b
        if sel.sum() >= 20:
            xs.append(float(values[sel].mean()))
            accs.append(float(correct[sel].mean()))
            counts.append(int(sel.sum()))
    return xs, accs, counts


def detector_pose(images: np.ndarray, desc: str = "head pose") -> tuple[np.ndarray, np.ndarray]:
    """Yaw and roll of each face from the face detector's keypoints on the face scaled up to 192 pixels (NaN
    where it finds no face)."""
    yaw, roll = np.full(len(images), np.nan), np.full(len(images), np.nan)
    with FaceDetector("short", video=False, min_confidence=0.3) as detector:
        for i, face in enumerate(tqdm(images, desc=desc, unit="face")):
            big = cv2.cvtColor(cv2.resize(face, (192, 192), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
            found = detector.detect(cv2.copyMakeBorder(big, 32, 32, 32, 32, cv2.BORDER_CONSTANT))
            if found and found[0].keypoints:
                yaw[i], roll[i] = head_pose(max(found, key=lambda d: d.score).keypoints)
    return yaw, roll


def aligned(faces: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """Each face turned so its eyes are level, as the app's crop does (models.corruptions.affine and
    realtime.faces.gray_crop share OpenCV's rotation); a face without a measured roll stays as it is."""
    return np.stack([f if np.isnan(r) or abs(r) <= ALIGN_ABOVE_DEGREES else affine(f, angle=r)
                     for f, r in zip(faces, roll)])


Correct = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # faces -> (each answer right, its confidence)


def coverage_curve(ok: np.ndarray, conf: np.ndarray) -> dict:
    """The share of faces kept and their accuracy at each confidence threshold from 0 to 0.95."""
    thresholds = [round(t, 2) for t in np.arange(0.0, 0.96, 0.05)]
    return {"threshold": thresholds,
            "coverage": [float((conf >= t).mean()) for t in thresholds],
            "accuracy": [float(ok[conf >= t].mean()) if (conf >= t).any() else None for t in thresholds]}


def confidence_curves(correct: Correct, images: np.ndarray, ok: np.ndarray, conf: np.ndarray,
                      target: float) -> tuple[dict, float | None]:
    """Coverage and accuracy by confidence threshold on the clean faces (answers ``ok``, confidences ``conf``) and
    on their corrupted copies pooled, accuracy per confidence bin, and the confidence limit."""
    curves = {"clean": coverage_curve(ok, conf)}
    edges = [0.0, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9, 1.01]
    xs, accs, counts = binned(conf, ok, edges)
    curves["bins"] = {"confidence": xs, "accuracy": accs, "count": counts}
    pooled_ok, pooled_conf = [], []
    for kind, level, faces in tqdm(list(corrupted_copies(images)), desc="corrupted val", unit="copy"):
        c_ok, c_conf = correct(faces)
        pooled_ok.append(c_ok)
        pooled_conf.append(c_conf)
    curves["corrupted"] = coverage_curve(np.concatenate(pooled_ok), np.concatenate(pooled_conf))
    return curves, limit(xs, accs, target, decreasing=False)


def size_curve(correct: Correct, images: np.ndarray, margin: float, target: float) -> tuple[dict, float | None]:
    """Accuracy with the face seen at each of RESOLUTIONS pixels across the crop, and the smallest box (the crop
    without the model's ``margin``) that reaches ``target``."""
    size_acc = [float(correct(np.stack([low_resolution(f, r) for f in images]))[0].mean()) for r in
                tqdm(RESOLUTIONS, desc="size", unit="size")]
    box = [r / (1 + 2 * margin) for r in RESOLUTIONS]  # the crop is the box widened by the margin per side
    return {"crop_pixels": list(RESOLUTIONS), "box_pixels": box, "accuracy": size_acc}, \
        limit(box, size_acc, target, decreasing=False)


def sharpness_curve(correct: Correct, images: np.ndarray, target: float) -> tuple[dict, float | None]:
    """Accuracy per sharpness bin of the faces blurred by each of SIGMAS, and the sharpness limit."""
    sharp_all, ok_all = [], []
    for sigma in tqdm(SIGMAS, desc="blur", unit="sigma"):
        faces = images if sigma == 0 else np.stack([blur(f, sigma) for f in images])
        sharp_all.append(np.array([sharpness(f) for f in faces]))
        ok_all.append(correct(faces)[0])
    sharp_all, ok_all = np.concatenate(sharp_all), np.concatenate(ok_all)
    edges = [0, 5, 10, 20, 30, 40, 60, 80, 120, 160, 240, 320, 480, 1e9]
    xs, accs, counts = binned(sharp_all, ok_all, edges)
    return {"sharpness": xs, "accuracy": accs, "count": counts}, limit(xs, accs, target, decreasing=False)


def roll_curves(correct: Correct, images: np.ndarray, target: float) -> tuple[dict, float | None, float | None]:
    """Accuracy with the faces rolled by each of ROLLS degrees, as they are and turned level again by the
    detector's measured roll (as the app aligns), and the roll limit of each."""
    roll_acc, aligned_acc = [], []
    for a in ROLLS:
        tilted = np.stack([affine(f, angle=a) for f in images])
        roll_acc.append(float(correct(tilted)[0].mean()))
        aligned_acc.append(float(correct(aligned(tilted, detector_pose(tilted, f"align {a} deg")[1]))[0].mean()))
    return {"degrees": list(ROLLS), "accuracy": roll_acc, "aligned_accuracy": aligned_acc}, \
        limit(list(ROLLS), roll_acc, target, decreasing=True), limit(list(ROLLS), aligned_acc, target, decreasing=True)


def yaw_curve(images: np.ndarray, ok: np.ndarray, target: float) -> tuple[dict, float | None]:
    """Accuracy (answers ``ok``) per bin of head turn as the detector measures it, the share of faces it found,
    and the yaw limit."""
    yaw, _ = detector_pose(images)
    found = ~np.isnan(yaw)
    xs, accs, counts = binned(np.abs(yaw[found]), ok[found], [0, 10, 20, 30, 40, 50, 60, 75, 90.1])
    return {"degrees": xs, "accuracy": accs, "count": counts, "found": float(found.mean())}, \
        limit(xs, accs, target, decreasing=True)


def measure(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, batch_size: int, device: str,
            target: float) -> dict:
    """Every curve of ``model`` on the labelled faces, and where each crosses ``target`` accuracy (``limits``)."""
    prep = model.preprocessing

    def correct(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs = predict(model, faces, prep, batch_size, device)
        return probs.argmax(1) == labels, probs.max(1)

    out: dict = {"target": target, "n": len(labels)}
    ok, conf = correct(images)
    out["clean_accuracy"] = float(ok.mean())
    out["confidence"], min_confidence = confidence_curves(correct, images, ok, conf, target)
    out["limits"] = {"min_confidence": min_confidence}
    out["size"], out["limits"]["min_size"] = size_curve(correct, images, prep.margin, target)
    out["sharpness"], out["limits"]["min_sharpness"] = sharpness_curve(correct, images, target)
    out["roll"], out["limits"]["max_roll"], out["limits"]["max_roll_aligned"] = roll_curves(correct, images, target)
    out["yaw"], out["limits"]["max_yaw"] = yaw_curve(images, ok, target)
    return out


def save_png(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = result["target"]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5), dpi=90)
    panels = [
        ("confidence threshold: accuracy vs coverage", None),
        ("face size (detector box, pixels)", ("size", "box_pixels", "min_size")),
        ("sharpness (Laplacian variance, 48 px crop)", ("sharpness", "sharpness", "min_sharpness")),
        ("head tilt (roll, degrees)", ("roll", "degrees", "max_roll")),
        ("head turn (yaw, degrees, from keypoints)", ("yaw", "degrees", "max_yaw")),
        ("calibrated confidence (binned)", ("confidence", None, "min_confidence")),
    ]
    for ax, (title, spec) in zip(axes.flat, panels):
        if spec is None:
            for name, colour in (("clean", "tab:blue"), ("corrupted", "tab:red")):
                c = result["confidence"][name]
                ax.plot(c["coverage"], c["accuracy"], marker=".", color=colour, label=f"{name} val")
            ax.set_xlabel("coverage (share of faces labelled)")
            ax.set_ylabel("accuracy of the labelled")
            ax.legend()
        else:
            key, xkey, lim = spec
            data = result["confidence"]["bins"] if key == "confidence" else result[key]
            xs = data["confidence"] if key == "confidence" else data[xkey]
            ax.plot(xs, data["accuracy"], marker="o", label="as cropped" if key == "roll" else None)
            if key == "roll":
                ax.plot(xs, data["aligned_accuracy"], marker="o", color="tab:green", label="eyes levelled")
            ax.axhline(t, color="grey", linestyle="--", linewidth=1)
            if result["limits"].get(lim) is not None:
                ax.axvline(result["limits"][lim], color="tab:red", linewidth=1,
                           label=f"limit {result['limits'][lim]:.3g}")
                ax.legend()
            ax.set_ylabel("accuracy")
            if key == "sharpness":
                ax.set_xscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Where faces stop being readable (FER-2013 val, {result['n']} faces; dashed: accuracy {t:.0%})")
    fig.tight_layout()
    write_figure(fig, path)
    plt.close(fig)


def read_faces(folder: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 faces (N, size, size) and labels from a folder of <emotion>/<image> files (FER-2013's val)."""
    faces, labels = [], []
    for path, emotion in tqdm(labelled_photos(folder)[0], desc="read", unit="face"):
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise InputError(f"cannot read {path}")
        faces.append(resize_face(gray, size))
        labels.append(EMOTIONS.index(emotion))
    return np.stack(faces), np.array(labels)


def get_parser() -> argparse.ArgumentParser:
    ap = cli.parser("tools.readability_curves", __doc__)
    g = ap.add_argument_group("measurement")
    g.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT,
                   help="a calibrated checkpoint (default weights/default.pt)")
    g.add_argument("--data", type=Path, default=SHARED_FER / "val",
                   help="a folder of <emotion>/<face image> files (default ../shared/data/fer2013/val)")
    g.add_argument("--out", type=Path, default=None,
                   help="folder for readability.json and readability.png (default: eval/<checkpoint name>/ beside "
                        "the checkpoint)")
    g.add_argument("--store", action="store_true",
                   help="store the measured limits in the checkpoint (and re-export the .onnx beside it), where the "
                        "app reads them")
    g.add_argument("--target", type=cli.number(0, 1), default=0.5,
                   help="accuracy at which a face stops counting as readable (default 0.5)")
    g.add_argument("--batch-size", type=cli.number(1, kind=int), default=256, help="faces per forward pass")
    return ap


def command(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    out = args.out or eval_folder(args.checkpoint)
    model, ckpt = load_model(args.checkpoint)
    if float(ckpt.get("temperature", 1.0)) == 1.0:
        print(f"note: {args.checkpoint} is not calibrated (temperature 1): its confidence limit will move when it "
              "is (python -m training.calibrate)", file=sys.stderr)
    images, labels = read_faces(args.data, model.preprocessing.size)
    result = measure(model, images, labels, args.batch_size, "cpu", args.target)
    result["checkpoint"] = str(args.checkpoint)
    limits = ReadabilityLimits.from_curves(result["limits"])
    result["app_limits"] = limits.to_dict()  # what --store stores
    with atomic_path(out / "readability.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    save_png(result, out / "readability.png")
    print("measured:", json.dumps(result["limits"]))
    print(f"wrote {out / 'readability.json'} and {out / 'readability.png'}")
    if args.store:
        store_limits(args.checkpoint, ckpt, limits)
    return 0


def store_limits(checkpoint: Path, ckpt: dict, limits: ReadabilityLimits) -> None:
    """Write ``limits`` into ``ckpt``, the checkpoint read from ``checkpoint``, save it there (atomically) and
    re-export the .onnx beside it, if there is one."""
    from models.onnx_export import refresh_export

    ckpt["readability"] = limits.to_dict()
    atomic_save(ckpt, checkpoint)
    print(f"stored in {checkpoint}: {json.dumps(limits.to_dict())}")
    if (onnx := refresh_export(checkpoint)) is not None:
        print(f"re-exported {onnx}")


def main(argv: list[str] | None = None) -> int:
    """Measure as the command line says; returns the exit status (fercore.cli: 1 user error, 2 usage)."""
    return cli.run(command, argv, USER_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
