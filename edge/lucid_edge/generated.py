"""Commands that print a file generated from the template, or `--write` it where it is committed
(beside the meta function: the deployed function has no template to read). A test compares each
committed file with what the command generates."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lucid_edge.intrinsics import TemplateError

DEFAULT_TEMPLATE = Path("infra/template.yaml")


def register_generated(
    subparsers: Any, name: str, summary: str, target: Path, render: Callable[[Path], str]
) -> None:
    """Add subcommand `name`, printing `render(template path)` or writing it to `target`
    (relative to the project, the template's folder's parent)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=summary)
    parser.add_argument("--template", default=DEFAULT_TEMPLATE, type=Path)
    parser.add_argument("--write", action="store_true", help=f"write {target}")
    parser.set_defaults(func=functools.partial(_run, target=target, render=render))


def _run(args: argparse.Namespace, *, target: Path, render: Callable[[Path], str]) -> int:
    try:
        text = render(args.template)
    except TemplateError as error:  # 2, as `lucid serve` answers it
        print(f"lucid {args.command}: {error}", file=sys.stderr)
        return 2
    if args.write:
        path = args.template.resolve().parent.parent / target
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    else:
        print(text, end="")
    return 0
