"""Work functions for realtime.batch's pool tests: module-level, so that a spawned worker can unpickle them."""
import time


def quick(job) -> dict:
    return {"frames": 1}


def slow(job) -> dict:
    """Marks that it started (job.output), then runs until interrupted."""
    job.output.write_text("started")
    time.sleep(120)
    return {"frames": 0}


def deaf(ready) -> None:
    """A process that ignores Ctrl-C, as a job stuck in native code does, and would run for minutes."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ready.set()
    time.sleep(300)
