"""Evaluate a checkpoint on a FER-2013 split: accuracy, per-class precision/recall/F1, macro-F1,
confusion matrix (PNG + JSON), optionally with test-time augmentation; and how honest its confidence is,
expected calibration error and NLL before (temperature 1) and after its stored temperature, with a reliability
diagram (PNG).

    python -m training.evaluate weights/default.pt --data ../shared/data/fer2013 --split val --tta flip

Several checkpoints are evaluated as an ensemble (models.ensemble: their calibrated probabilities averaged),
reported beside each member: accuracy and macro-F1 of every member and of the ensemble in every TTA mode.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from fercore.cli import interruptible_imports

with interruptible_imports():
    import numpy as np
    import torch
    import torch.nn as nn
    from tqdm import tqdm

    from fercore import cli
    from fercore.atomic import atomic_path, describe
    from fercore.calibration import before_after, log_probs, save_reliability_png, softmax
    from fercore.metrics import classification_report, save_confusion_png
    from fercore.paths import eval_folder
    from fercore.shipped import model_files
    from fercore.tta import TTA_MODES
    from models.checkpoint import CheckpointError, data_to_model_order
    from models.corruptions import KINDS, LEVELS, corrupted_copies
    from models.ensemble import ARCH, load_members
    from models.onnx_runtime import checkpoint_digest
    from models.inference import predict
    from models.preprocessing import Preprocessing
    from training.data import DataError, load_split
    from training.outputs import check_writable

USER_ERRORS = (CheckpointError, DataError)


def output_files(out_dir: str | Path, split: str, tta: list[str]) -> list[Path]:
    """What an evaluation writes into ``out_dir``: the metrics JSON, a confusion PNG per TTA mode and the
    reliability diagram."""
    out_dir = Path(out_dir)
    return ([out_dir / f"metrics_{split}.json"] + [out_dir / f"confusion_{split}_{mode}.png" for mode in tta]
            + [out_dir / f"reliability_{split}.png"])


def check_outputs(out_dir: str | Path, split: str, tta: list[str]) -> None:
    """CommandError now, before the evaluation, unless every output can be written."""
    check_writable(out_dir, folder=True, what="--out")
    for path in output_files(out_dir, split, tta):
        check_writable(path, what="--out")


def evaluate(checkpoint: str | Path | Sequence[str | Path], data: str | Path, split: str, out_dir: str | Path | None,
             tta: list[str], cache_dir: str | None, device: str = "cpu", batch_size: int = 256,
             corrupted: bool = False) -> dict:
    """The metrics of ``checkpoint`` on ``split``; with ``out_dir``, written there (output_files). A write that
    fails raises CommandError in one line.

    Several checkpoints are an ensemble (models.ensemble): the result is then the ensemble's (its probabilities
    the mean of the members' calibrated ones in each TTA mode, which is what the ensemble model computes), with
    ``checkpoint`` the list of files and ``members`` each member's own result.

    ``calibration`` (of the model, of each member and of the ensemble): calibration_figures on single-crop
    probabilities."""
    paths = model_files(checkpoint)  # a shipped model's name, one path, or an ensemble's
    tta = list(dict.fromkeys(tta))  # a mode named twice is evaluated once
    if out_dir is not None:
        check_outputs(out_dir, split, tta)
    members = load_members(paths)  # refuses members that disagree on classes or preprocessing
    classes = members[0][1]["classes"]
    order = data_to_model_order(classes, str(paths[0]))
    images, labels = load_split(data, split, cache_dir)
    labels = order[labels]  # in the models' class order, matched by name
    results, sums, singles = member_results(members, paths, images, labels, classes, tta, device, batch_size)
    calibration = calibration_figures(singles, [entry["temperature"] for entry in results], labels)
    if len(members) == 1:
        result = {key: results[0][key] for key in ("checkpoint", "sha256", "arch", "arch_args", "temperature")}
        result.update({"data": str(data), "split": split, "results": results[0]["results"],
                       "calibration": calibration[0]})
    else:
        result = {"checkpoint": [str(path) for path in paths], "arch": ARCH, "arch_args": {"members": len(paths)},
                  "data": str(data), "split": split,
                  "results": {mode: classification_report(labels, (sums[mode] / len(paths)).argmax(1), classes)
                              for mode in tta},
                  "calibration": calibration[-1], "members": results}
        for entry, figures in zip(results, calibration):
            entry["calibration"] = figures
    if corrupted:
        models = [model for model, _ in members]
        accs = corrupted_accuracies(models, images, labels, models[0].preprocessing, batch_size, device)
        result["corrupted"] = accs[-1]  # the ensemble's, or the one model's
        if len(members) > 1:
            for entry, acc in zip(results, accs):
                entry["corrupted"] = acc
    if out_dir is not None:
        name = Path(paths[0]).name if len(paths) == 1 else "ensemble of " + " + ".join(Path(p).name for p in paths)
        write_outputs(result, out_dir, name)
    return result


def member_results(members: list[tuple[nn.Module, dict]], paths: list[Path], images: np.ndarray, labels: np.ndarray,
                   classes: list[str], tta: list[str], device: str,
                   batch_size: int) -> tuple[list[dict], dict, list[np.ndarray]]:
    """Each member's own result (its file, digest, architecture, temperature and a classification report per TTA
    mode), with the sum of the members' probabilities per mode (the ensemble's, times the number of members) and
    each member's single-crop probabilities (for the calibration figures)."""
    results, sums, singles = [], {}, []
    for (model, ckpt), path in zip(members, paths):
        model.to(device)
        entry = {"checkpoint": str(path), "sha256": checkpoint_digest(path), "arch": ckpt["arch"],
                 "arch_args": ckpt["arch_args"], "temperature": float(model.temperature), "results": {}}
        for mode in tta:
            probs = predict(model, images, model.preprocessing, batch_size, device, tta=mode, progress=True)
            entry["results"][mode] = classification_report(labels, probs.argmax(1), classes)
            sums[mode] = sums.get(mode, 0) + probs
            if mode == "none":
                singles.append(probs)
        if "none" not in tta:
            singles.append(predict(model, images, model.preprocessing, batch_size, device))
        results.append(entry)
    return results, sums, singles


