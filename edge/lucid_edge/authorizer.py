"""Lambda REQUEST authorizers (payload format 2.0), as HTTP API runs them.

Identity source values missing -> 401 without invoking the authorizer. Otherwise the decision
is cached per identity source values for the authorizer's TTL (0 = no cache); a simple
response `{"isAuthorized": bool, "context": {...}}` (EnableSimpleResponses) or an IAM policy
(`principalId`, `policyDocument`, `context`) decides; no -> 403; an exception, a malformed
response, more than 10 s or a throttled authorizer -> 500. The cache is per worker process, as
it is per API Gateway node in AWS; the edge never caches an error. The authorizer function runs
on its own instances, like every function (`Call` is how the edge invokes one).

Each invocation gets its own copy of what it may change: on AWS every event is JSON, so a
function that edits `requestContext.authorizer` (or an authorizer that edits its event) changes
nothing another request, the cached decision or the access line sees (`json_copy`).
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lucid_edge.instances import ClientGoneError
from lucid_edge.model import AuthorizerSpec
from lucid_edge.responses import FORBIDDEN, INTERNAL_ERROR, UNAUTHORIZED, HttpResponse

# "Timeout for Lambda authorizer response | 10000 ms" (http-api-quotas.html)
MAX_AUTHORIZER_SECONDS = 10.0
# Distinct identities whose decisions one worker process keeps: identities are client-chosen, so
# the cache is emptied rather than let grow past this.
MAX_CACHED_DECISIONS = 10_000
# How the edge invokes a function: (function id, event, integration timeout in s) -> result.
Call = Callable[[str, dict[str, Any], float], Awaitable[Any]]
_log = logging.getLogger("lucid_edge.authorizer")
_INVOKE = "execute-api:invoke"
_CONTAINERS = (dict, list, tuple)


def _names_invoke(action: str) -> bool:
    # IAM: "The prefix and the action name are case insensitive" and may hold * and ? wildcards
    # (reference_policies_elements_action.html): execute-api:invoke, execute-api:Inv* and * count.
    return fnmatch.fnmatchcase(_INVOKE, action.lower())


def json_copy(value: Any) -> Any:
    """A copy of a JSON-shaped value sharing nothing mutable with it (what serialising an event
    to JSON gives each Lambda invocation), at a fraction of `copy.deepcopy`'s cost."""
    if isinstance(value, dict):
        return {k: json_copy(v) if isinstance(v, _CONTAINERS) else v for k, v in value.items()}
    if isinstance(value, _CONTAINERS):
        return [json_copy(v) if isinstance(v, _CONTAINERS) else v for v in value]
    return value


def _is_flat(context: dict[str, Any] | None) -> bool:
    # No value a copy would have to copy in turn (json_copy's containers).
    return context is not None and not any(isinstance(v, _CONTAINERS) for v in context.values())


class MalformedResponseError(ValueError):
    """The authorizer answered something that is neither shape API Gateway accepts."""


@dataclass(frozen=True, slots=True)
class Decision:
    """A cached authorizer answer: a verdict (simple) or policy statements (IAM) + context."""

    allowed: bool | None
    statements: tuple[Mapping[str, Any], ...]
    context: dict[str, Any] | None

    # True when no value of the context is itself a container (the gateway's authorizer answers
    # ids, a role, a tier and an expiry): `dict` then copies it whole, sharing nothing mutable
    # with it, as `json_copy` would at ten times the cost. Decided once, when it is parsed.
    flat: bool = False

    def context_copy(self) -> dict[str, Any] | None:
        """A copy of the context for one request's event, sharing nothing mutable with the
        cached one (`json_copy`)."""
        context = self.context
        if context is None:
            return None
        copy: dict[str, Any] = dict(context) if self.flat else json_copy(context)
        return copy

    def allows(self, route_arn: str) -> bool:
        """True when this decision lets the request to `route_arn` through."""
        if self.allowed is not None:
            return self.allowed
        verdict = False
        for statement in self.statements:
            actions, resources = statement.get("Action", []), statement.get("Resource", [])
            actions = [actions] if isinstance(actions, str) else actions
            resources = [resources] if isinstance(resources, str) else resources
            if not any(_names_invoke(str(a)) for a in actions):
                continue
            if any(fnmatch.fnmatchcase(route_arn, str(r)) for r in resources):
                if statement.get("Effect") == "Deny":
                    return False
                verdict = verdict or statement.get("Effect") == "Allow"
        return verdict


