"""The one executor every fan-out uses: power simulations, many studies at once, parameter sweeps.

Why Dask distributed rather than our own ``multiprocessing`` or ``concurrent.futures`` pool: the same
client code that runs on a ``LocalCluster`` of this machine's cores runs unchanged against a scheduler
of many machines (``--scheduler tcp://host:8786``, or the environment variable ``PREPOST_DASK_SCHEDULER``),
and Dask already does what a pool of our own would have to grow: workers that die are replaced and their
tasks rerun, results come back as they finish, and the cluster's state can be watched. A process pool
reaches one machine only.

Results come back in task order whatever order the workers finish in, and a task's randomness must come
from the task itself (a seed in its arguments, e.g. ``np.random.SeedSequence(seed).spawn(n)[i]``), never
from the worker: then the results are identical for any number of workers.

Small tasks are sent in batches (one Dask task runs several of ours in turn) so that the scheduler's
per-task cost, milliseconds (``analysis.bench.power`` measures it), is paid once per batch.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from analysis.errors import StudyError

ENVIRONMENT = "PREPOST_DASK_SCHEDULER"
CONNECT_TIMEOUT = "10s"
# enough batches per worker that one slow batch does not leave the others idle at the end, few enough
# that the per-batch cost stays small beside the work
BATCHES_PER_WORKER = 8


def _run_batch(function: Callable[[Any], Any], tasks: Sequence[Any]) -> list[Any]:
    return [function(task) for task in tasks]


class Executor:
    """A Dask client with ``map``: use :func:`executor` to make one."""

    def __init__(self, client, address: str):
        self.client = client
        self.address = address

    @property
    def workers(self) -> int:
        """The workers' threads, the number of tasks that run at once."""
        return max(1, sum(self.client.nthreads().values()))

    def map(self, function: Callable[[Any], Any], tasks: Sequence[Any], *, batch: int | None = None,
            progress: bool = True, description: str = "tasks") -> list[Any]:
        """``[function(task) for task in tasks]`` on the workers, in task order.

        ``function`` must be importable by the workers (a module-level function of the package); ``batch``
        is the number of tasks sent as one Dask task (default: about ``BATCHES_PER_WORKER`` batches per
        worker). A progress bar on stderr shows tasks done, the rate and the time left. An exception in a
        task is raised here, after the other batches are cancelled.
        """
        from distributed import as_completed
        from tqdm import tqdm

        tasks = list(tasks)
        if not tasks:
            return []
        if batch is None:
            batch = max(1, math.ceil(len(tasks) / (self.workers * BATCHES_PER_WORKER)))
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch!r}")
        starts = range(0, len(tasks), batch)
        futures = {self.client.submit(_run_batch, function, tasks[s:s + batch], pure=False): s for s in starts}
        results: list[Any] = [None] * len(tasks)
        bar = tqdm(total=len(tasks), desc=description, unit="task", file=sys.stderr, disable=not progress,
                   dynamic_ncols=True)
        try:
            for future in as_completed(futures):
                done = future.result()
                start = futures[future]
                results[start:start + len(done)] = done
                bar.update(len(done))
        except BaseException:
            self.client.cancel(list(futures))
            raise
        finally:
            bar.close()
        return results


def scheduler_address(address: str | None = None) -> str | None:
    """The scheduler to use: ``address`` if given, else the environment variable, else None (start one)."""
    return address or os.environ.get(ENVIRONMENT) or None


@contextmanager
def executor(scheduler: str | None = None, workers: int | None = None) -> Iterator[Executor]:
    """An :class:`Executor` on an existing Dask scheduler (``scheduler``, else ``$PREPOST_DASK_SCHEDULER``),
    or on a ``LocalCluster`` started here and stopped on exit: ``workers`` processes (default: the
    machine's cores) of one thread each, quiet logs, no dashboard.

    One thread per process because the work (numpy, scipy, statsmodels) holds the GIL for much of its
    time, and because BLAS threads inside each worker would compete for the same cores: each worker is
    limited to one BLAS thread (``OMP_NUM_THREADS=1`` and the like, as Dask sets for its nannies).
    """
    from distributed import Client, LocalCluster

    address = scheduler_address(scheduler)
    if workers is not None and workers < 1:
        raise StudyError(f"--workers must be at least 1, got {workers}")
    if address is not None:
        if workers is not None:
            raise StudyError(f"--workers {workers} is for a local cluster; the scheduler at {address} has its own "
                             "workers: give one or the other")
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as error:
            source = "" if scheduler else f" (from ${ENVIRONMENT})"
            raise StudyError(f"cannot reach the Dask scheduler at {address}{source} within {CONNECT_TIMEOUT}: "
                             f"{error}. Start it (`dask scheduler`, then `dask worker {address}` on each machine), "
                             f"check the address, or leave out --scheduler and ${ENVIRONMENT} to run on this "
                             "machine") from None
        try:
            try:
                client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
            except TimeoutError:
                raise StudyError(f"the Dask scheduler at {address} has no workers (waited {CONNECT_TIMEOUT}): start "
                                 f"some with `dask worker {address}`, in this project's environment") from None
            yield Executor(client, address)
        finally:
            client.close()
        return
    # no dashboard; the scheduler's small HTTP server (health checks) on a free port, not on 8787, which
    # another cluster of this machine may hold
    cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                           dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"},
                           silence_logs=logging.ERROR)
    client = Client(cluster)
    try:
        yield Executor(client, cluster.scheduler_address)
    finally:
        client.close()
        cluster.close()


def overhead(run: Executor, tasks: int = 2_000) -> dict[str, float]:
    """Seconds per task of the executor itself (scheduling, transfer, gathering), with nothing to compute:
    ``tasks`` empty tasks sent one per Dask task, and the same sent in the default batches."""
    out = {}
    for name, batch in (("per_task_unbatched", 1), ("per_task_batched", None)):
        start = time.perf_counter()
        run.map(_nothing, range(tasks), batch=batch, progress=False)
        out[name] = (time.perf_counter() - start) / tasks
    return out


def _nothing(task: Any) -> Any:
    return task