def calibration_figures(calibrated: list[np.ndarray], temperatures: list[float], labels: np.ndarray) -> list[dict]:
    """Expected calibration error, reliability bins and NLL of each model's probabilities at temperature 1
    (``before``) and at its stored temperature (``after``, what every entry point serves); for several models,
    of their mean last (an ensemble averages calibrated probabilities, so its ``before`` averages the members'
    uncalibrated ones). Temperature 1 is recovered from the calibrated probabilities: T * log p are the logits up to
    a constant per row, which the softmax ignores."""
    pairs = [(t * log_probs(p), log_probs(p)) for p, t in zip(calibrated, temperatures)]
    if len(calibrated) > 1:
        pairs.append((log_probs(np.mean([softmax(before) for before, _ in pairs], axis=0)),
                      log_probs(np.mean(calibrated, axis=0))))
    return [before_after(before, after, labels) for before, after in pairs]


def write_outputs(result: dict, out_dir: str | Path, name: str) -> None:
    """The confusion PNGs, the reliability diagram and the metrics JSON of ``result`` (of the checkpoint ``name``)
    in ``out_dir``."""
    metrics, *pngs, diagram = output_files(out_dir, result["split"], list(result["results"]))
    path = metrics
    try:
        for path, (mode, report) in zip(pngs, result["results"].items()):
            save_confusion_png(report["confusion_matrix"], report["classes"], path,
                               title=f"{name} on {result['split']} ({mode}): acc {report['accuracy']:.3f}")
        path, cal = diagram, result["calibration"]
        save_reliability_png(cal["before"], cal["after"], path,
                             title=f"{name} on {result['split']}\nbefore: temperature 1; after: the stored one")
        path = metrics
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(result, indent=2))
    except OSError as exc:  # the disk filled up or the folder went away since check_outputs
        raise cli.CommandError(describe(path, exc)) from None


