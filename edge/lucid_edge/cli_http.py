"""HTTP for the `lucid` command line: reaching the gateway, and calls as the signed-in user.

What the gateway answers, and what the CLI does about it:

- API Gateway refuses a request itself with `{"message": ...}` as application/json: 401
  Unauthorized when the Authorization header is missing (the authorizer is not invoked), 403
  Forbidden when the authorizer says no (the token is expired, malformed, forged or of a revoked
  sign-in). The CLI always sends its token, so the 403 is the one it meets: it refreshes the
  pair once and sends the request again. Refreshes are serialized across `lucid` processes
  (`renew`): one that waited for another's refresh uses the pair it stored, as spending the
  same refresh token twice would revoke the sign-in.
- A function refuses with application/problem+json: a 403 there is a real "not allowed" (an
  admin route), a 401 a sign-in the function no longer accepts; both are the answer, shown as
  they are, never refreshed over.
- A refresh the gateway refuses (401) means the sign-in is over: the message says why and to
  run `lucid login`. The in-memory store `make run` uses forgets refresh tokens when the edge
  restarts, which is the common case on a laptop.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx

from lucid.config import is_loopback_host
from lucid_edge.cli_config import (
    CommandError,
    Credentials,
    Target,
    credentials_locked,
    how_to_change,
    load_credentials,
    save_credentials,
)

TIMEOUT_SECONDS = 30.0
RESTARTED = (
    "your sign-in is no longer known to this gateway (it may have restarted): run `lucid login`"
)
REVOKED = (
    "your sign-in was revoked (signed out, or its refresh token was used twice): run `lucid login`"
)
EXPIRED = "your sign-in has expired: run `lucid login`"


class UnreachableError(CommandError):
    """The gateway could not be reached (or did not answer in time)."""


class StaleSignInError(CommandError):
    """The gateway no longer accepts the stored sign-in; only `lucid login` helps."""


def _reason(error: httpx.HTTPError) -> str:
    if isinstance(error, httpx.ConnectTimeout | httpx.ReadTimeout | httpx.WriteTimeout):
        return f"no answer within {TIMEOUT_SECONDS:.0f} s"
    if isinstance(error, httpx.ConnectError):
        text = str(error)
        return "connection refused" if "refused" in text.lower() else text or "cannot connect"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def check_transport(target: Target, *, insecure: bool) -> None:
    """Refuse plain http:// to a host that is not this machine unless `insecure` (--insecure).

    Every command that uses the gateway sends a signature (login) or the tokens: over http://
    across a network anyone on the path could read and replay them. Loopback (localhost,
    127.0.0.0/8, ::1: `make run`, `sam local`) needs no TLS, as Docker treats 127.0.0.0/8 and
    ::1 registries as insecure by default and every other one as secure unless configured, and
    pip ignores an http:// index on another host unless `--trusted-host` names it. With
    `insecure` the command goes ahead and says on stderr what crosses the network, every time.
    """
    try:
        parts = urlsplit(target.url)
        host = parts.hostname
    except ValueError:
        return  # not a URL: httpx refuses it, and `gateway` says so
    if parts.scheme.lower() != "http" or host is None or is_loopback_host(host):
        return
    if insecure:
        print(
            f"lucid: warning: your signature and tokens go to {host} over plain HTTP "
            "(--insecure): anyone on the network path can read and use them",
            file=sys.stderr,
        )
        return
    raise CommandError(
        f"{target.url} ({target.source}) is plain HTTP to another host: your signature and "
        "tokens would cross the network readable by anyone on the path. Use the gateway's "
        "https:// URL, or add --insecure if you accept that (a throwaway test network)"
    )


@contextmanager
def gateway(target: Target, *, insecure: bool) -> Iterator[httpx.Client]:
    """A client on `target` (refused by `check_transport` first); any transport failure inside
    becomes an error naming the URL."""
    check_transport(target, insecure=insecure)
    try:
        with httpx.Client(base_url=target.url, timeout=TIMEOUT_SECONDS) as client:
            yield client
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):  # no URL, or not http(s)
        raise CommandError(
            f"{target.url!r} ({target.source}) is not a URL such as http://127.0.0.1:8080"
        ) from None
    except httpx.HTTPError as error:
        raise UnreachableError(
            f"cannot reach the gateway at {target.url} ({_reason(error)}); that URL is "
            f"{target.source}. {how_to_change(target)}"
        ) from None


def body_of(response: httpx.Response) -> Any:
    """The JSON body, or its text (truncated) under `detail` when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return {"detail": response.text[:200]}


