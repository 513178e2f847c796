"""Shared CLI helpers: error reporting, exit codes for batches, JSON output."""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable

import click

from ..errors import EXIT_OK, EXIT_PARTIAL, FacelabError
from ..extras import from_import_error


def fail(err: FacelabError, as_json: bool = False) -> None:
    """Print a one-line error and exit with its code."""
    if as_json:
        click.echo(json.dumps({"error": {"code": err.code, "message": str(err)}}))
    click.echo(f"facelab: error: {err}", err=True)
    sys.exit(err.exit_code)


def handle_errors(fn: Callable) -> Callable:
    """Turn FacelabError (and Ctrl-C) into a one-line message and a stable exit code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FacelabError as err:
            fail(err, kwargs.get("as_json", False))
        except ImportError as exc:  # an optional package (an extra) that is not installed
            missing = from_import_error(exc, click.get_current_context().command_path)
            if missing is None:
                raise
            fail(missing, kwargs.get("as_json", False))
        except KeyboardInterrupt:
            click.echo("facelab: interrupted", err=True)
            sys.exit(130)

    return wrapper


def batch_exit_code(codes: list[int]) -> int:
    """0 if every input succeeded; a single input's own code; otherwise 7 (some inputs failed)."""
    if all(c == EXIT_OK for c in codes):
        return EXIT_OK
    if len(codes) == 1:
        return codes[0]
    return EXIT_PARTIAL


def error_record(source: str, err: FacelabError) -> dict[str, Any]:
    return {"file": source, "error": {"code": err.code, "message": str(err)}}


def record_failure(records: list, codes: list[int], source: str, err: FacelabError) -> None:
    """One input of a batch failed: note it in the output records, print one line, and go on."""
    records.append(error_record(source, err))
    codes.append(err.exit_code)
    click.echo(f"facelab: error: {err}", err=True)


def finish_batch(records: list, codes: list[int], as_json: bool) -> None:
    """Print the batch's JSON (one record for one input) and exit with the batch's code."""
    if as_json:
        echo_json(records if len(records) > 1 else records[0])
    sys.exit(batch_exit_code(codes))


def drawing_path(draw: str, source: str, n_photos: int, suffix: str) -> Path:
    """Where `--draw` writes: the given file for one photo; inside it, as a folder, for several."""
    out = Path(draw)
    if n_photos > 1:
        out.mkdir(parents=True, exist_ok=True)
        out = out / (Path(source).stem + suffix)
    return out


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))