def corrupted_accuracies(models: list[nn.Module], images: np.ndarray, labels: np.ndarray, prep: Preprocessing,
                         batch_size: int = 256, device: torch.device | str = "cpu", seed: int = 0) -> list[dict]:
    """Single-crop accuracy on each corrupted copy of ``images`` (training.corrupted_val) and their mean, of each
    model and, for several, of their ensemble last (the mean of their probabilities), each copy made once for
    all; with the share of each class among the predictions on all copies (``predicted``, in class order), which
    shows a corruption pulling answers to one class."""
    n = len(models) + (len(models) > 1)
    accs: list[dict] = [{} for _ in range(n)]
    counts = [0] * n
    for kind, level, faces in tqdm(corrupted_copies(images, seed), total=len(KINDS) * len(LEVELS),
                                   desc="corrupted", unit="copy"):
        probs = [predict(model, faces, prep, batch_size, device) for model in models]
        if len(models) > 1:
            probs.append(np.mean(probs, axis=0))
        for i, p in enumerate(probs):
            accs[i][f"{kind}-{level}"] = float((p.argmax(1) == labels).mean())
            counts[i] = counts[i] + np.bincount(p.argmax(1), minlength=p.shape[1])
    return [{"seed": seed, "mean": float(np.mean(list(acc.values()))), "accuracy": acc,
             "predicted": (c / c.sum()).tolist()} for acc, c in zip(accs, counts)]


def describe_model(entry: dict) -> str:
    """'weights/default.pt (cnn, width 0.75, ..., sha256 9d1b81c72d0c)': which model a report is about."""
    args = ", ".join(f"{k} {v:g}" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in entry["arch_args"].items())
    return f"{entry['checkpoint']} ({entry['arch']}{', ' + args if args else ''}, sha256 {entry['sha256'][:12]})"


def format_report(result: dict) -> str:
    modes = list(result["results"])
    classes = result["results"][modes[0]]["classes"]
    n = result["results"][modes[0]]["n"]
    if "members" in result:
        lines = [f"ensemble of {len(result['members'])} checkpoints on {result['data']} [{result['split']}], "
                 f"{n} images"]
        lines += [f"  {describe_model(m)}" for m in result["members"]]
        lines += ensemble_table(result)
    else:
        lines = [f"{describe_model(result)} on {result['data']} [{result['split']}], {n} images"]
        lines.append(f"{'':12}" + "".join(f"{m:>12}" for m in modes))
        lines.append(f"{'accuracy':12}" + "".join(f"{result['results'][m]['accuracy']:12.4f}" for m in modes))
        lines.append(f"{'macro-F1':12}" + "".join(f"{result['results'][m]['macro_f1']:12.4f}" for m in modes))
    first = result["results"][modes[0]]["per_class"]
    whose = "the ensemble, " if "members" in result else ""
    lines.append(f"\nper class ({whose}{modes[0]}):  precision  recall      F1  support")
    for c in classes:
        r = first[c]
        lines.append(f"  {c:10} {r['precision']:10.3f} {r['recall']:7.3f} {r['f1']:7.3f} {r['support']:8d}")
    lines += calibration_lines(result)
    if "corrupted" in result:
        acc = result["corrupted"]["accuracy"]
        levels = list(dict.fromkeys(name.rsplit("-", 1)[1] for name in acc))
        lines.append(f"\ncorrupted copies (single crop{', the ensemble' if 'members' in result else ''}), "
                     f"mean {result['corrupted']['mean']:.4f}:")
        lines.append(f"  {'':16}" + "".join(f"{lv:>10}" for lv in levels))
        for kind in dict.fromkeys(name.rsplit("-", 1)[0] for name in acc):
            lines.append(f"  {kind:16}" + "".join(f"{acc[f'{kind}-{lv}']:10.4f}" for lv in levels))
        for member in result.get("members", []):
            lines.append(f"  mean of {member['checkpoint']}: {member['corrupted']['mean']:.4f}")
        support = np.array([first[c]["support"] for c in classes])
        lines.append("  share of each class among the answers on the corrupted copies (among the true labels):")
        lines.append("  " + ", ".join(f"{c} {p:.1%} ({t:.1%})" for c, p, t in
                                      zip(classes, result["corrupted"]["predicted"], support / support.sum())))
    return "\n".join(lines)


