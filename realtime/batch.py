"""Many videos in one resumable run: one output folder per input under an output folder, and a manifest.

    run_batch([Path("a.mp4"), Path("videos/")], Path("out/"), settings, work, jobs=2)

``work(job)`` annotates one input into ``job.output`` and returns its figures (the annotate command's
``annotate_job``); this module decides what to do and keeps the record, so any executor can run the work: local
processes here, a cluster's through ``executor``.

The manifest (OUTPUT/manifest.json) lists every input seen: its path, SHA-256 digest, the settings it was run
with (the model files' digests among them, so a retrained model counts as new settings), status ``done`` or
``failed`` (with the error), figures (frames, faces, tracks, seconds of video, seconds taken) and when. It is
rewritten atomically after each file, so an interruption at any moment leaves it listing exactly the inputs
whose outputs are complete. A run skips an input that is done with the same digest and settings, and retries
failed ones; a failure is recorded and the other inputs go on.

With ``jobs`` > 1 the files run in that many processes (started with "spawn": MediaPipe and ONNX Runtime do not
survive a fork), each with ``threads`` = cores // jobs (at most the settings' threads), so the processes do not
oversubscribe the cores.
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import json
import multiprocessing
import multiprocessing.connection as mp_connection
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import cv2
from tqdm import tqdm

from fercore.atomic import TERMINATION_SIGNALS, Terminated, atomic_path, interrupt_on_termination, printable
from realtime.classifier import checkpoint_paths
from realtime.errors import InputError, resolved
from realtime.photos import VIDEO_SUFFIXES
from realtime.settings import MAX_THREADS, Settings, checkpoint_record

MANIFEST = "manifest.json"
SCHEMA = "fer-emotion-batch"
VERSION = 1


@dataclass(frozen=True)
class Job:
    """One input to annotate into its own folder. ``report``: also write the timeline report."""
    input: Path
    output: Path
    settings: Settings
    report: bool = False
    allow_short: bool = False


@dataclass
class BatchResult:
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # input: error
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the run

    @property
    def exit_status(self) -> int:
        return 1 if self.failed else 0


def find_videos(inputs: Iterable[Path]) -> list[Path]:
    """The videos ``inputs`` name: files as given, folders searched with their subfolders (hidden files left
    out), each once, in a stable order. InputError for a missing path or a file that is not a video."""
    found: dict[Path, None] = {}
    for given in inputs:
        if not given.exists():
            raise InputError(f"input not found: {printable(given)}")
        if given.is_dir():
            for path in sorted(given.rglob("*")):
                rel = path.relative_to(given).parts
                if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES and not any(p.startswith(".") for p in rel):
                    found.setdefault(resolved(path))
        elif given.suffix.lower() in VIDEO_SUFFIXES:
            found.setdefault(resolved(given))
        else:
            raise InputError(f"{printable(given)} is not a video ({', '.join(sorted(VIDEO_SUFFIXES))}); annotate "
                             "photos on their own: fer-annotate PHOTO_OR_FOLDER -o ...")
    return list(found)


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return "sha256:" + h.hexdigest()


def settings_key(settings: Settings, **outputs: bool) -> dict:
    """What decides an input's outputs, to tell whether a done input can be skipped: the settings for a video
    file (threads left out: they change the speed, not the results), the model files' digests, and which
    outputs were asked for."""
    s = dataclasses.asdict(settings.for_source("file"))
    del s["threads"]
    s["checkpoint"] = checkpoint_record(settings.checkpoint)
    s["models"] = [file_digest(p) for p in checkpoint_paths(settings.checkpoint)]
    return {**s, **outputs}


class Manifest:
    """OUTPUT/manifest.json: one entry per input path; saved atomically."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / MANIFEST
        self.entries: dict[str, dict] = {}
        if self.path.exists():
            try:
                doc = json.loads(self.path.read_text())
                if doc.get("schema") != SCHEMA:
                    raise ValueError(f"its schema is not {SCHEMA}")
                self.entries = {e["input"]: e for e in doc["files"]}
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise InputError(f"{printable(self.path)} cannot be read as a batch manifest ({exc}); move it away "
                                 "to start afresh") from None

    def done(self, path: Path, digest: str, key: dict) -> bool:
        e = self.entries.get(str(path))
        return bool(e) and e["status"] == "done" and e["digest"] == digest and e["settings"] == key \
            and (self.path.parent / e["output"]).is_dir()

    def output_for(self, path: Path, taken: set[str]) -> str:
        """The input's folder name: the one it had, else its name without suffix, made unique with -2, -3..."""
        if str(path) in self.entries:
            return self.entries[str(path)]["output"]
        used = taken | {e["output"] for e in self.entries.values()}
        name, n = path.stem or "video", 1
        while name in used:
            n += 1
            name = f"{path.stem}-{n}"
        return name

    def record(self, entry: dict) -> None:
        self.entries[entry["input"]] = entry
        self.save()

    def save(self) -> None:
        doc = {"schema": SCHEMA, "version": VERSION, "files": list(self.entries.values())}
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(doc, indent=1) + "\n")


