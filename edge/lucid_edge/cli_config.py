"""Where the `lucid` command line keeps its files and which gateway it talks to.

Files live in LUCID_CONFIG_DIR (default ~/.config/lucid), created 0600 in a 0700 directory:

    key                the TRON private key `lucid keygen` writes and `lucid login` reads
    credentials.json   the tokens of the last sign-in and the gateway that issued them
    credentials.lock   taken (flock) around a refresh, so that concurrent `lucid` commands spend
                       the refresh token once: a second use would be taken for a stolen token
    gateway.json       where a running `lucid serve` answers (written at its start, removed at
                       its end), so `make run PORT=8093` and then `lucid login` find it

The gateway's base URL comes from one place, `gateway_url`, in this order: `--url`, the
LUCID_URL environment variable, the gateway the stored sign-in came from (for the commands that
use it), the running `lucid serve`, http://127.0.0.1:8080. Every error that cannot reach it names
the URL, where it came from and how to choose another.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8080"
ENV_URL = "LUCID_URL"
ENV_CONFIG_DIR = "LUCID_CONFIG_DIR"
KEY = "key"
CREDENTIALS = "credentials.json"
CREDENTIALS_LOCK = "credentials.lock"
GATEWAY = "gateway.json"


class CommandError(Exception):
    """A failure to report on stderr with exit status 1."""


def _default_dir() -> Path:
    return Path.home() / ".config" / "lucid"


def config_dir() -> Path:
    """Where the key and credentials live (LUCID_CONFIG_DIR, else ~/.config/lucid)."""
    configured = os.environ.get(ENV_CONFIG_DIR)
    return Path(configured).expanduser() if configured else _default_dir()


def default_key() -> Path:
    """The key file `lucid keygen` writes and `lucid login` reads unless told otherwise."""
    return config_dir() / KEY


def private_write(path: Path, text: str, *, replace: bool) -> None:
    """Write `text` to a 0600 file in a 0700 directory; `replace=False` never overwrites."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not replace:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        return
    # Write a private temporary file, then rename: readers never see a partial file.
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    temporary.replace(path)


def write_failure(path: Path, error: OSError) -> str:
    """Why `private_write(path, ...)` raised `error`, in words. Its folder's mkdir raises
    FileExistsError, naming that folder, when a file stands where the folder should be."""
    if isinstance(error, FileExistsError) and error.filename and Path(error.filename) != path:
        return f"{error.filename} is a file, not a folder"
    return str(error.strerror or error)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True, slots=True)
class Credentials:
    """The stored sign-in: who, at which gateway, with which tokens (never printed)."""

    url: str
    address: str
    access_token: str
    refresh_token: str


def load_credentials() -> Credentials | None:
    """The stored sign-in, or None when there is none (or it is unreadable)."""
    stored = _read_json(config_dir() / CREDENTIALS)
    if stored is None:
        return None
    try:
        return Credentials(
            str(stored["url"]),
            str(stored["address"]),
            str(stored["access_token"]),
            str(stored["refresh_token"]),
        )
    except KeyError:
        return None


def save_credentials(credentials: Credentials) -> None:
    """Store the sign-in (0600), replacing any other."""
    text = json.dumps(
        {
            "url": credentials.url,
            "address": credentials.address,
            "access_token": credentials.access_token,
            "refresh_token": credentials.refresh_token,
        },
        indent=2,
    )
    with credentials_locked():  # never between another command's refresh and its store
        private_write(config_dir() / CREDENTIALS, text, replace=True)


# How deep the calling thread is in `credentials_locked` (it may nest: a refresh stores the pair).
_holding = threading.local()


@contextmanager
def credentials_locked() -> Iterator[None]:
    """Hold the exclusive lock on the stored sign-in for the block (waiting for another `lucid`
    process that holds it); a thread that holds it already just goes on. The kernel drops a
    `flock` when its holder exits, so a killed process never leaves the sign-in locked."""
    depth: int = getattr(_holding, "depth", 0)
    if depth:
        _holding.depth = depth + 1
        try:
            yield
        finally:
            _holding.depth = depth
        return
    path = config_dir() / CREDENTIALS_LOCK
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        _holding.depth = 1
        yield
    finally:
        _holding.depth = 0
        os.close(descriptor)  # closing the only descriptor releases the lock


