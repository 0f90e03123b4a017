"""`lucid keygen`, `lucid login` and `lucid call`: sign in with a TRON key from a terminal.

    lucid keygen                         a new key file (0600); prints its address
    lucid login --key FILE [--url URL]   challenge -> signMessageV2 -> login; stores the tokens
    lucid call METHOD PATH [--data JSON] an authenticated request; refreshes once on 401

Files live in LUCID_CONFIG_DIR (default ~/.config/lucid): `key` and `credentials.json`, both
created 0600 in a 0700 directory. Tokens are never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
from coincurve import PrivateKey

from lucid.auth.tron import address_from_private_key, sign_message

DEFAULT_URL = "http://127.0.0.1:8080"
CREDENTIALS = "credentials.json"
TIMEOUT_SECONDS = 30.0


class CommandError(Exception):
    """A failure to report on stderr with exit status 1."""


def config_dir() -> Path:
    """Where the key and credentials live (LUCID_CONFIG_DIR, else ~/.config/lucid)."""
    configured = os.environ.get("LUCID_CONFIG_DIR")
    return Path(configured) if configured else Path.home() / ".config" / "lucid"


def _private_write(path: Path, text: str, *, replace: bool) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not replace:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        return
    # Write a private temporary file, then rename: readers never see a partial file.
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    temporary.replace(path)


def keygen(args: argparse.Namespace) -> int:
    """Write a new private key (hex) to a 0600 file and print its address."""
    path = Path(args.out) if args.out else config_dir() / "key"
    private_key = PrivateKey().secret.hex()
    try:
        _private_write(path, private_key + "\n", replace=False)
    except FileExistsError:
        raise CommandError(f"{path} exists; move it away or pass --out") from None
    print(address_from_private_key(private_key))
    print(f"key written to {path}", file=sys.stderr)
    return 0


def _read_key(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError as error:
        raise CommandError(f"cannot read the key file {path}: {error.strerror}") from None
    try:
        address_from_private_key(text)
    except ValueError:
        raise CommandError(f"{path} does not hold a 64-hex-digit TRON private key") from None
    return text


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"detail": response.text[:200]}


def _expect_ok(response: httpx.Response, what: str) -> dict[str, Any]:
    body = _json(response)
    if response.status_code != 200:
        detail = (body.get("detail") or body.get("message")) if isinstance(body, dict) else None
        raise CommandError(f"{what} failed ({response.status_code}): {detail or 'no detail'}")
    result: dict[str, Any] = body
    return result


def _save_credentials(url: str, address: str, pair: dict[str, Any]) -> None:
    credentials = {
        "url": url,
        "address": address,
        "access_token": pair["access_token"],
        "refresh_token": pair["refresh_token"],
    }
    _private_write(config_dir() / CREDENTIALS, json.dumps(credentials, indent=2), replace=True)


def login(args: argparse.Namespace) -> int:
    """Sign in with the key file: challenge, sign (signMessageV2), login; store the tokens."""
    private_key = _read_key(Path(args.key))
    address = address_from_private_key(private_key)
    url = args.url.rstrip("/")
    with httpx.Client(base_url=url, timeout=TIMEOUT_SECONDS) as client:
        challenge = _expect_ok(
            client.post("/auth/challenge", json={"address": address}), "challenge"
        )
        message = str(challenge["message"])
        signature = "0x" + sign_message(private_key, message).hex()
        body = {"address": address, "message": message, "signature": signature}
        pair = _expect_ok(client.post("/auth/login", json=body), "login")
    _save_credentials(url, address, pair)
    print(f"signed in as {address}")
    return 0


def _load_credentials() -> dict[str, Any]:
    path = config_dir() / CREDENTIALS
    try:
        credentials: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        raise CommandError("not signed in: run `lucid login --key FILE` first") from None
    return credentials


def call(args: argparse.Namespace) -> int:
    """Send METHOD PATH with the stored access token; on 401 refresh once and retry."""
    credentials = _load_credentials()
    url = (args.url or credentials["url"]).rstrip("/")
    try:
        payload = json.loads(args.data) if args.data is not None else None
    except ValueError:
        raise CommandError("--data is not valid JSON") from None
    with httpx.Client(base_url=url, timeout=TIMEOUT_SECONDS) as client:

        def send() -> httpx.Response:
            headers = {"Authorization": f"Bearer {credentials['access_token']}"}
            return client.request(args.method.upper(), args.path, json=payload, headers=headers)

        response = send()
        if response.status_code in (401, 403):
            refreshed = client.post(
                "/auth/refresh", json={"refresh_token": credentials["refresh_token"]}
            )
            pair = _expect_ok(refreshed, "refresh (run `lucid login` again)")
            _save_credentials(url, credentials["address"], pair)
            credentials.update(pair)
            response = send()
    print(response.text)
    return 0 if response.status_code < 400 else 1


def _run(command: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(command(args))
        except CommandError as error:
            print(f"lucid: {error}", file=sys.stderr)
            return 1
        except httpx.HTTPError as error:
            print(f"lucid: cannot reach the gateway: {type(error).__name__}", file=sys.stderr)
            return 1

    return run


def register(subparsers: Any) -> None:
    """Add the `keygen`, `login` and `call` subcommands."""
    default_url = os.environ.get("LUCID_URL", DEFAULT_URL)
    parser = subparsers.add_parser("keygen", help="create a TRON key file and print its address")
    parser.add_argument("--out", help="key file to create (default: LUCID_CONFIG_DIR/key)")
    parser.set_defaults(func=_run(keygen))
    parser = subparsers.add_parser("login", help="sign in with a TRON key file")
    parser.add_argument("--key", required=True, help="file holding the hex private key")
    parser.add_argument("--url", default=default_url, help=f"gateway URL (default {default_url})")
    parser.set_defaults(func=_run(login))
    parser = subparsers.add_parser("call", help="send an authenticated request")
    parser.add_argument("method", help="HTTP method, e.g. GET")
    parser.add_argument("path", help="path, e.g. /users/me")
    parser.add_argument("--data", help="JSON request body")
    parser.add_argument("--url", help="gateway URL (default: the one you logged in to)")
    parser.set_defaults(func=_run(call))
