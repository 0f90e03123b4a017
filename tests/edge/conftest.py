"""Fixtures of the `lucid` command line's tests: the real template served in-process on a free
port, and a user signed in to it through the CLI with a config directory of their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lucid_edge.cli import main
from tests.edge.harness import RunningEdge, running_edge, served_sign_in_url

REAL_TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"


@pytest.fixture(scope="module")
def gateway() -> Iterator[RunningEdge]:
    """infra/template.yaml served on 127.0.0.1 (one per test module), its sign-in messages
    naming the URL it serves, as `make run`'s do: `lucid login` signs no other domain."""
    with running_edge(REAL_TEMPLATE) as running, served_sign_in_url(running.url):
        yield running


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty LUCID_CONFIG_DIR, no LUCID_URL, and a HOME of its own (the CLI also looks for a
    running `make run` in ~/.config/lucid: the user's must not leak into the tests)."""
    monkeypatch.setenv("LUCID_CONFIG_DIR", str(tmp_path / "lucid"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LUCID_URL", raising=False)
    return tmp_path / "lucid"


@pytest.fixture
def signed_in(
    gateway: RunningEdge, config: Path, capsys: pytest.CaptureFixture[str], redis_client: object
) -> Path:
    """A key made by `lucid keygen` and a `lucid login` at the gateway (no --key: the default
    key file); the config directory."""
    assert main(["keygen"]) == 0
    assert main(["login", "--url", gateway.url]) == 0
    capsys.readouterr()
    return config
