"""Console scripts for the realtime commands (pyproject.toml, [project.scripts]): ``fer-webcam`` runs
``python -m realtime.webcam`` with the same exit statuses (realtime.cli.run), and so on. Each command loads only
when it is run."""
from __future__ import annotations

from importlib import import_module

from realtime import cli


def _run(module: str) -> int:
    return cli.run(import_module(module).main)


def webcam() -> int:
    """fer-webcam: python -m realtime.webcam"""
    return _run("realtime.webcam")


def annotate() -> int:
    """fer-annotate: python -m realtime.annotate"""
    return _run("realtime.annotate")


def evaluate() -> int:
    """fer-evaluate: python -m realtime.evaluate"""
    return _run("realtime.evaluate")


def benchmark() -> int:
    """fer-benchmark: python -m realtime.benchmark"""
    return _run("realtime.benchmark")
