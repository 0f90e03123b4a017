"""Cold start per function: a fresh interpreter imports the handler as Lambda's bootstrap does
(CodeUri first on sys.path, `import app`) and serves one event. Interpreter start-up itself is
excluded, as Lambda's runtime init is."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

from cfnlint.decode import decode

from bench.harness import ROOT

_PROBE = r"""
import json, sys, time
code_uri, module_name, attribute, event = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
sys.path.insert(0, code_uri)
started = time.perf_counter()
module = __import__(module_name)
imported = time.perf_counter()
getattr(module, attribute)(json.loads(event), None)
served = time.perf_counter()
print(json.dumps({"import_ms": (imported - started) * 1000, "total_ms": (served - started) * 1000}))
"""


def _event_for(function: dict[str, object]) -> dict[str, object]:
    event = json.loads((ROOT / "tests" / "events" / "http_api_v2.json").read_text())
    events = function.get("Events") or {}
    assert isinstance(events, dict)
    if not events:  # the authorizer: an authorizer event without a token is still an invocation
        event["type"] = "REQUEST"
        event["routeArn"] = "arn:aws:execute-api:us-east-1:123456789012:api/local/GET/users/me"
        event["identitySource"] = ["Bearer not-a-token"]
        event["headers"]["authorization"] = "Bearer not-a-token"
        return event
    first = next(iter(events.values()))["Properties"]
    method = "GET" if first["Method"] == "ANY" else first["Method"]
    path = first["Path"].replace("{proxy+}", "info").replace("{id}", "0" * 32)
    event["routeKey"] = f"{first['Method']} {first['Path']}"
    event["rawPath"] = path
    event["requestContext"]["http"].update(method=method, path=path)
    return event


def measure(env: dict[str, str], repeats: int = 5) -> dict[str, dict[str, float]]:
    """Median import and import+first-invocation milliseconds of every function."""
    template, _ = decode(str(ROOT / "infra" / "template.yaml"))
    assert template is not None
    results: dict[str, dict[str, float]] = {}
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        code_uri = str((ROOT / "infra" / props["CodeUri"]).resolve())
        module_name, attribute = props["Handler"].rsplit(".", 1)
        event = json.dumps(_event_for(props))
        runs = []
        for _ in range(repeats):
            out = subprocess.run(
                [sys.executable, "-c", _PROBE, code_uri, module_name, attribute, event],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, **env, "LOG_LEVEL": "ERROR"},
                cwd="/",
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        results[name] = {
            "import_ms": statistics.median(r["import_ms"] for r in runs),
            "total_ms": statistics.median(r["total_ms"] for r in runs),
        }
    return results
