"""End to end through the local edge and the real template, driven by the `lucid` CLI:
keygen -> login -> protected route -> refresh -> logout -> refused."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lucid_edge.cli import main
from tests.e2e.conftest import NAMED_STAGE, ON_A_NAMED_STAGE, on_stage
from tests.edge.harness import RunningEdge, running_edge, served_sign_in_url
from tests.utils.metrics import without_metrics

pytestmark = pytest.mark.e2e
TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"
AUTHORIZER_TTL = 1


@contextmanager
def _edge(stage: str) -> Iterator[RunningEdge]:
    overrides = {"AuthorizerTtlSeconds": str(AUTHORIZER_TTL), "ApiStageName": stage}
    with running_edge(TEMPLATE, overrides) as running, served_sign_in_url(running.url):
        yield running


@pytest.fixture(scope="module")
def default_edge() -> Iterator[RunningEdge]:
    with _edge("$default") as running:
        yield running


@pytest.fixture(scope="module")
def dev_edge() -> Iterator[RunningEdge]:
    with _edge(NAMED_STAGE) as running:
        yield running


@pytest.fixture
def edge(request: pytest.FixtureRequest) -> RunningEdge:
    running: RunningEdge = on_stage(request)
    return running


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_client: object) -> Path:
    monkeypatch.setenv("LUCID_CONFIG_DIR", str(tmp_path / "lucid"))
    return tmp_path / "lucid"


def _credentials(config: Path) -> dict[str, str]:
    data: dict[str, str] = json.loads((config / "credentials.json").read_text())
    return data


def cli_output(capsys: pytest.CaptureFixture[str]) -> str:
    """What the CLI printed: the in-process edge's functions print their metrics (EMF) too."""
    return without_metrics(capsys.readouterr().out)


@ON_A_NAMED_STAGE
def test_a_new_user_signs_in_calls_refreshes_and_logs_out(
    edge: RunningEdge, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a new key WHEN the user logs in
    assert main(["keygen"]) == 0
    address = capsys.readouterr().out.strip()
    assert stat.S_IMODE((config / "key").stat().st_mode) == 0o600
    assert main(["login", "--key", str(config / "key"), "--url", edge.base_url]) == 0
    assert cli_output(capsys).strip() == f"signed in to {edge.base_url} as {address}"
    assert stat.S_IMODE((config / "credentials.json").stat().st_mode) == 0o600
    # THEN a protected route knows who is calling
    assert main(["call", "GET", "/users/me"]) == 0
    assert json.loads(cli_output(capsys))["address"] == address
    # WHEN the access token stops working THEN the CLI refreshes once and succeeds
    first = _credentials(config)
    broken = {**first, "access_token": first["access_token"][:-4] + "AAAA"}
    (config / "credentials.json").write_text(json.dumps(broken))
    assert main(["call", "GET", "/users/me"]) == 0
    assert json.loads(cli_output(capsys))["address"] == address
    second = _credentials(config)
    assert second["refresh_token"] != first["refresh_token"]
    # WHEN the user logs out THEN the token is refused once the cached decision expires
    assert main(["call", "POST", "/auth/logout"]) == 0
    capsys.readouterr()
    time.sleep(AUTHORIZER_TTL + 0.2)
    bearer = {"Authorization": f"Bearer {second['access_token']}"}
    assert edge.client.get("/users/me", headers=bearer).status_code == 403
    # AND the CLI cannot refresh its way back in: it says so, and what to do
    assert main(["call", "GET", "/users/me"]) == 1
    assert "your sign-in was revoked" in capsys.readouterr().err


@ON_A_NAMED_STAGE
def test_edge_answers_401_without_a_token_and_403_for_a_bad_one(edge: RunningEdge) -> None:
    assert edge.client.get("/users/me").status_code == 401
    response = edge.client.get("/users/me", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 403
