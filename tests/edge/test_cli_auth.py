"""`lucid keygen/login/whoami/refresh/logout`: files, permissions, the gateway's URL and the
failures a user sees, against the real template served on 127.0.0.1 on a free port."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from lucid.auth.tron import address_from_private_key
from lucid_edge import cli_config
from lucid_edge.cli import main
from lucid_edge.cli_config import gateway_url, load_credentials, recording_gateway
from lucid_edge.local import free_port
from tests.edge.harness import RunningEdge


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


def test_login_without_a_key_says_how_to_make_one(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["login"]) == 1
    err = capsys.readouterr().err
    assert f"cannot read the key file {config / 'key'}" in err
    assert "`lucid keygen`" in err


@pytest.mark.usefixtures("redis_client")
def test_login_refused_by_the_gateway_explains(
    gateway: RunningEdge, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a URL under which the gateway serves no /auth/challenge
    assert main(["keygen"]) == 0
    capsys.readouterr()
    assert main(["login", "--url", gateway.url + "/nowhere"]) == 1
    assert "challenge failed (404): Not Found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("how", "source"),
    [
        ("default", "that URL is the default"),
        ("env", "that URL is from LUCID_URL"),
        ("flag", "that URL is given with --url"),
    ],
)
def test_an_unreachable_gateway_is_named_with_how_to_change_it(
    config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    how: str,
    source: str,
) -> None:
    # GIVEN a key, and a gateway URL where nothing listens
    assert main(["keygen"]) == 0
    capsys.readouterr()
    url = f"http://127.0.0.1:{free_port()}"
    args = ["login"]
    if how == "default":
        monkeypatch.setattr(cli_config, "DEFAULT_URL", url)
    elif how == "env":
        monkeypatch.setenv("LUCID_URL", url)
    else:
        args += ["--url", url]
    # WHEN the user signs in THEN the error names the URL, its source and the way to change it
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"cannot reach the gateway at {url} (connection refused)" in err
    assert source in err
    assert "--url URL or LUCID_URL=URL" in err


@pytest.mark.usefixtures("config")
@pytest.mark.parametrize("url", ["notaurl", "ftp://127.0.0.1:21", "127.0.0.1:8080"])
def test_a_url_that_is_no_http_url_is_said_so(capsys: pytest.CaptureFixture[str], url: str) -> None:
    # GIVEN a key WHEN the user signs in at something that is not an http(s) URL
    assert main(["keygen"]) == 0
    capsys.readouterr()
    assert main(["login", "--url", url]) == 1
    # THEN that is the error, not "cannot reach the gateway ... start it with make run"
    err = capsys.readouterr().err
    assert f"{url!r} (given with --url) is not a URL such as http://127.0.0.1:8080" in err
    assert "cannot reach" not in err


@pytest.mark.usefixtures("config")
@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_gateway_url_with_a_password_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    # GIVEN a gateway URL carrying a user name and password (the gateway takes none)
    url = f"http://lucid:s3cr3t-pw@127.0.0.1:{free_port()}"
    assert main(["keygen"]) == 0
    capsys.readouterr()
    args = ["login"]
    if how == "env":
        monkeypatch.setenv("LUCID_URL", url)
    else:
        args += ["--url", url]
    # WHEN the user signs in THEN it is refused, the password shown nowhere
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "holds a user name or password" in err
    assert "s3cr3t-pw" not in err


@pytest.mark.usefixtures("config")
def test_the_url_comes_from_flag_then_env_then_sign_in_then_the_running_edge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert gateway_url(None).url == cli_config.DEFAULT_URL
    with recording_gateway("http://127.0.0.1:8093/"):
        assert gateway_url(None) == cli_config.Target(
            "http://127.0.0.1:8093", "where `lucid serve` (make run) says it is serving"
        )
        assert gateway_url(None, "http://signed.in:1").url == "http://signed.in:1"
        monkeypatch.setenv("LUCID_URL", "http://env:2/")
        assert gateway_url(None, "http://signed.in:1").url == "http://env:2"
        assert gateway_url("http://flag:3", "http://signed.in:1").url == "http://flag:3"
    # the record goes with the edge that wrote it
    monkeypatch.delenv("LUCID_URL")
    assert gateway_url(None).url == cli_config.DEFAULT_URL


def test_a_record_left_by_a_killed_edge_is_ignored(config: Path) -> None:
    # GIVEN a record naming a process that no longer exists (an edge killed with SIGKILL)
    config.mkdir(parents=True)
    process = subprocess.Popen(["true"])
    process.wait()
    gone = process.pid
    (config / "gateway.json").write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": gone}))
    # THEN the CLI falls back to the default instead of a dead address
    assert gateway_url(None).url == cli_config.DEFAULT_URL


def test_a_newer_edges_record_survives_an_older_edges_exit(config: Path) -> None:
    with recording_gateway("http://127.0.0.1:1"):
        # a second `lucid serve` (here: a record from another live process) replaces it
        (config / "gateway.json").write_text(
            json.dumps({"url": "http://127.0.0.1:2", "pid": os.getppid()})
        )
    assert gateway_url(None).url == "http://127.0.0.1:2"


def test_whoami_refresh_and_logout_over_a_sign_in(
    gateway: RunningEdge, signed_in: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a sign-in made with the default key file
    first = load_credentials()
    assert first is not None
    assert first.url == gateway.url
    assert stat.S_IMODE((signed_in / "credentials.json").stat().st_mode) == 0o600
    # WHEN asking who we are THEN the gateway names the address, and no token is printed
    assert main(["whoami"]) == 0
    out = capsys.readouterr().out
    assert f"address     {first.address}" in out
    assert "role        user" in out
    assert first.access_token not in out
    assert first.refresh_token not in out
    # WHEN refreshing THEN a new pair is stored and the old refresh token is spent
    assert main(["refresh"]) == 0
    assert "tokens refreshed" in capsys.readouterr().out
    second = load_credentials()
    assert second is not None
    assert second.refresh_token != first.refresh_token
    # WHEN signing out THEN the refresh family is revoked at the gateway and forgotten here
    assert main(["logout"]) == 0
    assert f"signed out of {gateway.url}" in capsys.readouterr().out
    assert load_credentials() is None
    refused = httpx.post(
        gateway.url + "/auth/refresh", json={"refresh_token": second.refresh_token}, timeout=10
    )
    assert refused.status_code == 401
    for command in (["whoami"], ["refresh"], ["logout"], ["call", "GET", "/users/me"]):
        assert main(command) == 1
        assert "not signed in: run `lucid login` first" in capsys.readouterr().err


def test_a_sign_in_the_gateway_forgot_says_to_log_in_again(
    gateway: RunningEdge, signed_in: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a sign-in whose tokens the gateway no longer knows (what an edge restart does to
    # its random key and in-memory store): a token it cannot verify, a refresh token never issued
    stored = json.loads((signed_in / "credentials.json").read_text())
    stored.update(access_token="not-a-jwt", refresh_token="R" * 43)
    (signed_in / "credentials.json").write_text(json.dumps(stored))
    expected = (
        "your sign-in is no longer known to this gateway (it may have restarted): run `lucid login`"
    )
    # WHEN calling, asking who we are or refreshing THEN the message says what to do
    for command in (["call", "GET", "/users/me"], ["whoami"], ["refresh"]):
        assert main(command) == 1
        assert expected in capsys.readouterr().err
    # WHEN signing out THEN the stale sign-in is forgotten here too
    assert main(["logout"]) == 0
    assert "no longer knew this sign-in" in capsys.readouterr().err
    assert load_credentials() is None


def test_a_revoked_sign_in_is_called_revoked(
    gateway: RunningEdge, signed_in: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a refresh token already spent by someone else (RFC 9700 reuse: the family is revoked)
    stored = json.loads((signed_in / "credentials.json").read_text())
    spent = httpx.post(
        gateway.url + "/auth/refresh", json={"refresh_token": stored["refresh_token"]}, timeout=10
    )
    assert spent.status_code == 200
    stored["access_token"] = "not-a-jwt"
    (signed_in / "credentials.json").write_text(json.dumps(stored))
    # WHEN the CLI needs to refresh THEN it says the sign-in was revoked
    assert main(["call", "GET", "/users/me"]) == 1
    assert "your sign-in was revoked" in capsys.readouterr().err


def test_a_cli_with_its_own_config_dir_finds_a_make_run_started_without_it(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN `make run` in a terminal without LUCID_CONFIG_DIR (its record in ~/.config/lucid)
    with monkeypatch.context() as terminal:
        terminal.delenv("LUCID_CONFIG_DIR")
        with recording_gateway("http://127.0.0.1:8093"):
            # WHEN the CLI runs in a terminal with LUCID_CONFIG_DIR set THEN it finds it too
            terminal.setenv("LUCID_CONFIG_DIR", str(config))
            assert gateway_url(None).url == "http://127.0.0.1:8093"