def forget_credentials() -> bool:
    """Remove the stored sign-in; False when there was none."""
    path = config_dir() / CREDENTIALS
    with credentials_locked():  # a refresh under way stores its pair first, then it is removed
        existed = path.exists()
        path.unlink(missing_ok=True)
    return existed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def served_gateway() -> str | None:
    """The URL a running `lucid serve` recorded, or None (none recorded, or its process is
    gone: a record left by a killed edge is ignored). A CLI given LUCID_CONFIG_DIR also finds
    a `make run` started without it (in another terminal), in ~/.config/lucid."""
    for directory in dict.fromkeys((config_dir(), _default_dir())):
        record = _read_json(directory / GATEWAY)
        if record is None:
            continue
        url, pid = record.get("url"), record.get("pid")
        if isinstance(url, str) and isinstance(pid, int) and _alive(pid):
            return url
    return None


@contextmanager
def recording_gateway(url: str) -> Iterator[None]:
    """Record `url` as where this process serves, for the block's duration (`lucid serve`).
    The record is removed at the end unless a later `lucid serve` replaced it."""
    path = config_dir() / GATEWAY
    pid = os.getpid()
    try:
        private_write(path, json.dumps({"url": url, "pid": pid}), replace=True)
    except OSError:
        yield  # an unwritable config dir must not stop the gateway; the CLI uses --url then
        return
    try:
        yield
    finally:
        record = _read_json(path)
        if record is not None and record.get("pid") == pid:
            path.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class Target:
    """A gateway URL and where it came from, in words for error messages."""

    url: str
    source: str


def gateway_url(explicit: str | None, signed_in: str | None = None) -> Target:
    """The base URL to use: --url, LUCID_URL, the sign-in's gateway, `lucid serve`'s, default."""
    if explicit:
        return _target(explicit, "given with --url")
    from_env = os.environ.get(ENV_URL)
    if from_env:
        return _target(from_env, f"from {ENV_URL}")
    if signed_in:
        return _target(signed_in, "the gateway you signed in to")
    served = served_gateway()
    if served:
        return _target(served, "where `lucid serve` (make run) says it is serving")
    return Target(DEFAULT_URL, "the default")


def _target(url: str, source: str) -> Target:
    # A user name or password in the URL is never the gateway's (you sign in with your key) and
    # would be shown in every error that names the URL: refused, without showing it.
    if "@" in re.split(r"[/?#]", url.partition("://")[2], maxsplit=1)[0]:
        raise CommandError(
            f"the gateway URL {source} holds a user name or password, which the gateway never "
            "takes (you sign in with your key): leave them out"
        )
    return Target(url.rstrip("/"), source)


def how_to_change(target: Target) -> str:
    """One sentence on choosing another gateway than `target`."""
    if target.source == "the gateway you signed in to":
        return (
            "If the gateway moved, sign in to it again (`lucid login`, which finds a running "
            f"`make run`, or `lucid login --url URL`); --url URL or {ENV_URL}=URL picks another."
        )
    return f"Start it with `make run`, or pick another gateway with --url URL or {ENV_URL}=URL."


def signed_in_gateway(explicit: str | None, signed_in: str) -> Target:
    """Where to send the stored tokens: only the gateway that issued them. A --url or LUCID_URL
    naming another one is refused rather than handed the access and refresh tokens."""
    target = gateway_url(explicit, signed_in)
    if target.url != signed_in.rstrip("/"):
        raise CommandError(
            f"you are signed in to {signed_in.rstrip('/')}, not {target.url} ({target.source}); "
            f"your tokens are only sent where they came from: run `lucid login --url {target.url}`"
        )
    return target
