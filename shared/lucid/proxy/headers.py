"""Header hygiene in both directions.

Towards the backend: hop-by-hop headers (RFC 9110 §7.6.1: Connection and every header it names,
Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade) are dropped, and so are the
caller's credentials (Authorization, Cookie), anything claiming identity or origin (X-Lucid-*,
X-Forwarded-*, Forwarded, X-Real-IP), a path or method overriding the request line's
(X-Original-URL, X-Rewrite-URL, X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override) and
the framing headers the client library recomputes (Host, Content-Length). The gateway then adds
what only it can vouch for: X-Request-ID, X-Forwarded-For (API Gateway's sourceIp) and
X-Lucid-User-Id / X-Lucid-Role from the authorizer context.
Names are matched with `_` read as `-`: a WSGI backend (PEP 3333 uses CGI's variable names)
reads `X_Lucid_User_Id` and `X-Lucid-User-Id` as one HTTP_X_LUCID_USER_ID, so a caller's
`X_Lucid_User_Id: someone` would otherwise arrive as that variable, before the gateway's value
(stdlib wsgiref joins them as "someone,<real id>"). Django and gunicorn 22+ drop such headers for
this reason; the gateway cannot count on every backend doing so. A header that is not a valid
HTTP field (a name that is not a token, a control character in the value) is the caller's 400,
refused before the breaker is asked; leading and trailing whitespace is trimmed from values.

Towards the caller, what describes the content passes through untouched (Content-Type,
Content-Encoding, ETag, Cache-Control, Location, Retry-After, Set-Cookie, ...). Dropped:
hop-by-hop headers and the framing the gateway recomputes (Content-Length); what would tell an
attacker which software runs behind the gateway (Server, X-Powered-By, X-AspNet-Version,
X-AspNetMvc-Version, Via); and what only the gateway or API Gateway may say: Date, the request
id, the rate-limit headers (X-RateLimit-*, RateLimit, RateLimit-Policy), CORS (Access-Control-*,
which API Gateway sets from the template and ignores from integrations), X-Content-Type-Options
(every response of ours says nosniff), and the X-Lucid-* / X-Amzn-* / Apigw-* namespaces.
A Location or Content-Location naming the backend under its base URL (the backend builds it from
the Host the gateway sent, its internal address) becomes the gateway's root-relative path, as
nginx's `proxy_redirect default` does: the caller can follow it, and never learns the internal
origin. The stage prefix is added back by `lucid.web.stage` like any root-relative Location.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lucid.errors import BadRequestError
from lucid.identity import CallerIdentity
from lucid.proxy.routing import Url, parse_url

Header = tuple[str, str]

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"}
)
_NEVER_FORWARDED = frozenset(
    {
        "authorization",
        "cookie",
        "host",
        "content-length",
        "expect",
        "forwarded",
        "x-real-ip",
        "x-request-id",
        # a path or method other than the request line's, which some frameworks route or
        # dispatch by (IIS URL Rewrite; Symfony until CVE-2018-14773; method-override
        # middleware): the gateway checked and authorised the request line, nothing else
        "x-original-url",
        "x-rewrite-url",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    }
)
_GATEWAY_PREFIXES = ("proxy-", "x-lucid-", "x-forwarded-")
_RECOMPUTED_IN_RESPONSE = frozenset({"content-length", "x-request-id"})
_NOT_PASSED_BACK = frozenset(
    {
        # fingerprints of the backend's software
        "server",
        "x-powered-by",
        "x-aspnet-version",
        "x-aspnetmvc-version",
        "via",
        # the gateway's own. Date too: the answering server stamps its own, and a backend's
        # beside it made two Date fields (RFC 9110 section 6.6.1: one value); nginx does not
        # pass a proxied server's Date either (ngx_http_proxy_module, proxy_hide_header)
        "date",
        "x-content-type-options",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "ratelimit",
        "ratelimit-policy",
    }
)
_NOT_PASSED_BACK_PREFIXES = ("access-control-", "x-lucid-", "x-amzn-", "apigw-")

# RFC 9110 section 5.1: a field name is a token; section 5.5: a value holds no control character
# but HTAB, and its leading and trailing SP/HTAB are not part of it. The HTTP client (h11)
# refuses to send a field outside this grammar, which would otherwise surface as a transport
# error: a 502 counted by the breaker against a backend that was never called, so one caller
# could open the breaker for everyone (five requests to the public GET /chain/info).
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_OWS = " \t"

USER_ID_HEADER = "X-Lucid-User-Id"
ROLE_HEADER = "X-Lucid-Role"


def _connection_named(headers: Iterable[Header]) -> frozenset[str]:
    named: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            named.update(token.strip().lower().replace("_", "-") for token in value.split(","))
    return frozenset(named)


def _is_hop_by_hop(name: str, connection_named: frozenset[str]) -> bool:
    return name in _HOP_BY_HOP or name.startswith("proxy-") or name in connection_named


def request_headers(
    incoming: Iterable[Header],
    *,
    request_id: str,
    source_ip: str,
    caller: CallerIdentity | None,
) -> list[Header]:
    """The headers the backend receives for a request that arrived with `incoming`."""
    incoming = list(incoming)
    named = _connection_named(incoming)
    forwarded: list[Header] = []
    for name, value in incoming:
        if not _TOKEN.fullmatch(name):
            raise BadRequestError(f"the header name {name[:64]!r} is not an HTTP token")
        lowered = name.lower()
        canonical = lowered.replace("_", "-")  # what a CGI-style backend reads it as
        if _is_hop_by_hop(canonical, named) or canonical in _NEVER_FORWARDED:
            continue
        if canonical.startswith(_GATEWAY_PREFIXES):
            continue
        forwarded.append((lowered, _field_value(lowered, value)))
    forwarded.append(("X-Request-ID", request_id))
    forwarded.append(("X-Forwarded-For", source_ip))
    if caller is not None:
        forwarded.append((USER_ID_HEADER, caller.user_id))
        forwarded.append((ROLE_HEADER, str(caller.role)))
    return forwarded


def _field_value(name: str, value: str) -> str:
    value = value.strip(_OWS)
    if _CONTROL.search(value):
        raise BadRequestError(f"the {name} header holds a control character")
    return value


def response_headers(incoming: Iterable[Header], *, keep_length: bool = False) -> list[Header]:
    """The backend's response headers the caller sees (`keep_length` for HEAD answers)."""
    incoming = list(incoming)
    named = _connection_named(incoming)
    dropped = (_RECOMPUTED_IN_RESPONSE | _NOT_PASSED_BACK) - (
        {"content-length"} if keep_length else set()
    )
    return [
        (name, value)
        for name, value in incoming
        if not _is_hop_by_hop(name.lower().replace("_", "-"), named)
        and name.lower() not in dropped
        and not name.lower().startswith(_NOT_PASSED_BACK_PREFIXES)
    ]


_LOCATIONS = frozenset({"location", "content-location"})


def public_locations(headers: list[Header], base: Url) -> list[Header]:
    """`headers` with each Location / Content-Location under `base` made the public path."""
    return [
        (name, _public_location(value, base)) if name.lower() in _LOCATIONS else (name, value)
        for name, value in headers
    ]


def _public_location(value: str, base: Url) -> str:
    # "http://10.0.3.4:8080/api/nodes/9?x" (base http://10.0.3.4:8080/api) -> "/nodes/9?x";
    # "/api/nodes/9" (root-relative on the backend) the same; anything else stays as it is.
    try:
        target = parse_url(value)
    except ValueError:
        return value
    if target.is_absolute:
        if target.origin != base.origin:
            return value
    elif not value.startswith("/") or value.startswith("//"):
        return value  # relative to the request, or protocol-relative: not the backend's path
    base_path = base.path.rstrip("/")
    path = target.target  # path and query, as the backend wrote them
    if base_path and not (path == base_path or path.startswith((base_path + "/", base_path + "?"))):
        return value
    public = path[len(base_path) :]
    public = public if public.startswith("/") else "/" + public
    return public + (f"#{target.fragment}" if target.fragment else "")
