"""The CLI follows the user's `lucid serve` (what `make run PORT=...` runs): it finds the gateway
on whatever port it serves, and when that gateway restarts (new random key, empty in-memory
store) it says what happened and what to do, instead of a bare 401."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lucid_edge.cli import main
from tests.e2e.subprocess_edge import subprocess_edge
from tests.utils.metrics import without_metrics

pytestmark = pytest.mark.e2e

# A gateway of its own: the random signing key `lucid serve` makes when none is set, as for a
# user who runs `make run` with nothing configured.
FRESH_KEY = {"JWT_SECRET_KEY": ""}


@pytest.mark.usefixtures("redis_client")
def test_login_finds_the_running_gateway_and_a_restart_is_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "lucid"
    monkeypatch.setenv("LUCID_CONFIG_DIR", str(config))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no record of the user's own make run
    monkeypatch.delenv("LUCID_URL", raising=False)
    env = {**FRESH_KEY, "LUCID_CONFIG_DIR": str(config)}
    assert main(["keygen"]) == 0
    capsys.readouterr()
    # GIVEN `lucid serve` on a free port (not 8080)
    with subprocess_edge(env) as first:
        assert json.loads((config / "gateway.json").read_text())["url"] == first.url
        # WHEN the user signs in without naming any URL THEN the CLI finds that gateway
        assert main(["login"]) == 0
        assert f"signed in to {first.url} as " in capsys.readouterr().out
        assert main(["call", "GET", "/users/me"]) == 0
        assert json.loads(without_metrics(capsys.readouterr().out))["role"] == "user"
    # THEN a stopped gateway leaves no record behind
    assert not (config / "gateway.json").exists()
    with subprocess_edge(env) as second:
        # WHEN the gateway signed in to is gone THEN the error names it and the way out
        assert main(["call", "GET", "/users/me"]) == 1
        err = capsys.readouterr().err
        assert f"cannot reach the gateway at {first.url} (connection refused)" in err
        assert "the gateway you signed in to" in err
        assert "`lucid login`" in err
        # WHEN the restarted gateway (another port: another gateway) is named THEN the stored
        # tokens are not sent to it, and the error says how to sign in there
        assert main(["call", "GET", "/users/me", "--url", second.url]) == 1
        err = capsys.readouterr().err
        assert f"you are signed in to {first.url}, not {second.url}" in err
        assert f"`lucid login --url {second.url}`" in err
        # WHEN the user does what it says THEN the new gateway is found and works
        assert main(["login"]) == 0
        assert f"signed in to {second.url} as " in capsys.readouterr().out
        assert main(["whoami"]) == 0
        assert f"gateway     {second.url}" in capsys.readouterr().out
        assert main(["logout"]) == 0
        assert f"signed out of {second.url}" in capsys.readouterr().out
