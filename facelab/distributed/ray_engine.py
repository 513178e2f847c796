"""Per-photo work on a Ray cluster (`--engine ray`): Ray Data reads the list of work items, actors run the work,
the driver gets the results back in order and does all writing itself.

    for result in map_photos(items, fn, setup=partial(load_models, "sface")):
        ...   # one result per item, in the order of `items`

`ray.init()` starts a local cluster unless an address is given (`--ray-address`, else RAY_ADDRESS): the same code
joins a real cluster, whose workers must have facelab installed and see the photos under the same paths.
Each actor is given `cpus_per_worker` CPUs by Ray and uses exactly that many threads in onnxruntime and OpenCV, so
N actors on N cores do not oversubscribe them. A failed actor is restarted by Ray and its items retried; items are
pure functions of their input, so a retry cannot double anything (the driver writes each result once).
"""
from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..extras import require

ENV_ADDRESS = "RAY_ADDRESS"
BLOCK_ITEMS = 32


def require_ray(what: str) -> None:
    """One line naming the extra (exit code 10) when Ray with Ray Data is not installed."""
    require("ray", what)


def init(address: str | None = None) -> None:
    """Join the cluster at `address` (or RAY_ADDRESS), else start a local one; once per process."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get(ENV_ADDRESS) or None
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
    if address is None:
        # a local cluster's workers import this very facelab (a source checkout need not be installed)
        kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": _import_root()}}
    ray.init(address=address, **kwargs)


def _import_root() -> str:
    root = str(Path(__file__).resolve().parents[2])
    rest = os.environ.get("PYTHONPATH")
    return root + (os.pathsep + rest if rest else "")


def cluster_cpus() -> int:
    import ray

    return int(ray.cluster_resources().get("CPU", 1))


def _worker_class(fn: Callable[[Any], Any], setup: Callable[[], None] | None, threads: int) -> type:
    """The Ray actor class: loads models once (`setup`), pins its thread counts, then maps `fn` over batches.
    fn and setup are baked into the class rather than passed as constructor arguments: Ray keeps those in its
    object store, where a restart after a lost worker might not find them."""

    class PhotoWorker:
        def __init__(self):
            from facelab import settings

            settings.configure(threads=threads)  # onnxruntime sessions built from now on use `threads`
            settings.apply_to_opencv()
            if setup is not None:
                setup()

        def __call__(self, batch: dict) -> dict:
            import numpy as np

            out = [pickle.dumps(fn(pickle.loads(item))) for item in batch["item"]]
            return {"index": batch["index"], "result": np.array(out, dtype=object)}

    return PhotoWorker


def map_photos(items: Sequence[Any], fn: Callable[[Any], Any], *, setup: Callable[[], None] | None = None,
               workers: int | None = None, cpus_per_worker: int = 1, batch_size: int = 4,
               address: str | None = None) -> Iterator[Any]:
    """Yield fn(item) for every item, in order, computed by `workers` Ray actors of `cpus_per_worker` CPUs each
    (default: as many actors as the cluster's CPUs allow). `fn` and `setup` must be importable module-level
    functions (or functools.partial of them): Ray sends them to the workers by pickling."""
    if not items:
        return
    import ray.data

    init(address)
    import logging

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # not a log line per dataset on the user's terminal
    ray.data.DataContext.get_current().enable_progress_bars = False
    if workers is None:
        workers = max(1, cluster_cpus() // cpus_per_worker)
    workers = max(1, min(workers, -(-len(items) // batch_size)))  # no idle actors loading models for nothing
    # items travel pickled: work items are tuples of paths and options, which Arrow columns would not keep as-is
    rows = [{"index": i, "item": pickle.dumps(item)} for i, item in enumerate(items)]
    # blocks of ~32 items: a lost worker costs at most its block again, and every actor has work queued
    blocks = min(len(rows), max(4 * workers, len(rows) // BLOCK_ITEMS))
    source = ray.data.from_items(rows, override_num_blocks=blocks)
    # Ray Data's actors default to max_restarts=-1, max_task_retries=-1: a killed worker is replaced and its
    # batch is run again
    ds = source.map_batches(_worker_class(fn, setup, cpus_per_worker), batch_size=batch_size,
                        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus_per_worker,
                        batch_format="numpy")
    # Results arrive as actors finish them; they are handed out in the order of `items` (a few wait here for an
    # earlier one), so a caller that writes as it reads writes a prefix of the items, as a single process would.
    waiting: dict[int, bytes] = {}
    expected = 0
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
        for index, result in zip(batch["index"], batch["result"]):
            if int(index) >= expected:  # an item run again after a lost worker: its result is the same; keep one
                waiting.setdefault(int(index), result)
        while expected in waiting:
            yield pickle.loads(waiting.pop(expected))
            expected += 1
    if expected != len(items):  # never silently short: the caller would take the missing items as done
        raise RuntimeError(f"Ray returned results for {expected} of {len(items)} items in order "
                           f"(+{len(waiting)} after a gap)")


# -- what the commands run on Ray ------------------------------------------------------------------------------
class RayAnalyser:
    """The `analyse(jobs, model)` engine of a batch command: the command's own per-photo function `fn` (the one its
    local run calls) on Ray actors, each set up by `init(model)`; the command's driver writes the results."""

    engine = "ray"

    def __init__(self, fn: Callable[[Any], Any], init: Callable[[str], None], address: str | None = None,
                 workers: int | None = None, cpus_per_worker: int = 1, batch_size: int = 1):
        self.fn, self.init = fn, init
        self.address, self.workers, self.cpus_per_worker, self.batch_size = address, workers, cpus_per_worker, \
            batch_size

    def __call__(self, jobs: list, model: str) -> Iterator[Any]:
        from functools import partial

        return map_photos(jobs, self.fn, setup=partial(self.init, model), workers=self.workers,
                          cpus_per_worker=self.cpus_per_worker, address=self.address, batch_size=self.batch_size)


def enrol_analyser(address: str | None = None, workers: int | None = None, cpus_per_worker: int = 1,
                   batch_size: int = 1) -> RayAnalyser:
    """The `analyse` engine of Gallery.enrol_folder: the per-photo detection and embedding on Ray actors.
    batch_size 1: photos reach the driver (and the gallery) one by one as they are done."""
    from ..gallery import enrol
    from ..gallery.workers import init_worker

    return RayAnalyser(enrol.analyse_photo, init_worker, address, workers, cpus_per_worker, batch_size)


def scan_analyser(address: str | None = None, workers: int | None = None, cpus_per_worker: int = 1,
                  batch_size: int = 1) -> RayAnalyser:
    """The `analyse` engine of Library.scan: every face of a photo (detected, embedded, thumbnailed) on Ray
    actors, by the function a local scan runs (`facelab.library.scan.analyse_file`); the driver stores each file
    through the library's own API, so the ledger, the one transaction per file and the skip reasons hold."""
    require_ray("library scan --engine ray")
    from ..gallery.workers import init_worker
    from ..library import scan

    return RayAnalyser(scan.analyse_file, init_worker, address, workers, cpus_per_worker, batch_size)