def threads_per_job(jobs: int, threads: int, cores: int = MAX_THREADS) -> int:
    """Threads for each of ``jobs`` processes: at most ``threads``, and jobs x threads <= cores."""
    return max(1, min(threads, cores // jobs))


STOP_GRACE_S = 30  # seconds an interrupted worker has to clean up before it is killed
_stop = None  # in a local worker process: the pool's "stop" event (set when the run is interrupted)
_in_job = False  # in a local worker process: whether a job is running, the only time a signal interrupts it


def _init_worker(stop) -> None:
    """A local worker: Ctrl-C, SIGTERM and SIGHUP interrupt a running job, which deletes its partial outputs and
    unwinds. Between jobs a worker may be inside the pool's queues, where unwinding could leave half a message in
    a pipe and the pool waiting forever, so a signal there is ignored: the run's "stop" event, set by the main
    process, keeps the next job from starting, and the pool's shutdown ends the worker."""
    global _stop
    _stop = stop

    def handler(signum, frame):
        global _in_job
        if _in_job:
            _in_job = False  # once per job: a second signal does not cut the job's clean-up short
            raise KeyboardInterrupt("interrupted") if signum == signal.SIGINT else Terminated(signum)

    for s in (signal.SIGINT, *TERMINATION_SIGNALS):
        signal.signal(s, handler)


def run_job(work: Callable[[Job], dict], job: Job) -> dict:
    """Run ``work`` where the job runs: OpenCV's threads capped like the model's, SIGTERM cleaning up like Ctrl-C;
    its figures with the seconds it took. In a local pool whose run was interrupted, a job queued before the
    interruption does not start."""
    global _in_job
    if _stop is not None and _stop.is_set():
        raise KeyboardInterrupt("the run was interrupted")
    began = time.perf_counter()
    cv2.setNumThreads(job.settings.threads)
    _in_job = True
    try:
        with interrupt_on_termination():
            figures = work(job)
    finally:
        _in_job = False
    return {**figures, "processing_s": round(time.perf_counter() - began, 2)}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def plan(inputs: list[Path], out_dir: Path, settings: Settings, report: bool = False,
         allow_short: bool = False) -> tuple[Manifest, list[tuple[Job, str]], list[str], dict]:
    """(manifest, the jobs to run with their inputs' digests, the inputs skipped as done, the settings key)."""
    out = resolved(out_dir)
    for given in inputs:
        src = resolved(given)
        if src == out or out in src.parents or (given.is_dir() and src in out.parents):
            raise InputError(f"refusing to write into {printable(out_dir)}: it would be, land inside or hold the "
                             f"input {printable(given)} (a rerun would read the annotated videos as inputs)")
    videos = find_videos(inputs)
    if not videos:
        raise InputError("no videos in " + ", ".join(printable(p) for p in inputs))
    manifest = Manifest(out_dir)
    key = settings_key(settings, report=report, allow_short=allow_short)
    todo, skipped, taken = [], [], set()
    for path in videos:
        digest = file_digest(path)
        if manifest.done(path, digest, key):
            skipped.append(str(path))
            continue
        name = manifest.output_for(path, taken)
        taken.add(name)
        todo.append((Job(path, out_dir / name, settings, report, allow_short), digest))
    return manifest, todo, skipped, key


def run_batch(inputs: list[Path], out_dir: Path, settings: Settings, work: Callable[[Job], dict], jobs: int = 1,
              report: bool = False, allow_short: bool = False, progress: bool = True,
              executor: cf.Executor | None = None) -> BatchResult:
    """Annotate every video ``inputs`` name into ``out_dir`` (see the module docstring). ``executor``: run the
    work there instead of in ``jobs`` local processes (with jobs 1 and no executor, in this process); ``jobs``
    is then the number of its workers per machine, for the threads each gets."""
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    local = settings.replace(threads=threads_per_job(jobs, settings.threads))
    manifest, todo, skipped, key = plan(inputs, out_dir, local, report, allow_short)
    result = BatchResult(skipped=skipped)
    bar = tqdm(total=len(todo), unit="file", disable=not progress, desc=f"{len(skipped)} already done" if skipped
               else "videos")

    def finish(job: Job, digest: str, figures: dict | None, error: BaseException | None) -> None:
        entry = {"input": str(job.input), "output": job.output.name, "digest": digest, "settings": key,
                 "status": "failed" if error else "done", "time": _now()}
        if error:
            entry["error"] = f"{type(error).__name__}: {error}"
            result.failed[str(job.input)] = entry["error"]
        else:
            entry["figures"] = figures
            result.done.append(str(job.input))
        manifest.record(entry)
        bar.update()
        bar.set_postfix(done=len(result.done), failed=len(result.failed))

    try:
        if executor is None and jobs == 1:
            for job, digest in todo:
                try:
                    figures = run_job(work, job)
                except Exception as exc:  # recorded; the next input goes on
                    finish(job, digest, None, exc)
                else:
                    finish(job, digest, figures, None)
        else:
            own = executor is None
            spawn = multiprocessing.get_context("spawn")
            stop = spawn.Event() if own else None
            pool = executor or cf.ProcessPoolExecutor(jobs, mp_context=spawn, initializer=_init_worker,
                                                      initargs=(stop,))
            watchdog = None
            try:
                _run_pool(pool, work, todo, finish)
            except BaseException:
                if own:
                    stop.set()
                    watchdog = _stop_workers(pool)
                raise
            finally:
                if own:
                    pool.shutdown(wait=True, cancel_futures=True)
                if watchdog:
                    watchdog.cancel()
    finally:
        bar.close()
        result.seconds = time.perf_counter() - start
    return result


def _run_pool(pool: cf.Executor, work: Callable[[Job], dict], todo: list[tuple[Job, str]], finish: Callable) -> None:
    futures = {pool.submit(run_job, work, job): (job, digest) for job, digest in todo}
    for future in cf.as_completed(futures):
        job, digest = futures[future]
        error = future.exception()
        if isinstance(error, KeyboardInterrupt):  # the worker was interrupted: not a failure of the input
            raise error
        finish(job, digest, None if error else future.result(), error)


def _stop_workers(pool: cf.Executor) -> threading.Timer:
    """Interrupt the pool's processes as Ctrl-C does (a running job deletes its partial outputs and unwinds, see
    _init_worker); one still running STOP_GRACE_S later is killed, so that an interrupted run always ends. The
    returned watchdog is cancelled once the pool has shut down. ProcessPoolExecutor has no public way to reach its
    processes before Python 3.14."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        try:
            os.kill(process.pid, signal.SIGINT)
        except ProcessLookupError:
            pass

    def kill_leftovers() -> None:
        for process in processes:
            if not mp_connection.wait([process.sentinel], timeout=0):  # still running (an exited one is not polled)
                process.kill()

    watchdog = threading.Timer(STOP_GRACE_S, kill_leftovers)
    watchdog.daemon = True
    watchdog.start()
    return watchdog
