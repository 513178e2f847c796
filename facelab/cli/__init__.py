"""`facelab` command line: argument parsing and output formatting only; the work is in the Python API.

Each command group lives in its own module and is registered in `COMMANDS` below.
"""
from __future__ import annotations

import importlib

import click

from .. import __version__

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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="facelab")
def main() -> None:
    """See, recognise and describe faces, offline.

    \b
    Exit codes: 0 ok, 1 negative answer (different person / nobody known), 2 usage error,
    3 unreadable image, 4 no face, 5 model missing or corrupt, 6 gallery error, 7 some inputs of a batch failed.
    """


for _ref in COMMANDS:
    _module, _attr = _ref.split(":")
    try:
        main.add_command(getattr(importlib.import_module(_module), _attr))
    except ModuleNotFoundError as _exc:
        if _exc.name == _module:  # a command module not written yet
            continue
        raise
