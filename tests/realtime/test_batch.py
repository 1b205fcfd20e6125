"""Many videos in one resumable run (realtime.batch, fer-annotate with several inputs or a folder of videos)."""
import concurrent.futures as cf
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pool_jobs
import pytest

from realtime import batch, cluster
from realtime.commands.annotate import annotate_job, main
from realtime.settings import Settings
from realtime.video_io import VideoReader, video_writer

ROOT = Path(__file__).resolve().parents[2]


def short_clip(src: Path, dst: Path, frames: int = 8) -> Path:
    """The first ``frames`` frames of ``src``: a real video small enough for a fast test."""
    with VideoReader(src) as r, video_writer(dst, r.info.fps, (r.info.width, r.info.height)) as w:
        for _, frame in zip(range(frames), r):
            w.write(frame)
    return dst


@pytest.fixture
def videos(sample_media, tmp_path) -> Path:
    """in/a.mp4, in/sub/a.mp4 (the same name in a subfolder), in/broken.mp4 and a file that is not a video."""
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    short_clip(sample_media / "portraits.mp4", folder / "a.mp4")
    short_clip(sample_media / "portraits.mp4", folder / "sub" / "a.mp4", frames=5)
    (folder / "broken.mp4").write_text("not a video")
    (folder / "notes.txt").write_text("ignored")
    return folder


def annotate(*args) -> int:
    return main([*map(str, args), "--no-progress"])


def entries(out: Path) -> dict[str, dict]:
    return {Path(e["input"]).relative_to(out.parent / "in").as_posix(): e
            for e in json.loads((out / "manifest.json").read_text())["files"]}


def test_a_folder_of_videos_is_a_batch_with_a_manifest_and_failures_recorded(tiny_checkpoint, videos, tmp_path,
                                                                            capsys, check_document):
    out = tmp_path / "out"
    assert annotate(videos, "-o", out, "--checkpoint", tiny_checkpoint) == 1  # one video failed, the rest done
    assert "failed: " in capsys.readouterr().err
    got = entries(out)
    assert {k: e["status"] for k, e in got.items()} == {"a.mp4": "done", "broken.mp4": "failed",
                                                       "sub/a.mp4": "done"}
    assert "cannot decode" in got["broken.mp4"]["error"]
    assert "cannot decode" in (out / "broken" / "log.txt").read_text()
    assert got["a.mp4"]["output"] == "a" and got["sub/a.mp4"]["output"] == "a-2"  # one folder per input
    assert got["a.mp4"]["figures"]["frames"] == 8 and got["sub/a.mp4"]["figures"]["frames"] == 5
    assert got["a.mp4"]["digest"] == batch.file_digest(videos / "a.mp4")
    assert got["a.mp4"]["settings"]["checkpoint"] == str(tiny_checkpoint) and "threads" not in got["a.mp4"]["settings"]
    for name, frames in (("a", 8), ("a-2", 5)):
        assert sorted(p.name for p in (out / name).iterdir()) == ["a.mp4", "log.txt", "results.json"]
        doc = json.loads((out / name / "results.json").read_text())
        check_document(doc, "video")
        assert len(doc["frames"]) == frames
        with VideoReader(out / name / "a.mp4") as r:
            assert r.info.frame_count == frames


def test_a_rerun_skips_what_is_done_and_redoes_what_changed(tiny_checkpoint, videos, tmp_path):
    out = tmp_path / "out"
    annotate(videos, "-o", out, "--checkpoint", tiny_checkpoint)
    first = entries(out)
    (videos / "broken.mp4").unlink()
    assert annotate(videos, "-o", out, "--checkpoint", tiny_checkpoint) == 0
    assert entries(out) == first  # nothing redone: the same times; the failed input, gone, stays recorded
    short_clip(videos / "a.mp4", videos / "sub" / "a.mp4", frames=3)  # new content
    assert annotate(videos, "-o", out, "--checkpoint", tiny_checkpoint) == 0
    again = entries(out)
    assert again["a.mp4"] == first["a.mp4"] and again["sub/a.mp4"]["figures"]["frames"] == 3
    assert annotate(videos, "-o", out, "--checkpoint", tiny_checkpoint, "--smoothing", "0.3") == 0  # new settings
    last = entries(out)
    assert last["a.mp4"]["settings"]["smoothing"] == 0.3 and last["a.mp4"]["output"] == "a"


