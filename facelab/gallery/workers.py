"""The per-photo work of a folder run (gallery enrol, library scan), in this process or in worker processes.

Each process holds one `FaceAnalysis` for the run's model: made by `init_worker` (a pool's initializer, a Ray
actor's setup, or the first local job) and read by the per-photo functions through `analysis()`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .store import split_model_name

if TYPE_CHECKING:  # pragma: no cover
    from ..pipeline import FaceAnalysis

_analysis: FaceAnalysis | None = None  # one per process


def init_worker(model: str) -> None:
    """Load `model` (e.g. "sface+flip") in this process, unless it is loaded already."""
    global _analysis
    from ..pipeline import FaceAnalysis

    name, flip = split_model_name(model)
    if _analysis is None or (_analysis.embedder_name, _analysis.flip) != (name, flip):
        _analysis = FaceAnalysis(embedder=name, flip=flip)


def analysis() -> FaceAnalysis:
    if _analysis is None:
        raise RuntimeError("the per-photo work runs after init_worker (in this process, a worker or a Ray actor)")
    return _analysis


def run_jobs(fn: Callable[[Any], dict[str, Any]], jobs: list, workers: int, model: str,
             chunksize: int) -> Iterator[dict[str, Any]]:
    """fn(job) for every job, in order: here when there is little work, else in `workers` spawned processes."""
    if workers <= 1 or len(jobs) < 2 * workers:
        init_worker(model)
        for job in jobs:
            yield fn(job)
        return
    import multiprocessing as mp

    # spawn: cv2 / onnxruntime state is not fork-safe; each worker loads its own models once
    with mp.get_context("spawn").Pool(workers, initializer=init_worker, initargs=(model,)) as pool:
        yield from pool.imap(fn, jobs, chunksize=chunksize)
