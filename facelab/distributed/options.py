"""The CLI options that choose where batch work runs (`--engine local|ray`), shared by the batch commands."""
from __future__ import annotations

import click

ENGINES = ("local", "ray")


def engine_options(fn):
    """--engine, --ray-address, --cpus-per-worker. With --engine ray, the command's --workers (when given)
    is the number of Ray actors; otherwise the cluster's CPUs / --cpus-per-worker."""
    fn = click.option("--cpus-per-worker", type=click.IntRange(1, 256), default=1, show_default=True,
                      help="--engine ray: CPUs (and onnxruntime/OpenCV threads) of each Ray actor.")(fn)
    fn = click.option("--ray-address", default=None, metavar="ADDRESS", envvar="RAY_ADDRESS",
                      help="--engine ray: join the Ray cluster at this address (e.g. head:6379, run on a machine of "
                           "the cluster) [env RAY_ADDRESS; default: start a local one].")(fn)
    fn = click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True,
                      help="Where detection and embedding run: this machine, or a Ray cluster "
                           "(needs the [ray] extra).")(fn)
    return fn


def ray_workers(ctx: click.Context, workers: int | None) -> int | None:
    """--workers as Ray actors when the user gave it, else None (as many as the cluster's CPUs allow)."""
    from click.core import ParameterSource

    return workers if ctx.get_parameter_source("workers") not in (None, ParameterSource.DEFAULT) else None
