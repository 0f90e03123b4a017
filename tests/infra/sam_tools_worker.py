"""cfn-lint and the SAM transform, served to the tests from the SAM CLI's virtualenv.

Run by `.venv-sam/bin/python` (tests/infra/sam_tools.py starts it), where aws-sam-cli's own
cfn-lint and aws-sam-translator are installed: it imports nothing of the project. It reads one
JSON request per line on stdin and writes one JSON answer per line on stdout; an operation that
raises answers {"error": ...}. Anything the libraries print goes to stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def decode(path: str) -> dict[str, Any]:
    """The template as cfn-lint reads it (short tags in long form), and its parse problems."""
    from cfnlint.decode import decode as cfn_decode

    template, matches = cfn_decode(path)
    return {"template": template, "matches": [str(match) for match in matches]}


def transform(template: dict[str, Any], parameter_values: dict[str, Any]) -> dict[str, Any]:
    """What the SAM transform makes of `template` for these parameter values."""
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    translator = Translator(managed_policy_map={}, sam_parser=Parser())
    return {"output": translator.translate(template, parameter_values=parameter_values)}


def lint(path: str, regions: list[str]) -> dict[str, Any]:
    """Every rule cfn-lint matches in the template at `path`, checked for `regions`."""
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(Path(path), config=ManualArgs(regions=regions))
    return {
        "matches": [
            {"rule": match.rule.id, "message": match.message, "line": match.linenumber}
            for match in matches
        ]
    }


OPERATIONS: dict[str, Callable[..., dict[str, Any]]] = {
    "decode": decode,
    "transform": transform,
    "lint": lint,
}


def main() -> None:
    answers = sys.stdout
    sys.stdout = sys.stderr  # the answers' channel carries answers only
    for line in sys.stdin:
        request = json.loads(line)
        operation = OPERATIONS[request.pop("operation")]
        try:
            answer = operation(**request)
        except Exception as error:  # the caller raises it, with the request that failed
            answer = {"error": f"{type(error).__name__}: {error}"}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
