"""Runtime settings (facelab/settings.py): thread counts from one place, the environment and the CLI."""
from __future__ import annotations

import pytest

from facelab import settings
from facelab.errors import FacelabError

from .conftest import run_cli


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch):
    monkeypatch.delenv(settings.ENV_THREADS, raising=False)
    settings.reset()
    yield
    settings.reset()


def test_default_threads_follow_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.setattr(settings, "usable_cpus", lambda: 64)
    assert settings.current().threads == settings.DEFAULT_THREAD_CAP and not settings.current().threads_explicit
    settings.reset()
    monkeypatch.setattr(settings, "usable_cpus", lambda: 1)
    assert settings.current().threads == 1


def test_environment_sets_the_threads_of_every_onnx_session(monkeypatch):
    from facelab.attributes.base import onnx_session
    from facelab.models.registry import verify_model

    monkeypatch.setenv(settings.ENV_THREADS, "3")
    assert settings.current().threads == 3 and settings.current().threads_explicit
    session = onnx_session(verify_model("gender_v1"))
    assert session.get_session_options().intra_op_num_threads == 3
    settings.configure(threads=1)  # a program (or the CLI) overrides the environment for what it builds next
    assert onnx_session(verify_model("gender_v1")).get_session_options().intra_op_num_threads == 1
    assert settings.onnx_session_options().inter_op_num_threads == 1


@pytest.mark.parametrize("value", ["two", "0", "-1", "1.5"])
def test_a_bad_thread_count_is_refused_with_its_source(monkeypatch, value):
    monkeypatch.setenv(settings.ENV_THREADS, value)
    with pytest.raises(FacelabError, match="FACELAB_THREADS must be a whole number of threads >= 1"):
        settings.current()
    monkeypatch.delenv(settings.ENV_THREADS)
    settings.reset()
    with pytest.raises(FacelabError, match="threads must be a whole number"):
        settings.configure(threads=value)


def test_cli_threads_option_and_environment(astronaut_jpg):
    ok = run_cli("--threads", "1", "detect", astronaut_jpg, "--json")
    assert ok.returncode == 0, ok.stderr
    bad = run_cli("--threads", "0", "detect", astronaut_jpg)
    assert bad.returncode == 2 and "--threads" in bad.stderr
    bad_env = run_cli("detect", astronaut_jpg, env={settings.ENV_THREADS: "many"})
    assert bad_env.returncode == 2 and "FACELAB_THREADS must be a whole number" in bad_env.stderr
