"""`lucid keygen`, `lucid login`, `lucid call`: files, permissions and the failures a user sees."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from lucid.auth.tron import address_from_private_key
from lucid_edge.cli import main
from lucid_edge.local import free_port
from tests.edge.harness import RunningEdge, running_edge
from tests.utils.metrics import without_metrics

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"


@pytest.fixture(scope="module")
def edge() -> Iterator[RunningEdge]:
    with running_edge(TEMPLATE) as running:
        yield running


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LUCID_CONFIG_DIR", str(tmp_path / "lucid"))
    return tmp_path / "lucid"


def test_keygen_writes_a_private_key_file_once(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keygen"]) == 0
    address = capsys.readouterr().out.strip()
    key = (config / "key").read_text().strip()
    assert address_from_private_key(key) == address
    assert stat.S_IMODE((config / "key").stat().st_mode) == 0o600
    assert stat.S_IMODE(config.stat().st_mode) == 0o700
    # a second keygen never overwrites the key
    assert main(["keygen"]) == 1
    assert "exists" in capsys.readouterr().err
    assert (config / "key").read_text().strip() == key


def test_keygen_out_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "elsewhere" / "wallet.key"
    assert main(["keygen", "--out", str(target)]) == 0
    assert address_from_private_key(target.read_text().strip()) == capsys.readouterr().out.strip()


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read the key file"), ("not a key", "64-hex-digit")],
)
def test_login_with_a_bad_key_file_explains(
    config: Path, content: str | None, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = config.parent / "key.txt"
    if content is not None:
        key.write_text(content)
    assert main(["login", "--key", str(key)]) == 1
    assert message in capsys.readouterr().err


@pytest.mark.usefixtures("redis_client")
def test_login_refused_by_the_gateway_explains(
    edge: RunningEdge, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a URL under which the gateway serves no /auth/challenge
    assert main(["keygen"]) == 0
    capsys.readouterr()
    assert main(["login", "--key", str(config / "key"), "--url", edge.url + "/nowhere"]) == 1
    assert "challenge failed (404)" in capsys.readouterr().err


def test_unreachable_gateway_is_reported(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen"]) == 0
    capsys.readouterr()
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["login", "--key", str(config / "key"), "--url", url]) == 1
    assert "cannot reach the gateway: ConnectError" in capsys.readouterr().err


def test_call_needs_a_login_and_valid_json(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["call", "GET", "/users/me"]) == 1
    assert "not signed in" in capsys.readouterr().err
    config.mkdir(parents=True)
    (config / "credentials.json").write_text(
        json.dumps({"url": "http://127.0.0.1:1", "address": "T", "access_token": "a",
                    "refresh_token": "r"})
    )  # fmt: skip
    assert main(["call", "POST", "/sessions", "--data", "{nope"]) == 1
    assert "--data is not valid JSON" in capsys.readouterr().err


@pytest.mark.usefixtures("redis_client")
def test_call_sends_json_and_reports_failures_by_exit_status(
    edge: RunningEdge, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keygen"]) == 0
    assert main(["login", "--key", str(config / "key"), "--url", edge.url]) == 0
    capsys.readouterr()
    assert main(["call", "PATCH", "/users/me", "--data", '{"display_name": "Ada"}']) == 0
    assert json.loads(without_metrics(capsys.readouterr().out))["display_name"] == "Ada"
    assert main(["call", "PATCH", "/users/me", "--data", '{"role": "admin"}']) == 1
    assert json.loads(without_metrics(capsys.readouterr().out))["status"] == 422
