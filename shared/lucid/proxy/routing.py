"""Which backend serves a public path, and the one URL a path may turn into.

The backend's scheme, host and port come from configuration only. The public path is appended,
unchanged, below the configured base URL (which may carry a path of its own):

    /chain/blocks/7      with BLOCKCHAIN_SERVICE_URL=http://chain:8084/api  ->  http://chain:8084/api/chain/blocks/7

Keeping the prefix lets `/manifests/*` and `/trust/*` share one backend without colliding.

A path remainder is refused (`UnsafePathError`, 400) before any connection when it, or any
percent-decoding of it (double encoding included), holds a dot segment (`..`, `.`, fullwidth
dots too, and `..;x`, which servlet containers read as `..`), an empty segment (`//host`), a
backslash, a scheme (`http://...`), or a control character (CR, LF, NUL, ...), in its own
characters or in their compatibility forms (NFKC: fullwidth `\uff3c` is a backslash). A legitimate
path never needs any of these, and a backend that decodes twice or normalises would otherwise
see a path we never checked.
"""

# No `from __future__ import annotations` here: typing.NamedTuple compiles each string
# annotation of its fields into a ForwardRef at import (README, "Cold start of the built
# artifact").

import re
import unicodedata
from typing import NamedTuple
from urllib.parse import quote, quote_from_bytes, unquote, urlsplit

from lucid.config import Settings
from lucid.errors import NotFoundError, ServiceUnavailableError, UnsafePathError

DEFAULT_PORTS = {"http": 80, "https": 443}


class Url(NamedTuple):
    """A URL as the proxy compares and sends it: scheme and host in lower case, the port None
    when it is the scheme's default (as httpx's `URL` had them), the path and query as written,
    and the user information that was in it (sent as Basic credentials, as httpx did)."""

    scheme: str
    host: str  # an IPv6 address without its brackets
    port: int | None
    target: str  # path and query, as written
    userinfo: str = ""
    fragment: str = ""

    @property
    def origin(self) -> tuple[str, str, int | None]:
        """Scheme, host and port: what makes two URLs the same server."""
        return self.scheme, self.host, self.port

    @property
    def path(self) -> str:
        """The path alone."""
        return self.target.split("?", 1)[0]

    @property
    def is_absolute(self) -> bool:
        """True with both a scheme and a host."""
        return bool(self.scheme and self.host)

    @property
    def netloc(self) -> str:
        """Host (bracketed when IPv6) and the port unless the default: the Host header."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.target}"


def parse_url(text: str) -> Url:
    """`text` as a `Url`; ValueError when its port or IPv6 brackets do not parse."""
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    port = parts.port  # ValueError: a port that is no number or out of range
    if port == DEFAULT_PORTS.get(scheme):
        port = None
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    host = parts.hostname or ""
    if not host.isascii():
        # An internationalised name in its ASCII form (Python's IDNA 2003 codec; httpx used the
        # idna package's IDNA 2008, which differs for a few characters such as "ß"); a
        # UnicodeError, a ValueError, when it has none.
        host = host.encode("idna").decode("ascii")
    return Url(scheme, host, port, target, userinfo, parts.fragment)


class Backend(NamedTuple):
    """One backend cluster: its name (breaker and log key) and the setting holding its URL."""

    name: str
    setting: str

    def base_url(self, settings: Settings) -> Url:
        """The configured base URL; 503 naming the setting when it is unset."""
        value = getattr(settings, self.setting)
        if not value:
            raise ServiceUnavailableError(
                f"the {self.name} backend is not configured: set {self.setting}",
                extensions={"backend": self.name, "setting": self.setting},
            )
        return parse_url(str(value))


BLOCKCHAIN = Backend("blockchain", "BLOCKCHAIN_SERVICE_URL")
SESSION = Backend("session", "SESSION_SERVICE_URL")
NODE = Backend("node", "NODE_SERVICE_URL")
BACKENDS = (BLOCKCHAIN, SESSION, NODE)

# Manifests and trust records are artefacts of sessions: the session-management cluster owns them.
ROUTES: dict[str, Backend] = {
    "chain": BLOCKCHAIN,
    "manifests": SESSION,
    "trust": SESSION,
    "nodes": NODE,
}

_MAX_DECODE_ROUNDS = 4
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DOT_SEGMENTS = frozenset({".", ".."})
# RFC 3986 pchar minus "%": everything else in a decoded path is percent-encoded on the way out.
_PATH_SAFE = "/-._~!$&'()*+,;=:@"
_QUERY_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "#")


def backend_for(prefix: str) -> Backend:
    """The backend serving `/<prefix>/...`."""
    try:
        return ROUTES[prefix]
    except KeyError:
        raise NotFoundError(f"no backend serves /{prefix}") from None


def check_remainder(remainder: str) -> None:
    """Refuse a path remainder that could leave its backend or smuggle a request line."""
    layer = remainder
    for _ in range(_MAX_DECODE_ROUNDS):
        # Every check also applies to the compatibility form (NFKC): a backend that folds
        # characters (Windows' best-fit mapping, a normalising framework) reads fullwidth
        # "\uff3c" as "\\", "\uff1a\uff0f\uff0f" as "://" and "\uff05\uff12\uff45" as "%2e".
        if not layer.isascii():
            _check_layer(layer)
            layer = unicodedata.normalize("NFKC", layer)
        _check_layer(layer)
        try:
            decoded = unquote(layer, errors="strict")
        except UnicodeDecodeError:
            raise UnsafePathError("the path holds an invalid percent-encoding") from None
        if decoded == layer:
            return
        layer = decoded
    raise UnsafePathError("the path is percent-encoded too many times")


def _check_layer(layer: str) -> None:
    if "\\" in layer:
        raise UnsafePathError("the path holds a backslash")
    if _CONTROL.search(layer):
        raise UnsafePathError("the path holds a control character")
    if "://" in layer:
        raise UnsafePathError("the path holds an absolute URL")
    # A segment is also read without its ";" parameters: Tomcat (and Jetty) strip them before
    # resolving dot segments, so "/api/chain/..;/..;/admin" reaches "/admin" there (Orange Tsai,
    # "Breaking Parser Logic", Black Hat USA 2018), and "..;x" is a dot segment to such a backend.
    segments = [segment.split(";", 1)[0] for segment in layer.split("/")]
    if any(segment in _DOT_SEGMENTS for segment in segments):
        raise UnsafePathError("the path holds a dot segment")
    if any(not segment for segment in segments[:-1]):
        raise UnsafePathError("the path holds an empty segment")


def check_query(query: bytes) -> None:
    """Refuse a raw query string holding control characters (CR, LF, NUL, ...)."""
    if any(byte < 0x20 or byte == 0x7F for byte in query):
        raise UnsafePathError("the query string holds a control character")


def upstream_url(base: Url, public_path: str, query: bytes) -> Url:
    """The backend URL for `public_path` (decoded, already checked) and the raw `query`."""
    target = base.path.rstrip("/") + quote(public_path, safe=_PATH_SAFE)
    if query:
        target += "?" + quote_from_bytes(query, safe=_QUERY_SAFE)
    return base._replace(target=target, fragment="")
