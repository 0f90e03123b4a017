"""The `lucid` command line. A subcommand is one module with `register(subparsers)`, listed
in `_COMMANDS`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from lucid_edge import (
    cli_auth,
    cli_db,
    cli_localstack,
    cli_sam_env,
    manifest,
    openapi,
    requirements,
    serve,
)

_COMMANDS: tuple[Callable[[Any], None], ...] = (
    serve.register,
    manifest.register,
    openapi.register,
    cli_auth.register,
    cli_db.register,
    requirements.register,
    cli_sam_env.register,
    cli_localstack.register,
)


def build_parser() -> argparse.ArgumentParser:
    """The parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="lucid", description="Lucid API Gateway tools")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for register in _COMMANDS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `lucid` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # The reader left early (`lucid routes | head -1`): stop quietly, as a Unix tool does.
        # Standard output then points at devnull, so the interpreter's flush at exit does not
        # fail again (Python's documented recipe: the signal module's "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
