"""The one process pool of the package: per-file work (masks, synthetic frames) over all cores, in order."""
from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

from seglab.errors import SeglabError


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_parallel(function: Callable, jobs: Sequence, workers: int | None = None, desc: str = "",
                 unit: str = "file", progress: bool | None = True) -> list:
    """``[function(job) for job in jobs]`` (in job order) over a process pool with a tqdm bar.

    Workers are fresh interpreters (spawn), safe even when the parent runs threads (torch, OpenCV). On the first
    error, pending jobs are cancelled and running ones finish before it is raised, so no file is left half-written.
    """
    from tqdm.auto import tqdm

    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise SeglabError(f"--workers must be a whole number >= 1, got {workers!r}")
    workers = min(workers or default_workers(), len(jobs))
    with tqdm(total=len(jobs), desc=desc, unit=unit, disable=None if progress else True) as bar:
        if workers <= 1:
            results = []
            for job in jobs:
                results.append(function(job))
                bar.update()
            return results
        results = [None] * len(jobs)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(function, job): index for index, job in enumerate(jobs)}
            try:
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return results
