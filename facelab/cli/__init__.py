"""`facelab` command line: argument parsing and output formatting only; the work is in the Python API.

Each command group lives in its own module and is registered in `COMMANDS` below.
"""
from __future__ import annotations

import importlib
import sys

import click

from .. import __version__
from ..errors import FacelabError
from .common import fail, unexpected_error

# module:attribute of every top-level command or group. A new feature adds one line here.
COMMANDS = [
    "facelab.cli.core:detect",
    "facelab.cli.core:verify",
    "facelab.cli.core:embed",
    "facelab.cli.core:models",
    "facelab.cli.eval:eval_group",
    "facelab.cli.gallery:gallery",
    "facelab.cli.gallery:identify",
    "facelab.cli.gallery:lookalike",
    "facelab.cli.attributes:analyze",
    "facelab.cli.attributes:emoticon",
    "facelab.cli.train:dataset",
    "facelab.cli.train:train",
    "facelab.cli.serve:serve",
    "facelab.cli.library:library",
]


class FacelabGroup(click.Group):
    """The top-level group: the one place an exception nobody foresaw ends up. It becomes one line and exit code
    8 (never 1, which scripts read as "different person" / "nobody known"), with the traceback only under
    --debug (or FACELAB_DEBUG=1)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("facelab: interrupted", err=True)
            sys.exit(130)
        except FacelabError as err:  # commands without their own handler
            fail(err, "--json" in sys.argv[1:])
        except Exception as exc:  # noqa: BLE001  (that is the point: nothing escapes as a traceback)
            unexpected_error(exc, debug=bool(ctx.params.get("debug")), as_json="--json" in sys.argv[1:])


@click.group(cls=FacelabGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="facelab")
@click.option("--debug", is_flag=True, envvar="FACELAB_DEBUG",
              help="On an unexpected error, print the full traceback (env: FACELAB_DEBUG=1).")
@click.option("--threads", type=click.IntRange(1, 1024), default=None,
              help="CPU threads one model call may use. [default: $FACELAB_THREADS, else min(4, CPUs)]")
def main(debug: bool, threads: int | None) -> None:
    """See, recognise and describe faces, offline.

    \b
    Exit codes: 0 ok, 1 negative answer (different person / nobody known), 2 usage error,
    3 unreadable image, 4 no face, 5 model missing or corrupt, 6 gallery error, 7 some inputs of a batch failed,
    8 unexpected internal error (a bug: `facelab --debug ...` shows where), 9 training cannot go on,
    10 an optional part not installed (the message names the pip extra), 11 dataset unusable, 130 interrupted.
    """
    from ..errors import FacelabError
    from ..settings import configure

    try:
        configure(threads=threads)  # also checks FACELAB_THREADS, before any model loads
    except FacelabError as exc:
        raise click.UsageError(str(exc)) from None


for _ref in COMMANDS:
    _module, _attr = _ref.split(":")
    try:
        main.add_command(getattr(importlib.import_module(_module), _attr))
    except ModuleNotFoundError as _exc:
        if _exc.name == _module:  # a command module not written yet
            continue
        raise