def test_an_interruption_leaves_the_manifest_listing_only_complete_outputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in "abc":
        (folder / f"{name}.mp4").write_bytes(name.encode())
    calls = []

    def work(job: batch.Job) -> dict:
        calls.append(job.input.name)
        if job.input.name == "b.mp4" and calls.count("b.mp4") == 1:
            raise KeyboardInterrupt  # Ctrl-C while b is being annotated
        job.output.mkdir(parents=True)
        return {"frames": 1}

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        batch.run_batch([folder], out, Settings(), work, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(Path(e["input"]).name, e["status"]) for e in manifest["files"]] == [("a.mp4", "done")]
    result = batch.run_batch([folder], out, Settings(), work, progress=False)
    assert (result.skipped, sorted(Path(p).name for p in result.done)) == ([str(folder / "a.mp4")], ["b.mp4", "c.mp4"])
    assert calls == ["a.mp4", "b.mp4", "b.mp4", "c.mp4"]


def test_jobs_share_the_cores():
    assert [batch.threads_per_job(j, 2, cores=4) for j in (1, 2, 3, 4)] == [2, 2, 1, 1]
    assert batch.threads_per_job(2, 8, cores=16) == 8 and batch.threads_per_job(16, 2, cores=2) == 1


@pytest.mark.slow
def test_two_jobs_give_the_results_of_one(tiny_checkpoint, videos, tmp_path):
    (videos / "broken.mp4").unlink()
    shutil.copy(videos / "a.mp4", videos / "b.mp4")
    settings = Settings(checkpoint=str(tiny_checkpoint), threads=1)
    one = batch.run_batch([videos], tmp_path / "one", settings, annotate_job, jobs=1, progress=False)
    two = batch.run_batch([videos], tmp_path / "two", settings, annotate_job, jobs=2, progress=False)
    assert len(one.done) == len(two.done) == 3 and not two.failed
    for name in ("a", "b", "a-2"):
        a, b = (json.loads((tmp_path / run / name / "results.json").read_text()) for run in ("one", "two"))
        assert a["frames"] == b["frames"] and a["summary"] == b["summary"]


def test_batch_options_and_outputs_are_checked(tiny_checkpoint, videos, sample_media, tmp_path, capsys):
    video = videos / "a.mp4"
    assert annotate(video, video, "-o", tmp_path / "o", "--json", tmp_path / "r.json") == 2
    assert "name one file" in capsys.readouterr().err
    assert annotate(video, "--json", tmp_path / "r.json", "--jobs", "2") == 2
    assert "--threads" in capsys.readouterr().err
    assert annotate(video, "--report") == 2
    assert "needs a folder" in capsys.readouterr().err
    assert annotate(videos, sample_media / "photos" / "astronaut.jpg", "-o", tmp_path / "o") == 1
    assert "is not a video" in capsys.readouterr().err
    for out in (videos / "sub", videos / "sub" / "out", videos):  # the input, inside it, holding it
        assert annotate(videos / "sub", "-o", out) == 1
        assert "refusing to write into" in capsys.readouterr().err
    assert annotate(video, "-o", str(tmp_path / "out") + "/", "--checkpoint", tiny_checkpoint) == 0
    assert (tmp_path / "out" / "a" / "a.mp4").is_file()  # a video and a folder: a batch of one


def test_a_pool_worker_ignores_signals_between_jobs_and_a_running_job_cleans_up(tmp_path):
    # between jobs a worker may be reading or writing the pool's pipes: unwinding there could leave half a message
    # and the pool waiting forever, so only a running job is interrupted
    stop = multiprocessing.get_context("spawn").Event()
    job = batch.Job(tmp_path / "in.mp4", tmp_path / "started", Settings(threads=1))
    with cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=batch._init_worker,
                                initargs=(stop,)) as pool:
        assert pool.submit(batch.run_job, pool_jobs.quick, job).result(timeout=120)["frames"] == 1
        (worker,) = pool._processes.values()
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            os.kill(worker.pid, s)
        time.sleep(0.5)
        assert pool.submit(batch.run_job, pool_jobs.quick, job).result(timeout=60)["frames"] == 1
        running = pool.submit(batch.run_job, pool_jobs.slow, job)
        deadline = time.monotonic() + 60
        while not job.output.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(worker.pid, signal.SIGTERM)
        with pytest.raises(KeyboardInterrupt):
            running.result(timeout=30)
        stop.set()  # an interrupted run: a job queued afterwards does not start
        with pytest.raises(KeyboardInterrupt, match="interrupted"):
            pool.submit(batch.run_job, pool_jobs.quick, job).result(timeout=30)


