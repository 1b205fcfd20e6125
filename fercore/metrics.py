"""Classification metrics and the confusion-matrix picture, shared by training, evaluation and realtime.
matplotlib loads only when a picture is drawn."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts [true, predicted]."""
    return np.bincount(labels * num_classes + preds, minlength=num_classes**2).reshape(num_classes, num_classes)


def classification_report(labels: np.ndarray, preds: np.ndarray, classes: Sequence[str]) -> dict:
    """Accuracy, per-class precision/recall/F1/support, macro-F1 and the confusion matrix as plain data."""
    k = len(classes)
    cm = confusion_matrix(np.asarray(labels), np.asarray(preds), k)
    tp = np.diag(cm).astype(float)
    support = cm.sum(1)
    predicted = cm.sum(0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    present = support > 0
    return {
        "n": int(cm.sum()),
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                          "support": int(support[i])} for i, c in enumerate(classes)},
        "classes": list(classes),
        "confusion_matrix": cm.tolist(),
    }


def confusion_figure(cm: np.ndarray | list, classes: Sequence[str], title: str = ""):
    """A matplotlib figure of the confusion matrix, rows normalised to recall, counts in each cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=100)
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{rates[i, j]:.2f}\n{cm[i, j]}", ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of true class")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def save_confusion_png(cm: np.ndarray | list, classes: Sequence[str], path: str | Path, title: str = "") -> None:
    import matplotlib.pyplot as plt

    from fercore.atomic import write_figure

    fig = confusion_figure(cm, classes, title)
    try:
        write_figure(fig, path)
    finally:
        plt.close(fig)
