"""Sign in with a TRON key from a terminal: `lucid keygen`, `login`, `whoami`, `refresh`, `logout`.

    lucid keygen [--out FILE]            a new key file (0600); prints its address
    lucid login [--key FILE] [--url URL] challenge -> signMessageV2 -> login; stores the tokens
    lucid whoami                         who the stored sign-in is, as the gateway sees it
    lucid refresh                        a new token pair now (`lucid call` refreshes by itself)
    lucid logout                         revoke the sign-in at the gateway, forget it here
    lucid call METHOD PATH ...           a request as the signed-in user (lucid_edge.cli_call)

Files and the gateway's URL: see lucid_edge.cli_config. Tokens are never printed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from coincurve import PrivateKey

from lucid.auth.message import STATEMENT, parse_message
from lucid.auth.tron import address_from_private_key, sign_message
from lucid.config import is_loopback_host
from lucid.errors import MalformedMessageError
from lucid_edge import cli_call
from lucid_edge.cli_config import (
    ENV_URL,
    CommandError,
    Credentials,
    config_dir,
    default_key,
    forget_credentials,
    gateway_url,
    load_credentials,
    private_write,
    save_credentials,
    signed_in_gateway,
    write_failure,
)
from lucid_edge.cli_http import (
    SignedIn,
    StaleSignInError,
    expect_ok,
    gateway,
    refresh,
    renew,
)

NOT_SIGNED_IN = "not signed in: run `lucid login` first"


def keygen(args: argparse.Namespace) -> int:
    """Write a new private key (hex) to a 0600 file and print its address."""
    path = Path(args.out).expanduser() if args.out else default_key()
    private_key = PrivateKey().secret.hex()
    try:
        private_write(path, private_key + "\n", replace=False)
    except OSError as error:
        if isinstance(error, FileExistsError) and Path(error.filename) == path:
            raise CommandError(f"{path} exists; move it away or pass --out") from None
        raise CommandError(
            f"cannot write the key file {path}: {write_failure(path, error)}"
        ) from None
    print(address_from_private_key(private_key))
    print(f"key written to {path}", file=sys.stderr)
    return 0


def _read_key(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError as error:
        hint = "; create one with `lucid keygen`" if path == default_key() else ""
        raise CommandError(f"cannot read the key file {path}: {error.strerror}{hint}") from None
    try:
        address_from_private_key(text)
    except ValueError:
        raise CommandError(f"{path} does not hold a 64-hex-digit TRON private key") from None
    return text


def check_challenge(message: str, address: str, url: str) -> None:
    """What a wallet checks before it signs (EIP-4361 domain binding): `message` is a Lucid
    sign-in message, issued to `address`, for the site at `url`. Otherwise a server the user
    was led to could relay another gateway's challenge and sign in there with the signature
    (challenges are public), or have any text at all signed with the user's key.

    The domain is compared with `url`'s authority (host and port), as MetaMask compares it with
    the page's origin; on one port, loopback hosts are one (`localhost` for 127.0.0.1). Every
    local gateway names the URL it serves (`make run`, `make local-api`), a deployed one never
    a loopback host (lucid.config)."""
    refusal = f"the gateway at {url} "
    try:
        parsed = parse_message(message)
    except MalformedMessageError:
        parsed = None
    if parsed is None or parsed.statement != STATEMENT:
        raise CommandError(
            refusal + "sent a text that is not a Lucid sign-in message; nothing was signed"
        )
    if parsed.address != address:
        raise CommandError(
            refusal + "sent a challenge issued to another address; nothing was signed"
        )
    if not _same_site(parsed.domain, url):
        hint = f"sign in to {parsed.domain} with --url naming it"
        if _is_loopback_url(url) and _is_loopback_url("//" + parsed.domain):
            hint = f"a local gateway's AUTH_SERVICE_URL names its domain: set it to {url}"
        raise CommandError(
            f"{refusal}asked to sign a sign-in for {parsed.domain}, another site; nothing was "
            f"signed ({hint})"
        )


def _same_site(domain: str, url: str) -> bool:
    if domain.lower() == urlsplit(url).netloc.lower():
        return True
    try:
        ports = (urlsplit("//" + domain).port, urlsplit(url).port)
    except ValueError:  # "[::1", "host:99999" and the like: no site at all
        return False
    loopback = _is_loopback_url("//" + domain) and _is_loopback_url(url)
    return loopback and ports[0] is not None and ports[0] == ports[1]


def _is_loopback_url(url: str) -> bool:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    return host is not None and is_loopback_host(host)


def login(args: argparse.Namespace) -> int:
    """Sign in with the key file: challenge, sign (signMessageV2), login; store the tokens."""
    key_path = Path(args.key).expanduser() if args.key else default_key()
    private_key = _read_key(key_path)
    address = address_from_private_key(private_key)
    target = gateway_url(args.url)
    with gateway(target, insecure=args.insecure) as client:
        challenge = expect_ok(
            client.post("/auth/challenge", json={"address": address}), "challenge"
        )
        message = str(challenge["message"])
        check_challenge(message, address, target.url)
        signature = "0x" + sign_message(private_key, message).hex()
        body = {"address": address, "message": message, "signature": signature}
        pair = expect_ok(client.post("/auth/login", json=body), "login")
    save_credentials(Credentials(target.url, address, pair["access_token"], pair["refresh_token"]))
    print(f"signed in to {target.url} as {address}")
    return 0


def _signed_in() -> Credentials:
    credentials = load_credentials()
    if credentials is None:
        raise CommandError(NOT_SIGNED_IN)
    return credentials


def whoami(args: argparse.Namespace) -> int:
    """Ask the gateway who the stored tokens belong to (refreshing them if they expired)."""
    credentials = _signed_in()
    target = signed_in_gateway(args.url, credentials.url)
    with gateway(target, insecure=args.insecure) as client:
        status = expect_ok(client.get("/auth/status", headers=_bearer(credentials)), "whoami")
        if not status.get("authenticated"):
            credentials = renew(client, credentials)
            status = expect_ok(client.get("/auth/status", headers=_bearer(credentials)), "whoami")
    user = status.get("user") or {}
    if not status.get("authenticated") or not isinstance(user, dict):
        raise StaleSignInError("the gateway does not accept your sign-in: run `lucid login`")
    print(f"address     {user.get('address')}")
    print(f"user id     {user.get('id')}")
    print(f"role        {user.get('role')} (rate-limit tier {user.get('tier')})")
    print(f"gateway     {target.url}")
    print(f"token until {status.get('expires_at')} (`lucid call` refreshes it when it expires)")
    return 0


def _bearer(credentials: Credentials) -> dict[str, str]:
    return {"Authorization": f"Bearer {credentials.access_token}"}


def refresh_command(args: argparse.Namespace) -> int:
    """Trade the refresh token for a new pair now."""
    credentials = _signed_in()
    target = signed_in_gateway(args.url, credentials.url)
    with gateway(target, insecure=args.insecure) as client:
        _, lifetime = refresh(client, credentials)
    print(f"tokens refreshed at {target.url}; the access token lives {lifetime} s")
    return 0


def logout(args: argparse.Namespace) -> int:
    """Revoke the sign-in at the gateway (access token and refresh family), then forget it."""
    credentials = _signed_in()
    target = signed_in_gateway(args.url, credentials.url)
    try:
        with gateway(target, insecure=args.insecure) as client:
            response = SignedIn(client, credentials).request("POST", "/auth/logout")
    except StaleSignInError:
        forget_credentials()
        print(
            f"the gateway at {target.url} no longer knew this sign-in; it is forgotten here too",
            file=sys.stderr,
        )
        return 0
    if response.status_code != 204:
        expect_ok(response, "logout")  # raises, naming the status and the gateway's detail
    forget_credentials()
    print(f"signed out of {target.url}: this sign-in's tokens are revoked")
    return 0


def _run(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(command(args))
        except CommandError as error:
            print(f"lucid: {error}", file=sys.stderr)
            return 1

    return run


def _url_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--url", help=f"gateway base URL (default: {default}; or set {ENV_URL})", default=None
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow plain http:// to a host other than this machine (the signature and tokens "
        "cross the network in clear text)",
    )


def register(subparsers: Any) -> None:
    """Add `keygen`, `login`, `whoami`, `refresh`, `logout` and `call`."""
    parser = subparsers.add_parser("keygen", help="create a TRON key file and print its address")
    parser.add_argument("--out", help="key file to create (default: LUCID_CONFIG_DIR/key)")
    parser.set_defaults(func=_run(keygen))
    parser = subparsers.add_parser("login", help="sign in with a TRON key file")
    parser.add_argument(
        "--key", help=f"file holding the hex private key (default: {config_dir() / 'key'})"
    )
    _url_option(parser, "where `make run` serves, else http://127.0.0.1:8080")
    parser.set_defaults(func=_run(login))
    signed_in = "the gateway you signed in to"
    for name, command, text in (
        ("whoami", whoami, "who you are signed in as, asked of the gateway"),
        ("refresh", refresh_command, "trade the refresh token for a new token pair"),
        ("logout", logout, "revoke the sign-in at the gateway and forget it here"),
    ):
        parser = subparsers.add_parser(name, help=text)
        _url_option(parser, signed_in)
        parser.set_defaults(func=_run(command))
    parser = subparsers.add_parser("call", help="send a request as the signed-in user")
    cli_call.add_arguments(parser)
    _url_option(parser, signed_in)
    parser.set_defaults(func=_run(cli_call.call))