def calibration_lines(result: dict) -> list[str]:
    """ECE and NLL before and after calibration, of the model or of the ensemble and each member."""
    def line(name: str, cal: dict, temperature: str) -> str:
        return (f"  {name}: ECE {cal['ece_before']:.2%} at temperature 1, {cal['ece_after']:.2%} {temperature}; "
                f"NLL {cal['nll_before']:.4f} -> {cal['nll_after']:.4f}")

    lines = ["\ncalibration (single crop, 15 bins; optimistic after, on the split the temperature was fitted on):"]
    if "members" not in result:
        return lines + [line("the model", result["calibration"], f"at its stored {result['temperature']:.3f}")]
    for member in result["members"]:
        lines.append(line(member["checkpoint"], member["calibration"], f"at its stored {member['temperature']:.3f}"))
    return lines + [line("ensemble", result["calibration"], "with every member calibrated")]


def ensemble_table(result: dict) -> list[str]:
    """Accuracy and macro-F1 of each member and of the ensemble, a column pair per TTA mode."""
    modes = list(result["results"])
    rows = [(m["checkpoint"], m["results"]) for m in result["members"]] + [("ensemble", result["results"])]
    width = max(len(name) for name, _ in rows) + 2
    lines = [f"{'':{width}}" + "".join(f"{mode:>20}" for mode in modes),
             f"{'':{width}}" + f"{'accuracy':>10}{'macro-F1':>10}" * len(modes)]
    for name, res in rows:
        lines.append(f"{name:{width}}" + "".join(f"{res[m]['accuracy']:10.4f}{res[m]['macro_f1']:10.4f}"
                                               for m in modes))
    return lines


def get_parser() -> argparse.ArgumentParser:
    ap = cli.parser("training.evaluate", __doc__)
    g = ap.add_argument_group("evaluation")
    g.add_argument("checkpoint", nargs="+",
                   help="a shipped model's name (default, fast, accurate) or a checkpoint written by training.run; "
                        "several are evaluated as an ensemble (their calibrated probabilities averaged) beside each "
                        "of them")
    g.add_argument("--tta", nargs="+", default=["none", "flip"], choices=TTA_MODES,
                   help="test-time augmentation modes to report side by side (default: none flip)")
    g.add_argument("--corrupted", action="store_true",
                   help="also report accuracy on the corrupted copies of the split (training.corrupted_val)")
    g.add_argument("--out", default=None, help="folder for the metrics JSON and confusion PNGs "
                                               "(default: eval/<name>/ beside the checkpoint; for an "
                                               "ensemble eval/<name>+<name>/ beside the first)")
    data = cli.add_data_args(ap)
    data.add_argument("--split", default="val",
                      help="the split to evaluate: train | val | test (csv: Training | PublicTest | PrivateTest; "
                           "default val)")
    return ap


def command(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    device = cli.resolve_device(args.device, torch.cuda.device_count())
    out = args.out or str(eval_folder(model_files(args.checkpoint)))
    result = evaluate(args.checkpoint, args.data, args.split, out, args.tta, args.cache_dir, device, args.batch_size,
                      args.corrupted)
    print(format_report(result))
    print("\nwrote " + ", ".join(str(path) for path in output_files(out, args.split, list(dict.fromkeys(args.tta)))))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Evaluate as the command line says; returns the exit status (fercore.cli: 1 user error, 2 usage)."""
    return cli.run(command, argv, USER_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
