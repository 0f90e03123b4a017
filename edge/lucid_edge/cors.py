"""HTTP API CorsConfiguration semantics.

- A preflight (OPTIONS with `Origin` and `Access-Control-Request-Method`) is answered by the
  edge with 204 and never reaches a function when no route takes `OPTIONS` on its path ("API
  Gateway automatically sends a response to preflight OPTIONS requests, even if there isn't an
  OPTIONS route configured", http-api-cors.html). A route that does take it, `ANY`, `OPTIONS`
  or `$default`, receives the preflight like any request, through its authorizer: a browser
  sends no `Authorization` with a preflight, so a protected `ANY` route answers it 401 and the
  browser's call fails. Sources: http-api-cors.html ("The $default route catches requests for
  all methods and routes that you haven't explicitly defined, including OPTIONS requests");
  http-api-develop-routes.html ("The ANY method matches all methods that you haven't defined
  for a route"); aws/serverless-application-model#1603 (an `ANY` route's Lambda receives the
  preflight, explicit methods fix it); re:Post QUa05IJrBaSGKwB16CI_IcBw (a greedy `ANY` route
  forwards OPTIONS to its integration, where an authorizer refuses it). sam local answers every
  OPTIONS itself (aws-sam-cli local_apigw_service.py), so it hides this; the edge does not. An
  allowed origin gets allow-origin, -methods, -headers, max-age and credentials; a disallowed
  origin gets a 204 with no CORS headers.
- Other responses get Access-Control-Allow-Origin (+ Expose-Headers, Allow-Credentials) only
  when the request's Origin is allowed; CORS headers a function sets are always replaced.
- When the answer depends on the request's Origin (listed origins, not `*` alone), every
  response says so with `Vary: Origin` (merged into a Vary the function set), so that a shared
  cache never hands one origin's answer to another (Fetch standard, "CORS protocol and HTTP
  caches"). Whether API Gateway itself adds it is not documented (notes/aws-facts.md section 6).
"""

from __future__ import annotations

from lucid_edge.model import CorsSpec

_ALLOW_ORIGIN = b"access-control-allow-origin"
_CORS_PREFIX = b"access-control-"
_VARY = b"vary"
_ORIGIN = b"origin"


class Cors:
    """A compiled CorsConfiguration; all header bytes are built once."""

    def __init__(self, spec: CorsSpec) -> None:
        self._any_origin = "*" in spec.allow_origins
        self._origins = frozenset(o.encode("latin-1") for o in spec.allow_origins)
        # "https://* (allow any origin that begins with https://)", likewise http://*
        # (http-api-cors.html, allowOrigins): the request's origin is echoed.
        self._prefixes = tuple(o[:-1] for o in self._origins if o.endswith(b"://*"))
        self._varies = bool(self._origins - {b"*"})

        def joined(words: tuple[str, ...]) -> bytes:
            return ",".join(words).encode("latin-1")

        common: list[tuple[bytes, bytes]] = []
        if spec.allow_credentials:
            common.append((b"access-control-allow-credentials", b"true"))
        actual = list(common)
        if spec.expose_headers:
            actual.append((b"access-control-expose-headers", joined(spec.expose_headers)))
        preflight = list(common)
        if spec.allow_methods:
            preflight.append((b"access-control-allow-methods", joined(spec.allow_methods)))
        if spec.allow_headers:
            preflight.append((b"access-control-allow-headers", joined(spec.allow_headers)))
        if spec.max_age is not None:
            preflight.append((b"access-control-max-age", str(spec.max_age).encode()))
        self._actual = tuple(actual)
        self._preflight = tuple(preflight)

    def _allow_origin(self, origin: bytes) -> bytes | None:
        if origin in self._origins:
            return origin
        if self._any_origin:
            return b"*"
        if any(origin.startswith(p) and len(origin) > len(p) for p in self._prefixes):
            return origin
        return None

    def preflight_headers(self, origin: bytes) -> list[tuple[bytes, bytes]]:
        """Headers of the 204 preflight answer (no CORS headers when the origin is not allowed)."""
        allowed = self._allow_origin(origin)
        vary = [(_VARY, b"Origin")] if self._varies else []
        if allowed is None:
            return vary
        return [(_ALLOW_ORIGIN, allowed), *self._preflight, *vary]

    def apply(
        self, headers: list[tuple[bytes, bytes]], origin: bytes | None
    ) -> list[tuple[bytes, bytes]]:
        """Response headers with the function's CORS headers replaced by the configured ones."""
        if any(name.startswith(_CORS_PREFIX) for name, _ in headers):
            headers = [(n, v) for n, v in headers if not n.startswith(_CORS_PREFIX)]
        if self._varies:
            headers = _vary_on_origin(headers)
        if origin is None:
            return headers
        allowed = self._allow_origin(origin)
        if allowed is None:
            return headers
        return [*headers, (_ALLOW_ORIGIN, allowed), *self._actual]


def _vary_on_origin(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` with Origin among the Vary fields (added to the function's own Vary)."""
    for index, (name, value) in enumerate(headers):
        if name.lower() != _VARY:
            continue
        fields = [f.strip().lower() for f in value.split(b",")]
        if _ORIGIN in fields or b"*" in fields:
            return headers
        return [*headers[:index], (name, value + b", Origin"), *headers[index + 1 :]]
    return [*headers, (_VARY, b"Origin")]
