"""The route table: API Gateway HTTP API stage and route selection, compiled once.

Stage first: a named stage serves only paths under `/{stage}` (the request `/dev/health` is the
route `GET /health` of stage `dev`); any other path answers 404, since SAM creates no `$default`
stage beside a named one, and "if there's no `$default` stage, then the API returns
{"message":"Not Found"}" (notes/aws-facts.md section 1: http-api-develop-routes.html). The
`$default` stage serves at the root. The event keeps the whole path (`rawPath` = `/dev/health`).

Then routes, most specific first, as API Gateway selects them: a full path match beats a path
with `{param}` segments, which beats a greedy `{proxy+}`, comparing segment by segment from the
left; for the same path a specific method beats `ANY`; `$default` catches the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lucid_edge.model import DEFAULT_ROUTE, DEFAULT_STAGE, RouteSpec

_LITERAL, _PARAM, _GREEDY = 2, 1, 0


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """A matched route and its path parameters (None when the route has none)."""

    route: RouteSpec
    path_parameters: Mapping[str, str] | None


@dataclass(frozen=True, slots=True)
class _Pattern:
    route: RouteSpec
    regex: re.Pattern[str]
    names: tuple[str, ...]


def _segment_rank(segment: str) -> int:
    if segment.startswith("{") and segment.endswith("+}"):
        return _GREEDY
    return _PARAM if segment.startswith("{") else _LITERAL


def _compile(route: RouteSpec) -> _Pattern:
    parts: list[str] = []
    names: list[str] = []
    for segment in route.path.split("/")[1:]:
        rank = _segment_rank(segment)
        if rank == _LITERAL:
            parts.append(re.escape(segment))
        elif rank == _PARAM:
            names.append(segment[1:-1])
            parts.append("([^/]+)")
        else:
            names.append(segment[1:-2])
            parts.append("(.+)")
    # DOTALL: a greedy variable takes every character, as `{id}` does; a decoded CR/LF must
    # reach the function (which answers a precise 400), not fall through to a 404.
    pattern = re.compile("/" + "/".join(parts) + r"\Z", re.DOTALL)
    return _Pattern(route, pattern, tuple(names))


def _priority(route: RouteSpec) -> tuple[tuple[int, ...], int]:
    ranks = tuple(_segment_rank(s) for s in route.path.split("/")[1:])
    return ranks, 0 if route.method == "ANY" else 1


class RouteTable:
    """Matches (method, path) to the route API Gateway would choose."""

    def __init__(self, routes: Iterable[RouteSpec], stage: str = DEFAULT_STAGE) -> None:
        self._prefix = "" if stage == DEFAULT_STAGE else "/" + stage
        self._exact: dict[tuple[str, str], RouteMatch] = {}
        patterns: list[RouteSpec] = []
        self._default: RouteMatch | None = None
        for route in routes:
            if route.path == DEFAULT_ROUTE:
                self._default = RouteMatch(route, None)
            elif "{" in route.path:
                patterns.append(route)
            else:
                self._exact[(route.method, route.path)] = RouteMatch(route, None)
        patterns.sort(key=_priority, reverse=True)
        self._patterns = tuple(_compile(route) for route in patterns)
        self._routes = tuple(routes)

    @property
    def routes(self) -> tuple[RouteSpec, ...]:
        """Every route, in template order."""
        return self._routes

    def stage_path(self, path: str) -> str | None:
        """`path` relative to the stage; None when the request reaches no stage (404)."""
        prefix = self._prefix
        if not prefix:
            return path
        if path == prefix:
            return "/"
        return path[len(prefix) :] if path.startswith(prefix + "/") else None

    def match(self, method: str, path: str) -> RouteMatch | None:
        """The route for this request path (stage included), or None (API Gateway's 404)."""
        relative = self.stage_path(path)
        if relative is None:
            return None
        path = relative
        exact = self._exact.get((method, path)) or self._exact.get(("ANY", path))
        if exact is not None:
            return exact
        for pattern in self._patterns:
            if pattern.route.method != method and pattern.route.method != "ANY":
                continue
            found = pattern.regex.match(path)
            if found is not None:
                return RouteMatch(
                    pattern.route, dict(zip(pattern.names, found.groups(), strict=True))
                )
        return self._default
