"""Runtime settings of the library: how much of the machine one model call may use.

One object, read once from the environment and changed by the CLI (`facelab --threads N ...`) or by a program
(`facelab.settings.configure(threads=N)`). Sessions and nets built afterwards use it; ones already built keep
theirs. The server's own limits (request concurrency, upload sizes) are in facelab/server/settings.py, read the
same way (FACELAB_SERVE_* variables, `facelab serve` options).

    FACELAB_THREADS   CPU threads one model call may use (onnxruntime's intra-op pool; OpenCV's pool too when
                      set explicitly). Default: min(4, the CPUs this process may run on).

Why a cap of 4 by default: a call here is one photo's few faces through small networks, where more threads mostly
add hand-over cost; and a server runs several calls at once (facelab/server/settings.py), each with this many.
The cap is a judgement, not a measurement (this project's machine has 2 cores): raise it if a benchmark says so.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

from .errors import FacelabError

ENV_THREADS = "FACELAB_THREADS"
DEFAULT_THREAD_CAP = 4


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. under taskset or a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    return max(1, min(DEFAULT_THREAD_CAP, usable_cpus()))


@dataclass(frozen=True)
class RuntimeSettings:
    threads: int               # CPU threads one model call may use
    threads_explicit: bool     # set by the user (environment, CLI, configure) rather than the default

    @classmethod
    def from_env(cls) -> RuntimeSettings:
        raw = os.environ.get(ENV_THREADS, "").strip()
        if not raw:
            return cls(threads=default_threads(), threads_explicit=False)
        return cls(threads=parse_count(raw, ENV_THREADS), threads_explicit=True)


def parse_count(value, source: str) -> int:
    """A whole number of threads >= 1 from the environment, the CLI or a program (server settings use it too)."""
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1 or str(value).strip() != str(n):
        raise FacelabError(f"{source} must be a whole number of threads >= 1, got {value!r}")
    return n


_current: RuntimeSettings | None = None


def current() -> RuntimeSettings:
    """The settings in force (read from the environment on first use)."""
    global _current
    if _current is None:
        _current = RuntimeSettings.from_env()
    return _current


def configure(threads: int | None = None) -> RuntimeSettings:
    """Change the settings for models built from now on; None keeps a value as it is."""
    global _current
    settings = current()
    if threads is not None:
        settings = replace(settings, threads=parse_count(threads, "threads"), threads_explicit=True)
        os.environ[ENV_THREADS] = str(settings.threads)  # worker processes (gallery enrol --workers) agree
    _current = settings
    return settings


def reset() -> None:
    """Forget configure() and read the environment again on next use (tests)."""
    global _current
    _current = None


def onnx_session_options(**overrides):
    """onnxruntime SessionOptions with facelab's thread settings: `threads` intra-op threads, one inter-op
    thread (the graphs are sequential), and no spinning while waiting (spinning burns cores other work needs)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = current().threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    for key, value in overrides.items():
        setattr(opts, key, value)
    return opts


def apply_to_opencv() -> None:
    """Limit OpenCV's thread pool (YuNet, SFace run through cv2.dnn) when the user set a thread count; by default
    OpenCV keeps its own choice, as before this setting existed."""
    settings = current()
    if settings.threads_explicit:
        import cv2

        cv2.setNumThreads(settings.threads)
