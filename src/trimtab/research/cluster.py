"""The Dask client a sweep runs its variants on, and running a batch of tasks through it.

By default a ``dask.distributed.LocalCluster`` of worker *processes*, one per core with one
thread each: a backtest is CPU-bound pure Python, so threads would share one core (the GIL).
``scheduler="tcp://host:port"`` connects to a running cluster instead (``dask scheduler`` +
``dask worker``); its workers must import the same trimtab and see the config, the data and
``--out`` at the same paths (a shared filesystem when they run on other hosts).
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from . import ResearchError
from .variant import Task, run_task

__all__ = ["dask_client", "run_tasks"]


@contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None, connect_timeout_s: float = 15.0) -> Iterator:
    """A ``distributed.Client`` for the sweep's life; the local cluster it started is closed after.

    Args:
        scheduler: address of an existing scheduler (``tcp://127.0.0.1:8786``), or None for a
            local cluster of ``workers`` processes (default ``os.cpu_count()``).

    Raises:
        ResearchError: (flag ``--scheduler``) no scheduler answers at that address in
            ``connect_timeout_s``; (flag ``--workers``) ``workers`` below 1.
    """
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=f"{connect_timeout_s}s")
        except (OSError, TimeoutError, ValueError) as e:
            raise ResearchError(f"--scheduler: no Dask scheduler answers at {scheduler!r} ({e}); start one with "
                                f"`dask scheduler` and `dask worker ADDRESS`, or leave --scheduler out for a local cluster",
                                "--scheduler") from None
        try:
            yield client
        finally:
            client.close()
        return
    n = workers or os.cpu_count() or 1
    if n < 1:
        raise ResearchError(f"--workers: must be 1 or more, got {n}", "--workers")
    # No dashboard (it would take a port and pull in bokeh); the cluster's own log lines stay
    # out of the command's stderr unless something is wrong.
    # Ctrl-C reaches the terminal's whole process group: the worker processes would each die
    # with a traceback on stderr. Started while SIGINT is ignored, they inherit that through
    # exec (Python keeps an ignored SIGINT ignored), so only this process sees the interrupt and
    # closes the cluster in order.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR)
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
    try:
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def run_tasks(client, tasks: list[Task], done: Callable[[Task, dict], None]) -> None:
    """Run every task on ``client``'s workers; call ``done(task, row)`` here as each finishes,
    in the order they finish (:func:`distributed.as_completed`).

    A task's own failure is already a failed row (:func:`trimtab.research.variant.run_task`);
    a worker that dies under a task (or a task the cluster cannot run) becomes one too.
    """
    from dask.distributed import as_completed

    from .rows import failed_row

    if not tasks:
        return
    # pure=False: two tasks are never merged, even with equal arguments; the key names the
    # variant in the cluster's logs.
    futures = {client.submit(run_task, t, pure=False, key=f"trimtab-{t.variant}-{os.urandom(4).hex()}"): t for t in tasks}
    try:
        for f in as_completed(futures):
            t = futures[f]
            try:
                row = f.result()
            except Exception as e:  # noqa: BLE001 - a worker lost under this task: the others go on
                row = failed_row(t.variant, t.params, f"the Dask worker failed: {type(e).__name__}: {e}", t.run_dir, t.start, t.end)
            done(t, row)
    finally:
        for f in futures:  # an interrupt: nothing left running on the cluster in our name
            f.cancel()
