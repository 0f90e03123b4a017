"""The FastAPI application factory every function uses, and the router routes are declared on."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from mangum import Mangum
from starlette.routing import BaseRoute

from lucid import __version__
from lucid.config import get_settings
from lucid.lambda_result import TEXT_MIME_TYPES
from lucid.observability import instrument
from lucid.web.flat_dependencies import FunctionRoute
from lucid.web.middleware import RequestContextMiddleware
from lucid.web.openapi import Responses, install_openapi, operation_id, problems
from lucid.web.problems import install_problem_handlers
from lucid.web.security_headers import SecurityHeaders
from lucid.web.stage import StagePathMiddleware


def function_responses(*, rate_limited: bool) -> Responses:
    """What any route of a function may answer besides its own declared errors (a 503 has
    Retry-After when a secret AWS would not give, or RATE_LIMIT_FAIL_MODE=closed)."""
    return problems(500, *((429, 503) if rate_limited else ()), retry_after={503: False})


class _ServingApp:
    """The app serving a `FunctionRouter`'s routes, as FastAPI asks it at each request for the
    dependency overrides (`app.dependency_overrides`, which tests set)."""

    def __init__(self) -> None:
        self.app: FastAPI | None = None

    @property
    def dependency_overrides(self) -> dict[Any, Any]:
        return {} if self.app is None else self.app.dependency_overrides


class FunctionRouter(APIRouter):
    """The router a function declares its routes on, built once.

    FastAPI builds a route (its dependency graph, its response model's validator) when it is
    declared on an `APIRouter`, and an app that includes the router builds every route of it
    again, as the app serves it, at its first request (FastAPI 0.165, `_IncludedRouter`): 3-4 ms
    of CPU for a function's six routes at each cold start (`make bench coldstart`). So a
    function's router is declared with what including it would add (the function's error
    responses, our operation ids, the app's dependency overrides) and `create_app` serves its
    routes as they were built. `responses` are the router's own, as `APIRouter(responses=...)`;
    `rate_limited` must be the app's.
    """

    def __init__(self, *, responses: Responses | None = None, rate_limited: bool = True) -> None:
        self.rate_limited = rate_limited
        self.serving = _ServingApp()
        super().__init__(
            responses={**function_responses(rate_limited=rate_limited), **(responses or {})},
            generate_unique_id_function=operation_id,
            dependency_overrides_provider=self.serving,
            route_class=FunctionRoute,
        )


def create_app(function: str, *routers: APIRouter, rate_limited: bool = True) -> FastAPI:
    """A FastAPI app for `function` with our error handling, middleware and `routers`.

    FastAPI's own docs routes are off: API Gateway only routes what the template declares, and
    the gateway's one document (`lucid openapi`) is built from each app's `app.openapi()` and
    the template; the meta function serves it. `rate_limited=False` exempts a function from the
    tiered limits (the meta routes, which load balancers and uptime checks poll); the stage
    throttle still applies to it.
    """
    settings = get_settings()
    built: list[BaseRoute] = []
    for router in routers:
        if isinstance(router, FunctionRouter):
            if router.rate_limited != rate_limited:
                raise ValueError(f"a router with rate_limited={router.rate_limited} in {function}")
            built.extend(router.routes)
    app = FastAPI(
        title=f"{settings.SERVICE_NAME}-{function}",
        version=__version__,
        debug=False,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        responses=function_responses(rate_limited=rate_limited),
        generate_unique_id_function=operation_id,
        # A FunctionRouter's routes are served as they were built; any other router is included.
        routes=built,
    )
    install_openapi(app, rate_limited=rate_limited)
    install_problem_handlers(app)
    for router in routers:
        if isinstance(router, FunctionRouter):
            router.serving.app = app
        else:
            app.include_router(router)
    if rate_limited:
        # Imported here: the limiter imports the Redis client, which a function without limits
        # (meta) does not load at cold start (lucid.web.readiness).
        from lucid.web.ratelimit import RateLimitMiddleware

        app.add_middleware(RateLimitMiddleware)
    # Routes match the path below a named stage's `/{stage}` prefix (lucid/web/stage.py).
    app.add_middleware(StagePathMiddleware)
    # Added last, so outermost: 429s carry a request id and get an access-log line too.
    app.add_middleware(RequestContextMiddleware)
    return app


def lambda_handler(app: FastAPI) -> Mangum:
    """The Lambda entry point for `app`: Mangum without lifespan (it would run per invocation),
    instrumented (`lucid.observability`: log keys and metrics per invocation), every response
    with our security headers (`lucid.web.security_headers`)."""
    return instrument(Mangum(SecurityHeaders(app), lifespan="off", text_mime_types=TEXT_MIME_TYPES))
