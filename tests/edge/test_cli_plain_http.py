"""`lucid login` / `call` / `whoami` / `refresh` / `logout` never send a signature or a token in
clear text across a network unless told to (`--insecure`): plain http:// is for this machine
(loopback) only. `.invalid` names never resolve (RFC 6761 6.4): whether anything was attempted
shows in the error ("cannot reach" means it tried)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lucid_edge.cli import main
from lucid_edge.cli_config import Credentials, save_credentials

REMOTE = "http://gateway.example.invalid:8080"


@pytest.fixture
def key(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen"]) == 0
    capsys.readouterr()


@pytest.mark.usefixtures("key")
@pytest.mark.parametrize(
    "url", [REMOTE, "http://192.0.2.10", "http://[2001:db8::1]:8080", "HTTP://Gateway.Example"]
)
def test_login_over_plain_http_to_another_host_is_refused_before_any_request(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN the user signs in at a gateway on another host over http://
    assert main(["login", "--url", url]) == 1
    # THEN it is refused, saying why and how to go on, before anything is sent
    err = capsys.readouterr().err
    assert "plain HTTP" in err
    assert "https://" in err
    assert "--insecure" in err
    assert "cannot reach" not in err


@pytest.mark.usefixtures("key")
def test_login_with_insecure_goes_ahead_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN the user insists (--insecure) THEN the sign-in is attempted, with a warning on stderr
    assert main(["login", "--url", REMOTE, "--insecure"]) == 1
    err = capsys.readouterr().err
    assert "warning: your signature and tokens go to gateway.example.invalid" in err
    assert f"cannot reach the gateway at {REMOTE}" in err


@pytest.mark.usefixtures("key")
@pytest.mark.parametrize(
    "url",
    [
        "https://gateway.example.invalid",
        "http://localhost.invalid.localhost:1",
        "http://127.0.0.2:1",
        "http://[::1]:1",
    ],
)
def test_https_and_loopback_need_no_flag(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN the gateway is reached over TLS, or over http:// on this machine THEN it is attempted
    # without a word (nothing listens there: "cannot reach")
    assert main(["login", "--url", url]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the gateway" in err
    assert "warning" not in err


@pytest.mark.usefixtures("config")
@pytest.mark.parametrize(
    "command", [["call", "GET", "/users/me"], ["whoami"], ["refresh"], ["logout"]]
)
def test_stored_tokens_never_go_over_plain_http_to_another_host_unless_told(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a sign-in stored for a gateway on another host reached over http://
    save_credentials(Credentials(REMOTE, "TXyz", "ACCESS", "REFRESH"))
    # WHEN a command that sends its tokens runs THEN it refuses before connecting
    assert main(command) == 1
    err = capsys.readouterr().err
    assert "--insecure" in err
    assert "cannot reach" not in err
    # AND with --insecure it goes ahead (and warns)
    assert main([*command, "--insecure"]) == 1
    err = capsys.readouterr().err
    assert "warning:" in err
    assert "cannot reach the gateway" in err
    assert "ACCESS" not in err
    assert "REFRESH" not in err
