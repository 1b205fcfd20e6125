"""Calibrated confidence: the probability we print should be how often we are right.

A network trained with cross-entropy is usually over-confident; temperature scaling (Guo et al. 2017) divides
its logits by one number T fitted on held-out data, which changes no prediction (argmax) but makes the
probabilities honest. Expected calibration error (ECE) and the reliability diagram say how honest they are.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0, dtype: type = np.float64) -> np.ndarray:
    """Class probabilities of (N, classes) ``logits`` divided by ``temperature``, computed in ``dtype``: float64 to
    fit and judge a temperature, float32 where an exported model's outputs are turned into the app's answers."""
    z = np.asarray(logits, dtype=dtype) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true labels."""
    p = softmax(logits, temperature)[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(p, 1e-12, None)).mean())


def log_probs(probs: np.ndarray) -> np.ndarray:
    """Logits up to a constant per row (which the softmax ignores), recovered from probabilities; a zero counts
    as 1e-12."""
    return np.log(np.clip(probs, 1e-12, None))


def before_after(logits_before: np.ndarray, logits_after: np.ndarray, labels: np.ndarray) -> dict:
    """The calibration figures of one set of predictions: ECE, reliability bins and NLL of their logits before
    and after calibration (what training.calibrate and training.evaluate report)."""
    rel = {"before": reliability(softmax(logits_before), labels), "after": reliability(softmax(logits_after), labels)}
    return {"ece_before": rel["before"]["ece"], "ece_after": rel["after"]["ece"],
            "nll_before": nll(logits_before, labels), "nll_after": nll(logits_after, labels), **rel}


def fit_temperature(logits: np.ndarray, labels: np.ndarray, low: float = 0.05, high: float = 20.0) -> float:
    """The T minimising NLL of softmax(logits / T): golden-section search on log T (NLL is unimodal in T)."""
    if len(labels) == 0:
        raise ValueError("fitting a temperature needs at least one labelled example")
    a, b = np.log(low), np.log(high)
    g = (np.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = nll(logits, labels, np.exp(c)), nll(logits, labels, np.exp(d))
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = nll(logits, labels, np.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = nll(logits, labels, np.exp(d))
    return float(np.exp((a + b) / 2))


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> dict:
    """Confidence bins: per bin the mean confidence, accuracy and count, and the expected calibration error
    (the count-weighted mean gap between confidence and accuracy)."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    mean_conf = np.bincount(which, conf, bins) / np.maximum(count, 1)
    acc = np.bincount(which, correct.astype(float), bins) / np.maximum(count, 1)
    ece = float((count * np.abs(mean_conf - acc)).sum() / max(len(labels), 1))
    return {"ece": ece, "edges": edges.tolist(), "confidence": mean_conf.tolist(), "accuracy": acc.tolist(),
            "count": count.tolist()}


def save_reliability_png(before: dict, after: dict, path: str | Path, title: str = "") -> None:
    """Reliability diagram: accuracy per confidence bin before and after calibration, beside the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fercore.atomic import write_figure

    fig, ax = plt.subplots(figsize=(5.2, 5.2), dpi=100)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    for rel, name, colour in ((before, "before", "tab:red"), (after, "after", "tab:blue")):
        used = np.asarray(rel["count"]) > 0
        ax.plot(np.asarray(rel["confidence"])[used], np.asarray(rel["accuracy"])[used], marker="o", color=colour,
                label=f"{name} (ECE {rel['ece']:.1%})")
    ax.set_xlabel("confidence (probability of the predicted class)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    try:
        write_figure(fig, path)
    finally:
        plt.close(fig)