def detail_of(response: httpx.Response) -> str:
    """What the gateway said about a refusal: problem detail, API Gateway message, or text."""
    body = body_of(response)
    if isinstance(body, dict):
        for key in ("detail", "message", "title"):
            if body.get(key):
                return str(body[key])
    return "no detail"


def expect_ok(response: httpx.Response, what: str) -> dict[str, Any]:
    """The JSON object of a 200 answer; otherwise an error naming `what` and the status."""
    body = body_of(response)
    if response.status_code != 200 or not isinstance(body, dict):
        raise CommandError(f"{what} failed ({response.status_code}): {detail_of(response)}")
    return body


def gateway_refused_token(response: httpx.Response) -> bool:
    """True for API Gateway's own 403, the authorizer's "no" (not a function's 403)."""
    if response.status_code != 403:
        return False
    if not response.headers.get("content-type", "").startswith("application/json"):
        return False  # a function's refusal is application/problem+json
    return bool(body_of(response) == {"message": "Forbidden"})


def _stale(response: httpx.Response) -> StaleSignInError:
    detail = detail_of(response).lower()
    body = body_of(response)
    kind = str(body.get("type", "")) if isinstance(body, dict) else ""
    if "revoked" in detail or "reuse" in kind or "reuse" in detail:
        return StaleSignInError(REVOKED)
    if "expired" in detail:
        return StaleSignInError(EXPIRED)
    return StaleSignInError(RESTARTED)


def _spend(client: httpx.Client, credentials: Credentials) -> tuple[Credentials, int]:
    # Trade the refresh token for a new pair, stored at once (the caller holds the lock).
    response = client.post("/auth/refresh", json={"refresh_token": credentials.refresh_token})
    if response.status_code == 401:
        raise _stale(response)
    pair = expect_ok(response, "refreshing your sign-in")
    renewed = Credentials(
        credentials.url, credentials.address, pair["access_token"], pair["refresh_token"]
    )
    save_credentials(renewed)
    return renewed, int(pair.get("expires_in", 0))


def _latest(credentials: Credentials) -> Credentials:
    # The stored pair of the same sign-in, as another `lucid` process may have renewed it since
    # `credentials` were read; `credentials` when the store now holds another one (or none).
    stored = load_credentials()
    if stored is None or (stored.url, stored.address) != (credentials.url, credentials.address):
        return credentials
    return stored


def refresh(client: httpx.Client, credentials: Credentials) -> tuple[Credentials, int]:
    """A new pair now (`lucid refresh`), stored at once; the pair and its lifetime (s). A
    refusal (401) is a `StaleSignInError` saying why.

    The refresh token spent is the stored one, read under the credentials lock: a refresh token
    is single use, and the server takes a second use for theft and revokes the sign-in, so two
    `lucid` processes must never both spend the one they read at their start."""
    with credentials_locked():
        return _spend(client, _latest(credentials))


def renew(client: httpx.Client, credentials: Credentials) -> Credentials:
    """A pair to replace `credentials`, whose access token the gateway refused: the one another
    `lucid` process stored since they were read, else a refresh (as `refresh`)."""
    with credentials_locked():
        latest = _latest(credentials)
        if latest.access_token != credentials.access_token:
            return latest  # renewed meanwhile: spending its refresh token again would revoke it
        return _spend(client, latest)[0]


class SignedIn:
    """Requests as the stored user: on the authorizer's 403, one refresh and one retry."""

    def __init__(self, client: httpx.Client, credentials: Credentials) -> None:
        self.client = client
        self.credentials = credentials

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """Send with the access token; refresh once if API Gateway refused the token."""
        response = self._send(method, path, headers, content)
        if gateway_refused_token(response):
            self.credentials = renew(self.client, self.credentials)
            response = self._send(method, path, headers, content)
        return response

    def _send(
        self, method: str, path: str, headers: Mapping[str, str] | None, content: bytes | None
    ) -> httpx.Response:
        sent = dict(headers or {})
        sent["Authorization"] = f"Bearer {self.credentials.access_token}"
        return self.client.request(method, path, headers=sent, content=content)
