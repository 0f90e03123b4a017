"""cfn-lint and the SAM transform for the tests, run where they are installed: .venv-sam, the SAM
CLI's own virtualenv (make installs it from infra/sam-cli.lock; `make test` needs it).

They are not in .venv: the SAM transform pins pydantic (aws-sam-translator 1.115.0:
`pydantic~=2.13.3`), and .venv is installed from the lock the layer ships, so in-process they
would hold the layer's pydantic back. One worker (sam_tools_worker.py, under .venv-sam's Python)
serves the whole pytest session; each answer is kept as JSON text and parsed afresh for every
caller, who may change what it gets.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import os
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"
WORKER = Path(__file__).with_name("sam_tools_worker.py")


class SamToolError(RuntimeError):
    """cfn-lint or the SAM transform refused the request (its message says why)."""


@dataclass(frozen=True)
class LintMatch:
    """One rule cfn-lint matched: its id (E... errors, W... warnings), message and line."""

    rule: str
    message: str
    line: int


class _Worker:
    """The worker process, started on first use and stopped when the interpreter exits."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None
        self._lock = threading.Lock()

    def ask(self, request: str) -> str:
        with self._lock:
            process = self._process or self._start()
            assert process.stdin is not None
            assert process.stdout is not None
            process.stdin.write(request + "\n")
            process.stdin.flush()
            answer = process.stdout.readline()
        if not answer:
            raise SamToolError(f"the worker under {SAM_PYTHON} exited: {self._errors()}")
        return answer

    def _start(self) -> subprocess.Popen[str]:
        if not SAM_PYTHON.is_file():
            raise SamToolError(f"{SAM_PYTHON} is missing: make installs .venv-sam (`make test`)")
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by close())
        self._process = subprocess.Popen(
            [str(SAM_PYTHON), str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            # the transform takes the partition from boto's region (tests/conftest.py's, as when
            # it ran in-process); the template's own region is the AWS::Region parameter value
            env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
        )
        atexit.register(self.close)
        return self._process

    def _errors(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()[-4000:]

    def close(self) -> None:
        with self._lock:
            if self._process is not None:
                assert self._process.stdin is not None
                assert self._process.stdout is not None
                self._process.stdin.close()
                self._process.wait(timeout=30)
                self._process.stdout.close()
                self._process = None
            if self._stderr is not None:
                self._stderr.close()
                self._stderr = None


_WORKER = _Worker()


@functools.cache
def _answer(request: str, version: str) -> str:
    """The worker's answer to `request`, asked once per `version` of the file it reads."""
    answer = _WORKER.ask(request)
    error = json.loads(answer).get("error")
    if error is not None:
        raise SamToolError(error)
    return answer


def _ask(operation: str, read: Path | None = None, **arguments: Any) -> dict[str, Any]:
    request = {"operation": operation, **arguments}
    if read is not None:
        request["path"] = str(read.resolve())
    version = hashlib.sha256(read.read_bytes()).hexdigest() if read is not None else ""
    answer: dict[str, Any] = json.loads(_answer(json.dumps(request, sort_keys=True), version))
    return answer


def decode(path: str | Path) -> tuple[Any, list[str]]:
    """The template at `path` as cfn-lint reads it (cfnlint.decode.decode): short tags in long
    form, or None when it cannot be read, and the problems found reading it (duplicate keys,
    YAML errors), each as cfn-lint words it. Typed Any, as cfnlint's own decode is untyped."""
    answer = _ask("decode", read=Path(path))
    return answer["template"], answer["matches"]


def transform(template: Mapping[str, Any], parameter_values: Mapping[str, Any]) -> dict[str, Any]:
    """The real SAM transform of `template` (what CloudFormation deploys), as `sam deploy` has
    it run: aws-sam-translator's Translator with no managed policies to look up. Raises
    SamToolError with the transform's message when it refuses the template."""
    output: dict[str, Any] = _ask(
        "transform", template=template, parameter_values=parameter_values
    )["output"]
    return output


def lint(path: str | Path, regions: list[str]) -> list[LintMatch]:
    """Every rule cfn-lint (cfnlint.api.lint_file) matches in the template at `path`."""
    matches = _ask("lint", read=Path(path), regions=regions)["matches"]
    return [LintMatch(**match) for match in matches]