def parse_response(response: Any, simple: bool) -> Decision:
    """Validate an authorizer's answer; `MalformedResponseError` when it is not valid."""
    if not isinstance(response, dict):
        raise MalformedResponseError("the response is not an object")
    context = response.get("context")
    if context is not None and not isinstance(context, dict):
        raise MalformedResponseError("context must be an object")
    if simple:
        verdict = response.get("isAuthorized")
        if not isinstance(verdict, bool):
            raise MalformedResponseError("isAuthorized must be a boolean")
        context = json_copy(context)
        return Decision(verdict, (), context, _is_flat(context))
    policy = response.get("policyDocument")
    statements = policy.get("Statement") if isinstance(policy, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not all(isinstance(s, dict) for s in statements):
        raise MalformedResponseError("policyDocument.Statement must be a list of statements")
    context = json_copy(context)
    return Decision(None, tuple(json_copy(statements)), context, _is_flat(context))


def identity_values(spec: AuthorizerSpec, event: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The identity source values of a request, or None when one is missing or empty.

    API Gateway reads `$request.header.<name>` from the request, before building the payload
    2.0 event that moves the `cookie` header into `cookies` (http-api-lambda-authorizer.html
    lists header identity sources without exception): `$request.header.Cookie` is the
    request's Cookie header, rebuilt here from the event's `cookies`."""
    headers: Mapping[str, str] = event["headers"]
    query: Mapping[str, str] = event.get("queryStringParameters") or {}
    values = [
        "; ".join(event.get("cookies") or ()) if name == "cookie" else headers.get(name, "")
        for name in spec.identity_headers
    ]
    values.extend(query.get(name, "") for name in spec.identity_query_strings)
    return None if any(not v for v in values) else tuple(values)


def authorizer_event(
    event: Mapping[str, Any], route_arn: str, identity: tuple[str, ...]
) -> dict[str, Any]:
    """The payload 2.0 REQUEST authorizer event for a function event (no body), sharing nothing
    mutable with it: what the authorizer changes in its event never reaches the function's."""
    auth_event: dict[str, Any] = {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": route_arn,
        "identitySource": list(identity),
    }
    for key in ("routeKey", "rawPath", "rawQueryString", "cookies", "headers",
                "queryStringParameters", "requestContext", "pathParameters"):  # fmt: skip
        if key in event:
            auth_event[key] = json_copy(event[key])
    return auth_event


# A request's event -> its identity source values, or None (401).
IdentityReader = Callable[[Mapping[str, Any]], tuple[str, ...] | None]


def identity_reader(spec: AuthorizerSpec) -> IdentityReader:
    """`identity_values` for `spec`, read with less work when its identity source is one header
    other than Cookie (`$request.header.Authorization`, the template's): that header's value,
    None when it is missing or empty, as `identity_values` gives."""
    if spec.identity_query_strings or len(spec.identity_headers) != 1:
        return functools.partial(identity_values, spec)
    (name,) = spec.identity_headers
    if name == "cookie":
        return functools.partial(identity_values, spec)

    def read(event: Mapping[str, Any]) -> tuple[str, ...] | None:
        value: str | None = event["headers"].get(name)
        return (value,) if value else None

    return read


# (authorizer name, "hit" | "miss" | "error"): what the edge's metrics count.
Observe = Callable[[str, str], None]


def _ignore(name: str, outcome: str) -> None:
    pass


class Authorizers:
    """Runs the template's Lambda authorizers with a per-identity decision cache."""

    def __init__(self, specs: Mapping[str, AuthorizerSpec], observe: Observe | None = None) -> None:
        self._specs = specs
        self._observe = observe or _ignore
        self._cache: dict[tuple[str, tuple[str, ...]], tuple[float, Decision]] = {}
        self._readers = {name: identity_reader(spec) for name, spec in specs.items()}

    def identity(self, name: str, event: Mapping[str, Any]) -> tuple[str, ...] | None:
        """The request's identity source values for authorizer `name` (None: answer 401)."""
        return self._readers[name](event)

    async def authorize(
        self,
        name: str,
        event: dict[str, Any],
        route_arn: str,
        call: Call,
        identity: tuple[str, ...] | None = None,
    ) -> tuple[HttpResponse | None, Mapping[str, Any] | None]:
        """(None, the decision's context) when the request may proceed (a copy of the context
        is put into `event`), else (the error, None). The context returned is the cached one:
        read it, never change it. `identity`: the request's values as `identity` read them
        from this event, when the caller has them already."""
        spec = self._specs[name]
        if identity is None:
            identity = self._readers[name](event)
        if identity is None:
            return UNAUTHORIZED, None
        key = (name, identity)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            decision = cached[1]
            self._observe(name, "hit")
        else:
            self._observe(name, "miss")
            try:
                auth_event = authorizer_event(event, route_arn, identity)
                response = await call(spec.function, auth_event, MAX_AUTHORIZER_SECONDS)
                decision = parse_response(response, spec.simple_responses)
            except ClientGoneError:
                raise  # nobody to answer
            except Exception:  # timeout, throttled, malformed answer or the authorizer's crash
                _log.exception("authorizer %s failed", name)
                self._observe(name, "error")
                return INTERNAL_ERROR, None
            if spec.ttl_seconds > 0:
                if len(self._cache) >= MAX_CACHED_DECISIONS:
                    self._cache.clear()
                self._cache[key] = (now + spec.ttl_seconds, decision)
        if not decision.allows(route_arn):
            return FORBIDDEN, None
        # The cached decision is shared by every request of this identity for the TTL.
        event["requestContext"]["authorizer"] = {"lambda": decision.context_copy()}
        return None, decision.context
