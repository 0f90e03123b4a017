"""`make lock`'s writer: a lock file is replaced only when its content changes.

`uv pip compile -o FILE` writes FILE again even when nothing in it changed (seen with uv's
cache, `--offline`: same bytes, a new mtime), and make reinstalls a virtualenv whose lock is
newer than its stamp: `.venv` from requirements.lock, `.venv-sam` from infra/sam-cli.lock, about
3 minutes after a `make lock` that changed nothing. So each compile writes into a scratch copy
of its lock beside it (a copy, because uv reads the versions the file already pins from its
output file and keeps those that still fit), and the copy replaces the lock only when their
bytes differ; otherwise the lock is left as it was, mtime included.

    python -m lucid_edge.lockfile requirements.lock uv pip compile ... -o {}

runs the command with its `{}` argument (a whole argument, as find -exec takes it) replaced by
the scratch copy's path, its stdin passed through.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def compile_into(target: Path, command: Sequence[str]) -> bool:
    """Run `command` (its `{}` arguments replaced by a scratch copy of `target`) and put the result
    in place of `target` only when it differs; True when `target` changed. The command's failure
    (CalledProcessError) leaves `target` untouched."""
    scratch = target.with_name(f".{target.name}.new")
    if target.exists():
        shutil.copy2(target, scratch)
    else:
        scratch.unlink(missing_ok=True)
    try:
        subprocess.run(  # noqa: S603 - the Makefile's own command
            [str(scratch) if argument == "{}" else argument for argument in command], check=True
        )
        if target.exists() and target.read_bytes() == scratch.read_bytes():
            return False
        os.replace(scratch, target)
        return True
    finally:
        scratch.unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m lucid_edge.lockfile TARGET COMMAND...`: the command's status, 2 for a usage
    error; says whether TARGET changed."""
    arguments = list(argv if argv is not None else sys.argv[1:])
    target, command = (arguments[0], arguments[1:]) if arguments else ("", [])
    if "{}" not in command:
        print(
            "usage: python -m lucid_edge.lockfile TARGET COMMAND... ({} = TARGET's copy)",
            file=sys.stderr,
        )
        return 2
    try:
        changed = compile_into(Path(target), command)
    except subprocess.CalledProcessError as error:
        return error.returncode or 1
    print(f"{target}: {'updated' if changed else 'unchanged (left as it was)'}")
    return 0


if __name__ == "__main__":  # pragma: no cover - run by `make lock`
    sys.exit(main())
