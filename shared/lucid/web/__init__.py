"""HTTP plumbing every FastAPI function shares; the only package of the layer that knows FastAPI.

- app: `create_app(function, *routers)` and `lambda_handler(app)` (Mangum); `FunctionRouter`, the
  router a function's routes are declared on (built once)
- middleware: request id, access log; the request's event read once
- deps: the `Annotated` aliases routes declare (`Caller`, `SourceIp`, `RedisDep`, ...)
- database: `DatabaseDep` (apart, so that the proxy function never imports pymongo)
- repositories: `SessionsDep`; user_repository: `UsersDep` (apart, so that meta and proxy import
  no repository and sessions not the users one)
- problems: every error translated to RFC 9457 problem+json, registered in one place
- ratelimit: the tiered rate limit in front of every route (decisions: `lucid.ratelimit`)
- idempotency: `Idempotency-Key` for POSTs, replayed from Redis
- proxy: `ProxyDep` (apart, so that only the proxy function imports httpcore and the breakers)
- openapi: what a function's OpenAPI document says beyond a route's signature (problem+json
  errors, `problems(...)` for `responses=`, the headers every answer carries, operation ids)
"""
