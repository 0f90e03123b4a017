"""The API reference as `sam build` ships it: the built meta function serves the gateway's
OpenAPI document and Swagger UI's files from its read-only task root and the layer alone (the
Swagger UI package comes from functions/meta/requirements.txt, installed by the build)."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.artifact import Artifact, make_writable, readonly_copy, sam_build
from bench.probes import Probe, event_for, invoke_cold

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def meta(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[Path], str]]:
    """sys.path (the read-only task root and layer) and handler of the built meta function."""
    artifact: Artifact = sam_build()
    (function,) = [f for f in artifact.functions if f.name == "MetaFunction"]
    tmp = tmp_path_factory.mktemp("lambda")
    layer = readonly_copy(artifact.layer, tmp / "opt" / "python")
    root = readonly_copy(function.task_root, tmp / "task")
    yield [root, layer], function.handler
    make_writable(tmp)


def _get(meta: tuple[list[Path], str], path: str, **headers: str) -> tuple[dict[str, str], bytes]:
    event = event_for(Probe("GET", path, 200))
    event["headers"].update(headers)
    answer = invoke_cold(meta[0], meta[1], event)["answer"]
    assert answer["statusCode"] == 200, answer
    body = answer.get("body", "")
    raw = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode()
    return {k.lower(): v for k, v in answer["headers"].items()}, raw


def test_the_built_function_serves_the_document(meta: tuple[list[Path], str]) -> None:
    headers, body = _get(meta, "/meta/openapi.json")
    assert headers["content-type"] == "application/json"
    assert body == (ROOT / "functions" / "meta" / "openapi.json").read_bytes()


def test_the_built_function_serves_swagger_ui_from_the_installed_package(
    meta: tuple[list[Path], str],
) -> None:
    import swagger_ui_bundle

    expected = (Path(swagger_ui_bundle.swagger_ui_path) / "swagger-ui-bundle.js").read_bytes()
    headers, body = _get(meta, "/meta/docs/swagger-ui-bundle.js", **{"accept-encoding": "gzip"})
    assert headers["content-encoding"] == "gzip"
    assert gzip.decompress(body) == expected
    headers, page = _get(meta, "/meta/docs")
    assert headers["content-type"].startswith("text/html")
    assert b'src="docs/swagger-ui-bundle.js"' in page
