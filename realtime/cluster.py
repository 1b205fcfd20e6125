"""A batch (realtime.batch) on a Dask cluster: the same jobs, outputs and manifest as the local run.

    with dask_executor("local", workers=2) as executor:       # a local cluster of 2 worker processes
        run_batch(inputs, out, settings, annotate_job, executor=executor)
    with dask_executor("tcp://scheduler:8786") as executor:   # an existing cluster
        ...

Dask distributed is an optional extra (``pip install 'fer-realtime[cluster]'``); nothing else in the project
imports it, and this module only when a cluster is asked for. Dask's client offers a ``concurrent.futures``
executor, so the batch logic runs unchanged on it. On a cluster of several machines every worker needs the
project installed and must see the inputs and the output folder at the same paths (a shared filesystem); the
manifest is written by this process only.
"""
from __future__ import annotations

import concurrent.futures as cf
from contextlib import contextmanager
from typing import Iterator

from realtime.errors import InputError

LOCAL = "local"


@contextmanager
def dask_executor(address: str, workers: int = 2) -> Iterator[cf.Executor]:
    """An executor on the Dask cluster at ``address`` (``tcp://host:8786``), or with ``"local"`` on a new local
    cluster of ``workers`` processes of one thread each, closed at the end."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError("the cluster extra is not installed: pip install 'fer-realtime[cluster]' (Dask "
                         "distributed)") from None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) \
        if address == LOCAL else None
    try:
        client = Client(cluster if cluster is not None else address)
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        raise InputError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        yield client.get_executor(pure=False)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
