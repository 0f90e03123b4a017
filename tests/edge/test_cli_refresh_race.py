"""Concurrent `lucid` commands and one refresh token: a refresh token is single use and the
gateway takes a second use for theft (it revokes the whole sign-in), so the CLI processes that
find the access token expired at the same moment must spend the refresh token once between
them. Real `lucid` processes against the real template served on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import jwt
import pytest

from lucid.auth.keys import get_key_ring
from lucid.auth.tokens import TokenService
from lucid.config import get_settings
from lucid.identity import Role
from lucid_edge import cli_http
from lucid_edge.cli import main
from lucid_edge.cli_config import (
    Credentials,
    Target,
    credentials_locked,
    forget_credentials,
    load_credentials,
    save_credentials,
)
from tests.edge.harness import RunningEdge
from tests.edge.test_edge_metrics import samples
from tests.utils.metrics import without_metrics

PROCESSES = 4
# Each process imports the CLI, says it is ready, and waits for the start file: the imports
# (hundreds of ms) are done before any of them reads the stored pair, so they all read the
# same expired one within a few ms of each other.
CALLER = """
import sys, time
from pathlib import Path
from lucid_edge.cli import main
Path(sys.argv[1]).touch()
start = Path(sys.argv[2])
while not start.exists():
    time.sleep(0.001)
sys.exit(main(["call", "GET", "/users/me"]))
"""


def _expire_access_token(config: Path) -> dict[str, str]:
    """Replace the stored access token by one of the same sign-in that expired an hour ago;
    the claims of the sign-in."""
    stored = json.loads((config / "credentials.json").read_text())
    claims: dict[str, str] = jwt.decode(stored["access_token"], options={"verify_signature": False})
    an_hour_ago = time.time() - 3600
    expired = TokenService(get_settings(), get_key_ring(), clock=lambda: an_hour_ago).issue(
        claims["sub"], claims["addr"], Role(claims["role"]), claims["sid"]
    )
    stored["access_token"] = expired.token
    (config / "credentials.json").write_text(json.dumps(stored))
    return claims


def _refreshes(edge: RunningEdge) -> float:
    """How many POST /auth/refresh the gateway has answered (any status)."""
    text = edge.client.get(edge.url + "/metrics").content
    return sum(
        value
        for (name, labels), value in samples(text).items()
        if name == "lucid_requests_total" and ("route", "POST /auth/refresh") in labels
    )


def test_processes_racing_an_expired_token_refresh_once_and_keep_the_sign_in(
    gateway: RunningEdge, signed_in: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a sign-in whose access token has expired
    claims = _expire_access_token(signed_in)
    refreshes = _refreshes(gateway)
    # WHEN several `lucid call` processes start at the same moment
    start = tmp_path / "start"
    callers = [
        subprocess.Popen(
            [sys.executable, "-c", CALLER, str(tmp_path / f"ready-{i}"), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ),
        )
        for i in range(PROCESSES)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{i}").exists() for i in range(PROCESSES)):
        assert time.monotonic() < deadline, "the callers did not start"
        assert all(caller.poll() is None for caller in callers), "a caller exited early"
        time.sleep(0.01)
    start.touch()
    results = [caller.communicate(timeout=60) for caller in callers]
    # THEN every one of them is answered as the signed-in user
    for caller, (out, err) in zip(callers, results, strict=True):
        assert caller.returncode == 0, err.decode()
        assert json.loads(out)["address"] == claims["addr"]
    # AND the refresh token was spent once: the gateway saw exactly one refresh
    assert _refreshes(gateway) - refreshes == 1
    # AND the sign-in is still good: a later call and a later refresh both work
    assert main(["call", "GET", "/users/me"]) == 0
    assert json.loads(without_metrics(capsys.readouterr().out))["address"] == claims["addr"]
    assert main(["refresh"]) == 0
    assert main(["call", "GET", "/users/me"]) == 0
    # AND the lock file is as private as the token file
    assert (signed_in / "credentials.lock").stat().st_mode & 0o777 == 0o600
    assert (signed_in / "credentials.json").stat().st_mode & 0o777 == 0o600


def test_a_command_that_read_the_pair_before_another_refreshed_uses_the_new_pair(
    gateway: RunningEdge, signed_in: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a command that read the stored pair while its access token was expired
    _expire_access_token(signed_in)
    read_early = load_credentials()
    assert read_early is not None
    # AND another command (`lucid refresh`) has renewed the pair since
    assert main(["refresh"]) == 0
    renewed = load_credentials()
    assert renewed is not None
    refreshes = _refreshes(gateway)
    # WHEN the first command's call is refused for its expired token
    target = Target(read_early.url, "the gateway signed in to")
    with cli_http.gateway(target, insecure=False) as client:
        signed = cli_http.SignedIn(client, read_early)
        response = signed.request("GET", "/users/me")
    # THEN it is sent again with the pair the other stored, without spending a refresh token
    assert response.status_code == 200
    assert signed.credentials == renewed
    assert _refreshes(gateway) == refreshes
    # AND the sign-in still works
    assert main(["call", "GET", "/users/me"]) == 0
    capsys.readouterr()


def test_logout_waits_for_a_refresh_under_way_and_is_not_undone_by_it(config: Path) -> None:
    # GIVEN a stored sign-in, and a refresh under way (it holds the lock: here, this thread)
    save_credentials(Credentials("http://127.0.0.1:9", "TXyz", "ACCESS-1", "REFRESH-1"))
    with credentials_locked():
        # WHEN another command forgets the sign-in (logout) THEN it waits for the refresh
        forgetting = threading.Thread(target=forget_credentials)
        forgetting.start()
        forgetting.join(0.2)
        assert forgetting.is_alive()
        # AND the refresh stores its pair (under the lock it already holds)
        save_credentials(Credentials("http://127.0.0.1:9", "TXyz", "ACCESS-2", "REFRESH-2"))
    forgetting.join(10)
    # THEN the logout came last: the sign-in is gone, not brought back by the refresh
    assert not forgetting.is_alive()
    assert load_credentials() is None
