"""The FastAPI application factory every function uses."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from mangum import Mangum

from lucid import __version__
from lucid.config import get_settings
from lucid.lambda_result import TEXT_MIME_TYPES
from lucid.observability import instrument
from lucid.web.middleware import RequestContextMiddleware
from lucid.web.openapi import install_openapi, operation_id, problems
from lucid.web.problems import install_problem_handlers
from lucid.web.security_headers import SecurityHeaders
from lucid.web.stage import StagePathMiddleware


def create_app(function: str, *routers: APIRouter, rate_limited: bool = True) -> FastAPI:
    """A FastAPI app for `function` with our error handling, middleware and `routers`.

    FastAPI's own docs routes are off: API Gateway only routes what the template declares, and
    the gateway's one document (`lucid openapi`) is built from each app's `app.openapi()` and
    the template; the meta function serves it. `rate_limited=False` exempts a function from the
    tiered limits (the meta routes, which load balancers and uptime checks poll); the stage
    throttle still applies to it.
    """
    settings = get_settings()
    app = FastAPI(
        title=f"{settings.SERVICE_NAME}-{function}",
        version=__version__,
        debug=False,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # What any route of this function may answer besides its own declared errors.
        # (a 503 has Retry-After when a secret AWS would not give, or RATE_LIMIT_FAIL_MODE=closed)
        responses=problems(500, *((429, 503) if rate_limited else ()), retry_after={503: False}),
        generate_unique_id_function=operation_id,
    )
    install_openapi(app, rate_limited=rate_limited)
    install_problem_handlers(app)
    for router in routers:
        app.include_router(router)
    if rate_limited:
        # Imported here: the limiter imports redis-py, which a function without limits (meta)
        # does not load at cold start (lucid.web.readiness).
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
