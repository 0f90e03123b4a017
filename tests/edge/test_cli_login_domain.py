"""`lucid login` is a wallet: it signs only a Lucid sign-in message for its own address whose
domain is the gateway it is talking to (EIP-4361 domain binding), never whatever a server sends.

The attack: a server the user is led to (`lucid login --url https://look-alike`) asks the real
gateway for a challenge for the user's address (challenges are public), relays it, and replays
the signature it gets back at the real gateway. Real parts: the real template served on
127.0.0.1 with its sign-in URL set to a public domain, a relaying server on 127.0.0.1, the CLI.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from lucid.auth.message import build_message
from lucid.auth.tron import address_from_private_key
from lucid_edge.cli import main
from lucid_edge.cli_auth import check_challenge
from lucid_edge.cli_config import CommandError, load_credentials
from tests.edge.conftest import REAL_TEMPLATE
from tests.edge.harness import RunningEdge, running_edge, served_sign_in_url

PUBLIC_URL = "https://api.lucid.example"


@pytest.fixture(scope="module")
def public_gateway() -> Iterator[RunningEdge]:
    """The real template whose sign-in messages name api.lucid.example, as a deployed one's do."""
    with running_edge(REAL_TEMPLATE) as running, served_sign_in_url(PUBLIC_URL):
        yield running


class Relay:
    """A server that answers /auth/challenge with `upstream`'s answer (or `forged`, when set)
    and keeps every /auth/login body it is sent."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.forged: dict[str, Any] | None = None
        self.logins: list[dict[str, Any]] = []
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/auth/challenge":
                    answer = (
                        relay.forged
                        or httpx.post(relay.upstream + self.path, json=body, timeout=10).json()
                    )
                    status = 200
                else:
                    relay.logins.append(body)
                    answer, status = {"detail": "try again"}, 401
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


@pytest.fixture
def relay(public_gateway: RunningEdge) -> Iterator[Relay]:
    server = Relay(public_gateway.url)
    yield server
    server.close()


@pytest.mark.usefixtures("redis_client")
def test_login_refuses_to_sign_a_challenge_of_another_domain(
    public_gateway: RunningEdge,
    relay: Relay,
    config: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a key, and a look-alike server relaying the real gateway's challenges
    assert main(["keygen"]) == 0
    address = capsys.readouterr().out.strip()
    # WHEN the user signs in at the look-alike
    assert main(["login", "--url", relay.url]) == 1
    # THEN nothing was signed nor sent: the message names api.lucid.example, not the relay
    err = capsys.readouterr().err
    assert f"the gateway at {relay.url} asked to sign a sign-in for api.lucid.example" in err
    assert "nothing was signed" in err
    assert relay.logins == []
    assert load_credentials() is None
    # AND the user signs in at the gateway whose domain the message names (here reached on
    # 127.0.0.1, which stands for api.lucid.example: the check compares with --url)
    challenge = httpx.post(
        public_gateway.url + "/auth/challenge", json={"address": address}, timeout=10
    ).json()
    assert challenge["message"].startswith("api.lucid.example wants you to sign in")


@pytest.mark.usefixtures("redis_client")
@pytest.mark.parametrize(
    ("forge", "complaint"),
    [
        (lambda message: "Please sign: transfer everything", "not a Lucid sign-in message"),
        (
            lambda message: message.replace("Sign in to Lucid", "Sign in to Lucyd"),
            "not a Lucid sign-in message",
        ),
    ],
    ids=["arbitrary text", "another statement"],
)
def test_login_signs_nothing_but_a_lucid_sign_in_message(
    relay: Relay,
    config: Path,
    capsys: pytest.CaptureFixture[str],
    forge: Any,
    complaint: str,
) -> None:
    # GIVEN a server whose challenge is not our message (arbitrary text, another statement)
    assert main(["keygen"]) == 0
    address = capsys.readouterr().out.strip()
    real = httpx.post(relay.upstream + "/auth/challenge", json={"address": address}, timeout=10)
    relay.forged = {**real.json(), "message": forge(real.json()["message"])}
    # WHEN the user signs in there THEN the CLI refuses to sign it
    assert main(["login", "--url", relay.url]) == 1
    err = capsys.readouterr().err
    assert complaint in err
    assert "nothing was signed" in err
    assert relay.logins == []


@pytest.mark.usefixtures("redis_client")
def test_login_signs_nothing_for_another_address(
    relay: Relay, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a server that answers with a challenge issued to someone else's address
    assert main(["keygen"]) == 0
    capsys.readouterr()
    other = address_from_private_key("22" * 32)
    relay.forged = httpx.post(
        relay.upstream + "/auth/challenge", json={"address": other}, timeout=10
    ).json()
    # WHEN the user signs in there THEN the CLI refuses before signing
    assert main(["login", "--url", relay.url]) == 1
    assert "issued to another address" in capsys.readouterr().err
    assert relay.logins == []


def _message_for(service_url: str, address: str) -> str:
    now = datetime.now(UTC)
    return build_message(
        service_url=service_url,
        chain_id="mainnet",
        address=address,
        nonce="0" * 32,
        issued_at=now,
        expires_at=now,
    ).text()


@pytest.mark.parametrize(
    ("service_url", "url", "signs"),
    [
        ("https://api.lucid.example", "https://api.lucid.example", True),
        ("https://api.lucid.example", "https://API.lucid.example/dev", True),
        ("https://api.lucid.example", "https://api.lucid.example.evil.test", False),
        ("https://api.lucid.example", "https://api.lucid.example:8443", False),
        # on one port, loopback hosts are one; another port is another server
        ("http://127.0.0.1:8080", "http://localhost:8080", True),
        ("http://localhost:3001", "http://[::1]:3001", True),
        ("http://127.0.0.1:8080", "http://127.0.0.1:3000", False),
        ("http://127.0.0.1", "http://localhost", False),
        # a loopback message is never signed for a server elsewhere, nor the reverse
        ("http://127.0.0.1:8080", "https://api.lucid.example", False),
        ("https://api.lucid.example", "http://127.0.0.1:8080", False),
    ],
)
def test_the_domain_a_cli_login_signs_for(service_url: str, url: str, signs: bool) -> None:
    address = address_from_private_key("11" * 32)
    message = _message_for(service_url, address)
    if signs:
        check_challenge(message, address, url)
    else:
        with pytest.raises(CommandError, match="another site; nothing was signed"):
            check_challenge(message, address, url)


def test_a_domain_that_names_no_host_is_another_site() -> None:
    address = address_from_private_key("11" * 32)
    message = _message_for("http://127.0.0.1:8080", address).replace("127.0.0.1:8080 ", "[::1 ", 1)
    with pytest.raises(CommandError, match="another site"):
        check_challenge(message, address, "http://[::1]:8080")


def test_a_local_gateway_naming_another_port_is_told_how_to_fix_it() -> None:
    # GIVEN `sam local start-api` on :3000 whose AUTH_SERVICE_URL was left at the local default
    address = address_from_private_key("11" * 32)
    message = _message_for("http://127.0.0.1:8080", address)
    # WHEN signing in there THEN nothing is signed, and the error says what to set
    with pytest.raises(CommandError, match="AUTH_SERVICE_URL names its domain: set it to http"):
        check_challenge(message, address, "http://127.0.0.1:3000")
