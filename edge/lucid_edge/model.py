"""The frozen model of what the local edge serves, built from the SAM template."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_ROUTE = "$default"
# The stage served at the root of the API's URL (a route key and a stage name alike).
DEFAULT_STAGE = "$default"
# "Maximum integration timeout | 30 seconds" (HTTP API quotas, not increasable):
# https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-quotas.html
MAX_INTEGRATION_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Throttle:
    """A token bucket: `burst` tokens at most, refilled at `rate` tokens per second."""

    burst: int
    rate: float


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """One `AWS::Serverless::Function` after Globals are applied."""

    logical_id: str
    code_uri: Path
    handler: str
    timeout: float
    memory_size: int
    environment: Mapping[str, str] = field(default_factory=dict)
    # ReservedConcurrentExecutions: at most this many invocations at once across the edge
    # (None: the function shares the local account-wide cap of unreserved concurrency).
    reserved_concurrency: int | None = None


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """One HttpApi event: method (or ANY) + path (or `$default`) -> function.

    `timeout` is the integration timeout (TimeoutInMillis, else 30 s), counted from the moment
    the edge invokes; the function's own Timeout is its FunctionSpec's.
    """

    method: str
    path: str
    function: str
    authorizer: str | None
    throttle: Throttle | None
    timeout: float = MAX_INTEGRATION_TIMEOUT_SECONDS

    @property
    def route_key(self) -> str:
        """The API Gateway route key, e.g. `GET /users/{id}` or `$default`."""
        return DEFAULT_ROUTE if self.path == DEFAULT_ROUTE else f"{self.method} {self.path}"


@dataclass(frozen=True, slots=True)
class CorsSpec:
    """An HttpApi CorsConfiguration."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    allow_credentials: bool = False
    max_age: int | None = None


@dataclass(frozen=True, slots=True)
class AuthorizerSpec:
    """A Lambda REQUEST authorizer (payload format 2.0)."""

    name: str
    function: str
    identity_headers: tuple[str, ...]
    identity_query_strings: tuple[str, ...]
    ttl_seconds: int
    simple_responses: bool


@dataclass(frozen=True, slots=True)
class ApiSpec:
    """The one HttpApi the edge serves."""

    logical_id: str
    stage: str
    routes: tuple[RouteSpec, ...]
    cors: CorsSpec | None
    default_throttle: Throttle | None
    authorizers: Mapping[str, AuthorizerSpec]
    # Where a custom domain is declared (deploy-only: the edge serves its own address).
    domain: str | None = None
    # AccessLogSettings.Format: the `$context` template of the stage's access lines.
    access_log_format: str | None = None


@dataclass(frozen=True, slots=True)
class Template:
    """Everything the edge needs from the template, validated."""

    path: Path
    functions: Mapping[str, FunctionSpec]
    api: ApiSpec
    environment: Mapping[str, str]
    parameters: Mapping[str, Any]
    # What only a deployed stack has, each named once (`lucid serve` prints it at start-up).
    deploy_only: tuple[str, ...] = ()
