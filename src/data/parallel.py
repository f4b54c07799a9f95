"""Per-file work spread over forked worker processes, results in input order, with a progress bar.

Used where every file of a dataset is decoded once (the poster pre-flight, ``src.data.check``, the
synthetic MM-IMDb generator). Workers are *forked*: the task may close over large read-only data
(a dataset, its readers, lookup tables), which the children inherit instead of receiving it
pickled; only the items and the results cross the process boundary, so a task should return
something small (an error message, a few numbers), not decoded pixels it could write itself.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")

#: fewer items than this run in the calling process (starting workers would cost more than it saves)
MIN_PARALLEL_ITEMS = 256

_TASK: Callable[[Any], Any] | None = None


def available_cpus() -> int:
    """The CPUs this process may run on (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _install(task: Callable[[Any], Any]) -> None:
    global _TASK
    _TASK = task
    torch = sys.modules.get("torch")
    if torch is not None:  # one intra-op thread per worker: the workers are the parallelism
        torch.set_num_threads(1)


def _run(item: Any) -> Any:
    assert _TASK is not None
    return _TASK(item)


def ordered_map(
    task: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    desc: str,
    unit: str = "file",
    chunksize: int = 16,
    progress: bool = True,
) -> Iterator[R]:
    """``task(item)`` for every item, yielded in the items' order.

    With ``workers > 1``, at least ``MIN_PARALLEL_ITEMS`` items and the ``fork`` start method (Linux),
    the calls run in ``workers`` forked processes, ``chunksize`` items per hand-out; otherwise in
    this process. An exception raised by ``task`` stops the map and is raised here.
    """
    items = list(items)
    bar = tqdm(total=len(items), desc=desc, unit=unit, mininterval=1.0, disable=not progress)
    try:
        if (
            workers <= 1
            or len(items) < MIN_PARALLEL_ITEMS
            or "fork" not in multiprocessing.get_all_start_methods()
        ):
            for item in items:
                yield task(item)
                bar.update()
            return
        context = multiprocessing.get_context("fork")
        with context.Pool(workers, initializer=_install, initargs=(task,)) as pool:
            for result in pool.imap(_run, items, chunksize):
                yield result
                bar.update()
    finally:
        bar.close()
