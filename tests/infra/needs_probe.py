"""Run in a fresh interpreter by tests/infra/test_needs_code.py: start one function as Lambda
would (its folder first on sys.path, only the environment it is given), invoke it with the
events given, and print every AWS call it made.

    python needs_probe.py '{"code_uri": "...", "events": [...]}'

The calls are recorded at botocore's client (service, operation, the secret, parameter or path
named, with `#<VersionStage>` when one is asked for): what the function's role must allow.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import botocore.client

calls: list[list[str]] = []
# botocore's private method every API call goes through (botocore-stubs leave it out).
_make_api_call = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]


def _recording(self: Any, operation: str, params: dict[str, Any]) -> Any:
    target = params.get("SecretId") or params.get("Name") or params.get("Path") or ""
    if "VersionStage" in params:
        target = f"{target}#{params['VersionStage']}"
    calls.append([self.meta.service_model.signing_name, operation, str(target)])
    return _make_api_call(self, operation, params)


botocore.client.BaseClient._make_api_call = _recording  # type: ignore[attr-defined]


def main() -> None:
    config = json.loads(sys.argv[1])
    sys.path.insert(0, config["code_uri"])
    module = importlib.import_module("app")
    answers = [module.handler(event, None) for event in config["events"]]
    print("NEEDS-PROBE " + json.dumps({"calls": calls, "answers": answers}), flush=True)


if __name__ == "__main__":
    main()
