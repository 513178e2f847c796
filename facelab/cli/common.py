"""Shared CLI helpers: error reporting, exit codes for batches, JSON output."""
from __future__ import annotations

import functools
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import EXIT_OK, EXIT_PARTIAL, FacelabError
from ..extras import from_import_error

EXIT_INTERNAL = 8  # an exception nobody foresaw: a bug, or the machine (disk, memory) failing under us


def unexpected_error(exc: BaseException, debug: bool = False, as_json: bool = False) -> None:
    """One line for an unexpected exception (the traceback too under --debug) and exit code 8."""
    message = " ".join(f"{type(exc).__name__}: {exc}".split())[:400]
    if debug:
        import traceback

        traceback.print_exception(exc)
    if as_json:
        click.echo(json.dumps({"error": {"code": "internal_error", "message": message}}))
    hint = "" if debug else " (run `facelab --debug ...` for the traceback)"
    click.echo(f"facelab: internal error: {message}{hint}", err=True)
    sys.exit(EXIT_INTERNAL)


def confirm_deletion(question: str, yes: bool) -> None:
    """Ask before deleting face data. With no terminal to ask on, refuse unless --yes: a script that left it out
    must not delete silently (gallery delete did), nor get a bare "Aborted!"."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise click.UsageError("nothing deleted: no terminal to confirm on (stdin is not one); add --yes")
    click.confirm(question, abort=True)


def output_file(ctx, param, value):
    """Click callback for options naming a file to write: its folder must exist (checked before any work)."""
    if value is not None:
        path = Path(value)
        if path.is_dir():
            raise click.BadParameter(f"{value} is a folder; give a file name", ctx, param)
        if not path.parent.is_dir():
            raise click.BadParameter(f"folder {path.parent} does not exist", ctx, param)
    return value


class FiniteRange(click.FloatRange):
    """click.FloatRange that also refuses NaN and infinities (click's range check lets NaN through: every
    comparison with NaN is false)."""

    name = "number"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


# The number options' types: one definition per kind of quantity, shared by every command.
SIMILARITY = FiniteRange(-1.0, 1.0)                          # a cosine threshold
FAR = FiniteRange(0.0, 1.0, min_open=True, max_open=True)    # a false-accept rate
FAR_OR_ZERO = FiniteRange(0.0, 1.0, max_open=True)           # 0 = "never"
SHARE = FiniteRange(0.0, 1.0, min_open=True)
SCORE = FiniteRange(0.0, 1.0)
PIXELS = FiniteRange(0.0, 1e6)
DEGREES = FiniteRange(0.0, 180.0)
SECONDS = FiniteRange(0.0, 1e6)
FACE_INDEX = click.IntRange(0, 10_000)


def location_options(*flags: str, envvar: str, help: str, timeout_type: Any = float) -> Callable:
    """The options naming a store and how long to wait for its writer: `-g/--gallery` for galleries, `-l/--library`
    for photo libraries (both fill `location`, from the option or `envvar`, and `timeout`, seconds)."""

    def decorate(fn: Callable) -> Callable:
        fn = click.option("--timeout", type=timeout_type, default=10.0, show_default=True,
                          help="Seconds to wait while another process is writing"
                               + (" to the gallery." if "--gallery" in flags else "."))(fn)
        return click.option(*flags, "location", required=True, envvar=envvar, help=f"{help} Env: {envvar}.")(fn)

    return decorate


def print_skipped(skipped: dict[str, list[dict]], shown: int = 5) -> None:
    """A folder run's skipped files, `shown` per reason (enrol, scan): `--json` lists them all."""
    for reason, items in sorted(skipped.items()):
        for item in items[:shown]:
            detail = item["detail"].removeprefix(f"{item['file']}: ")  # an image error names its file already
            click.echo(f"  skipped ({reason}): {item['file']}: {detail}")
        if len(items) > shown:
            click.echo(f"  ... and {len(items) - shown} more {reason} (--json lists all)")


def echo_result(result: Any, as_json: bool, text: Callable[[Any], str] | None = None) -> None:
    """A command's result: JSON with --json, else `text(result)` (default: the dict's `key: value` pairs)."""
    if as_json:
        echo_json(result)
    else:
        click.echo(text(result) if text else " ".join(f"{k}: {v}" for k, v in result.items()))


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
    """The inputs' common code when they all agree (0 all succeeded; 1 every answer negative, e.g. every face
    unknown: nothing failed); otherwise 7 (some inputs failed)."""
    if not codes or all(c == EXIT_OK for c in codes):
        return EXIT_OK
    if len(set(codes)) == 1:
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
    if n_photos > 1 or out.is_dir():  # an existing folder holds the drawing even for one photo
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FacelabError(f"--draw {draw}: cannot make the folder ({exc.strerror or exc})") from None
        out = out / (Path(source).stem + suffix)
    elif not out.parent.is_dir():
        raise FacelabError(f"--draw {draw}: folder {out.parent} does not exist")
    return out


def echo_json(obj: Any) -> None:
    """Strict JSON: a NaN or infinity (never expected, since stores refuse such vectors) is written as null rather
    than as the bare NaN / Infinity that other JSON parsers reject."""
    try:
        text = json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(finite_or_null(obj), indent=2, ensure_ascii=False, allow_nan=False)
    click.echo(text)


def finite_or_null(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_null(v) for v in obj]
    return obj