def test_a_worker_that_does_not_stop_when_interrupted_is_killed_after_the_grace_time(monkeypatch):
    spawn = multiprocessing.get_context("spawn")
    ready = spawn.Event()
    process = spawn.Process(target=pool_jobs.deaf, args=(ready,))
    process.start()
    try:
        assert ready.wait(60)
        monkeypatch.setattr(batch, "STOP_GRACE_S", 0.5)
        watchdog = batch._stop_workers(type("Pool", (), {"_processes": {process.pid: process}})())
        process.join(10)
        assert process.exitcode == -signal.SIGKILL
        watchdog.cancel()
    finally:
        process.kill()


@pytest.mark.slow
def test_sigterm_stops_a_parallel_batch_and_a_rerun_finishes_it(tiny_checkpoint, sample_media, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    short_clip(sample_media / "portraits.mp4", folder / "v00.mp4", frames=20)
    for i in range(1, 10):
        shutil.copy(folder / "v00.mp4", folder / f"v{i:02}.mp4")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "realtime.commands.annotate", str(folder), "-o", str(out), "--jobs", "2",
               "--threads", "1", "--checkpoint", str(tiny_checkpoint), "--no-progress"]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # its own group, so that a hung run can be ended whole
    deadline = time.monotonic() + 120
    while not (out / "manifest.json").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=60) == 130  # stopped: no worker left waiting on the pool
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    done = json.loads((out / "manifest.json").read_text())["files"]
    assert 0 < len(done) < 10 and all(e["status"] == "done" for e in done)
    for e in done:
        files = sorted(p.name for p in (out / e["output"]).iterdir())
        assert files == ["log.txt", "results.json", f"{e['output']}.mp4"]
    assert not [p for p in out.rglob(".*") if ".tmp" in p.name]  # no partial file left
    assert subprocess.run(command, cwd=ROOT, capture_output=True, timeout=300).returncode == 0
    assert len(json.loads((out / "manifest.json").read_text())["files"]) == 10


@pytest.mark.slow
def test_a_local_dask_cluster_gives_the_results_and_manifest_of_the_local_run(tiny_checkpoint, videos, tmp_path):
    pytest.importorskip("distributed", reason="the cluster extra (Dask distributed) is not installed: "
                                              "pip install '.[cluster]'; .ci/run installs it")
    settings = Settings(checkpoint=str(tiny_checkpoint), threads=1)
    local = batch.run_batch([videos], tmp_path / "local", settings, annotate_job, jobs=1, progress=False)
    with cluster.dask_executor(cluster.LOCAL, workers=2) as executor:
        dask = batch.run_batch([videos], tmp_path / "dask", settings, annotate_job, executor=executor, jobs=2,
                               progress=False)
    assert (sorted(dask.done), list(dask.failed)) == (sorted(local.done), list(local.failed))
    assert len(dask.done) == 2
    manifests = [{e["input"]: e for e in json.loads((tmp_path / run / "manifest.json").read_text())["files"]}
                 for run in ("local", "dask")]
    for path, e in manifests[0].items():
        d = manifests[1][path]
        assert {k: d[k] for k in ("output", "digest", "settings", "status")} == \
            {k: e[k] for k in ("output", "digest", "settings", "status")}
        if e["status"] == "done":
            assert {k: v for k, v in d["figures"].items() if k != "processing_s"} == \
                {k: v for k, v in e["figures"].items() if k != "processing_s"}
            a, b = (json.loads((tmp_path / run / e["output"] / "results.json").read_text())
                    for run in ("local", "dask"))
            assert a["frames"] == b["frames"] and a["summary"] == b["summary"]
