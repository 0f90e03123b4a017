"""The HttpApi part of the template: routes, CORS, throttling and Lambda authorizers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lucid_edge.intrinsics import Resolver, TemplateError
from lucid_edge.model import (
    DEFAULT_ROUTE,
    DEFAULT_STAGE,
    MAX_INTEGRATION_TIMEOUT_SECONDS,
    ApiSpec,
    AuthorizerSpec,
    CorsSpec,
    FunctionSpec,
    RouteSpec,
    Throttle,
)

IMPLICIT_API = "ServerlessHttpApi"
# API Gateway's account-level defaults when a route sets only one of the two limits.
_ACCOUNT_BURST, _ACCOUNT_RATE = 5000, 10000.0
_DEFAULT_TTL_SECONDS = 300
_MAX_TTL_SECONDS = 3600

_API_PROPERTIES = frozenset(
    {"StageName", "CorsConfiguration", "DefaultRouteSettings", "RouteSettings", "Auth",
     "AccessLogSettings", "Description", "Tags", "FailOnWarnings", "DisableExecuteApiEndpoint",
     "PropagateTags", "Name", "Domain"}
)  # fmt: skip
_EVENT_PROPERTIES = frozenset(
    {"ApiId", "Method", "Path", "Auth", "PayloadFormatVersion", "TimeoutInMillis", "RouteSettings"}
)
_ROUTE_SETTINGS = frozenset(
    {"ThrottlingBurstLimit", "ThrottlingRateLimit", "DetailedMetricsEnabled", "LoggingLevel",
     "DataTraceEnabled"}
)  # fmt: skip
_CORS_KEYS = frozenset(
    {"AllowOrigins", "AllowMethods", "AllowHeaders", "ExposeHeaders", "AllowCredentials", "MaxAge"}
)
_AUTHORIZER_KEYS = frozenset(
    {"FunctionArn", "AuthorizerPayloadFormatVersion", "EnableSimpleResponses",
     "EnableFunctionDefaultPermissions", "FunctionInvokeRole", "Identity"}
)  # fmt: skip
_IDENTITY_KEYS = frozenset({"Headers", "QueryStrings", "ReauthorizeEvery"})
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"})
_STAGE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}\Z")
_PATH_SEGMENT = re.compile(r"^(?:[^{}]*|\{[A-Za-z0-9_.-]+\}|\{[A-Za-z0-9_.-]+\+\})$")


def _check_keys(value: Any, allowed: frozenset[str], where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TemplateError(f"{where}: expected a mapping")
    for key in value:
        if key not in allowed:
            raise TemplateError(f"{where}.{key}: property is not supported by the local edge")
    return value


def _throttle(settings: Any, where: str) -> Throttle | None:
    settings = _check_keys(settings, _ROUTE_SETTINGS, where)
    burst, rate = settings.get("ThrottlingBurstLimit"), settings.get("ThrottlingRateLimit")
    if burst is None and rate is None:
        return None
    return Throttle(
        burst=int(burst if burst is not None else _ACCOUNT_BURST),
        rate=float(rate if rate is not None else _ACCOUNT_RATE),
    )


def _words(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else str(value).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def _cors(value: Any, where: str) -> CorsSpec | None:
    if value is True:
        return CorsSpec(allow_origins=("*",))
    if value is None or value is False:
        return None
    value = _check_keys(value, _CORS_KEYS, where)
    cors = CorsSpec(
        allow_origins=_words(value.get("AllowOrigins")),
        allow_methods=tuple(m.upper() for m in _words(value.get("AllowMethods"))),
        allow_headers=tuple(h.lower() for h in _words(value.get("AllowHeaders"))),
        expose_headers=tuple(h.lower() for h in _words(value.get("ExposeHeaders"))),
        allow_credentials=str(value.get("AllowCredentials", False)).lower() == "true",
        max_age=int(value["MaxAge"]) if value.get("MaxAge") is not None else None,
    )
    if cors.allow_credentials and "*" in cors.allow_origins:
        raise TemplateError(f"{where}.AllowCredentials: true cannot be used with origin '*'")
    return cors


def _is_intrinsic(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and len(value) == 1
        and any(key == "Ref" or key.startswith("Fn::") for key in value)
    )


def _check_sam_cors(raw: Any, where: str) -> None:
    """Refuse the CorsConfiguration forms the SAM transform does not deploy as written.

    aws-sam-translator (OpenApiEditor.add_cors; notes/aws-facts.md section 6): an intrinsic as
    AllowOrigins makes SAM keep it alone and drop every other key; a !Ref to a
    CommaDelimitedList there becomes one comma-joined string; a non-literal AllowCredentials is
    dropped. An intrinsic around the whole map (`!If [c, {...}, {...}]`) passes through intact.
    """
    if not isinstance(raw, dict) or _is_intrinsic(raw):
        return
    if _is_intrinsic(raw.get("AllowOrigins")):
        raise TemplateError(
            f"{where}.AllowOrigins: SAM deploys an intrinsic here without the other CORS keys "
            f"(a CommaDelimitedList !Ref as one string): list the origins, or put the whole "
            f"CorsConfiguration under one !If"
        )
    credentials = raw.get("AllowCredentials")
    if credentials is not None and not isinstance(credentials, bool):
        raise TemplateError(
            f"{where}.AllowCredentials: SAM drops a value that is not a literal true/false: "
            f"put the whole CorsConfiguration under one !If"
        )


def _authorizer(
    name: str, raw: Any, resolver: Resolver, functions: Mapping[str, FunctionSpec], where: str
) -> AuthorizerSpec:
    if isinstance(raw, dict) and ("JwtConfiguration" in raw or "IdentitySource" in raw):
        raise TemplateError(f"{where}: JWT authorizers are not supported by the local edge")
    raw = _check_keys(raw, _AUTHORIZER_KEYS, where)
    arn = raw.get("FunctionArn")
    target = arn.get("Fn::GetAtt") if isinstance(arn, dict) else None
    if not (isinstance(target, list) and target[1:] == ["Arn"] and target[0] in functions):
        raise TemplateError(f"{where}.FunctionArn: must be !GetAtt <Function>.Arn of this template")
    props = resolver.resolve({k: v for k, v in raw.items() if k != "FunctionArn"}, where)
    version = str(props.get("AuthorizerPayloadFormatVersion", ""))
    if version != "2.0":
        raise TemplateError(f"{where}.AuthorizerPayloadFormatVersion: only '2.0' is supported")
    identity = _check_keys(props.get("Identity") or {}, _IDENTITY_KEYS, f"{where}.Identity")
    headers = tuple(h.lower() for h in _words(identity.get("Headers")))
    query_strings = _words(identity.get("QueryStrings"))
    ttl = identity.get("ReauthorizeEvery", _DEFAULT_TTL_SECONDS)
    # AuthorizerResultTtlInSeconds: "The maximum value is 3600"; 300 when unset; the identity
    # source "is required when authorization caching is enabled" (apigatewayv2 API reference,
    # Authorizer). SAM writes no identitySource without Headers/QueryStrings. Served anyway, one
    # cached decision (and its context) would answer every caller.
    if isinstance(ttl, bool) or not str(ttl).isdigit() or int(ttl) > _MAX_TTL_SECONDS:
        raise TemplateError(f"{where}.Identity.ReauthorizeEvery: {ttl!r} is not 0-3600")
    if int(ttl) > 0 and not headers and not query_strings:
        raise TemplateError(
            f"{where}.Identity: caching (ReauthorizeEvery, 300 when unset) needs an identity "
            f"source: name Headers or QueryStrings, or set ReauthorizeEvery: 0"
        )
    role = props.get("FunctionInvokeRole")
    granted = str(props.get("EnableFunctionDefaultPermissions", False)).lower() == "true"
    if not granted and (role is None or role == "NONE"):
        # SAM grants API Gateway lambda:InvokeFunction on an HttpApi authorizer only with
        # EnableFunctionDefaultPermissions: true ("Http Api shouldn't create the permissions by
        # default", HttpApiGenerator._construct_authorizer_lambda_permission), and "if API Gateway
        # doesn't have permission to invoke your function, clients receive a 500 Internal Server
        # Error" (http-api-lambda-authorizer.html): every route it guards would answer 500.
        raise TemplateError(
            f"{where}.EnableFunctionDefaultPermissions: API Gateway may not invoke "
            f"{target[0]} without it (or a FunctionInvokeRole): on AWS every route this "
            f"authorizer guards answers 500"
        )
    return AuthorizerSpec(
        name=name,
        function=str(target[0]),
        identity_headers=headers,
        identity_query_strings=query_strings,
        ttl_seconds=int(ttl),
        simple_responses=str(props.get("EnableSimpleResponses", False)).lower() == "true",
    )


def _route_path(method: Any, path: Any, where: str) -> tuple[str, str]:
    if method is None and path is None:
        return "ANY", DEFAULT_ROUTE
    method, path = str(method or "").upper(), str(path or "")
    if method not in _METHODS:
        raise TemplateError(f"{where}.Method: {method!r} is not an HTTP API method")
    if path == DEFAULT_ROUTE:
        return method, path
    segments = path.split("/")[1:]
    if not path.startswith("/") or not all(_PATH_SEGMENT.match(s) for s in segments):
        raise TemplateError(f"{where}.Path: {path!r} is not a valid HTTP API path")
    if path != "/" and not all(segments):
        # API Gateway creates no such route: SAM deploys the integration without it
        # (aws/serverless-application-model#1949) and CreateRoute refuses a path ending in "/"
        # (storacha/w3infra#166), so AWS would answer 404 where the edge served it.
        raise TemplateError(f"{where}.Path: {path!r} has an empty segment or a trailing '/'")
    if any(s.endswith("+}") for s in segments[:-1]):
        raise TemplateError(f"{where}.Path: a greedy {{name+}} must be the last segment")
    return method, path


def _integration_timeout(millis: Any, where: str) -> float:
    # "Custom timeout between 50 and 30,000 milliseconds for HTTP APIs. The default timeout is
    # ... 30 seconds for HTTP APIs." (AWS::ApiGatewayV2::Integration TimeoutInMillis)
    if millis is None:
        return MAX_INTEGRATION_TIMEOUT_SECONDS
    if isinstance(millis, bool) or not str(millis).isdigit() or not 50 <= int(millis) <= 30_000:
        raise TemplateError(f"{where}.TimeoutInMillis: {millis!r} is not 50-30000")
    return int(millis) / 1000


def _routes(
    events: Mapping[str, Mapping[str, Any]],
    functions: Mapping[str, FunctionSpec],
    resolver: Resolver,
    api_id: str,
    route_settings: Mapping[str, Any],
    default_authorizer: str | None,
) -> list[RouteSpec]:
    routes: dict[str, RouteSpec] = {}
    for function_id, function_events in events.items():
        for event_id, event in function_events.items():
            where = f"Resources.{function_id}.Properties.Events.{event_id}"
            if not isinstance(event, dict) or event.get("Type") != "HttpApi":
                kind = event.get("Type") if isinstance(event, dict) else event
                raise TemplateError(f"{where}.Type: {kind!r} events are not supported locally")
            props = _check_keys(
                resolver.resolve(event.get("Properties") or {}, where),
                _EVENT_PROPERTIES,
                f"{where}.Properties",
            )
            if props.get("ApiId", IMPLICIT_API) != api_id:
                raise TemplateError(f"{where}.Properties.ApiId: the local edge serves one HttpApi")
            if str(props.get("PayloadFormatVersion", "2.0")) != "2.0":
                raise TemplateError(f"{where}.Properties.PayloadFormatVersion: only '2.0'")
            auth = _check_keys(props.get("Auth") or {}, frozenset({"Authorizer"}), f"{where}.Auth")
            authorizer = auth.get("Authorizer", default_authorizer)
            method, path = _route_path(props.get("Method"), props.get("Path"), where)
            timeout = _integration_timeout(props.get("TimeoutInMillis"), f"{where}.Properties")
            route = RouteSpec(
                method=method,
                path=path,
                function=function_id,
                authorizer=None if authorizer in (None, "NONE") else str(authorizer),
                throttle=None,
                timeout=timeout,
            )
            settings = props.get("RouteSettings", route_settings.get(route.route_key))
            throttle = _throttle(settings or {}, f"{where}.Properties.RouteSettings")
            if route.route_key in routes:
                raise TemplateError(f"{where}: route {route.route_key!r} is declared twice")
            routes[route.route_key] = RouteSpec(
                method, path, function_id, route.authorizer, throttle, timeout
            )
    return list(routes.values())


def _stage_name(value: Any, where: str) -> str:
    # AWS::ApiGatewayV2::Stage StageName: "$default" or letters, digits, "_" and "-" (<= 128).
    name = str(value)
    if name != DEFAULT_STAGE and not _STAGE_NAME.match(name):
        raise TemplateError(f"{where}: {name!r} is not an HTTP API stage name")
    return name


def build_api(
    apis: Mapping[str, Mapping[str, Any]],
    events: Mapping[str, Mapping[str, Any]],
    functions: Mapping[str, FunctionSpec],
    resolver: Resolver,
) -> ApiSpec:
    """The ApiSpec of the template's one HttpApi (or SAM's implicit one)."""
    if not apis:
        routes = _routes(events, functions, resolver, IMPLICIT_API, {}, None)
        return ApiSpec(IMPLICIT_API, DEFAULT_STAGE, tuple(routes), None, None, {})
    ((api_id, raw_props),) = apis.items()
    where = f"Resources.{api_id}.Properties"
    for key in ("DefinitionBody", "DefinitionUri", "StageVariables"):
        if key in raw_props:
            raise TemplateError(f"{where}.{key}: property is not supported by the local edge")
    raw_props = _check_keys(dict(raw_props), _API_PROPERTIES, where)
    _check_sam_cors(raw_props.get("CorsConfiguration"), f"{where}.CorsConfiguration")
    raw_auth = dict(raw_props.pop("Auth", None) or {})
    raw_authorizers = raw_auth.pop("Authorizers", None) or {}
    props = resolver.resolve(raw_props, where)
    auth = _check_keys(
        resolver.resolve(raw_auth, f"{where}.Auth"),
        frozenset({"DefaultAuthorizer"}),
        f"{where}.Auth",
    )
    authorizers = {
        name: _authorizer(name, raw, resolver, functions, f"{where}.Auth.Authorizers.{name}")
        for name, raw in raw_authorizers.items()
    }
    routes = _routes(
        events,
        functions,
        resolver,
        api_id,
        props.get("RouteSettings") or {},
        auth.get("DefaultAuthorizer"),
    )
    for route in routes:
        if route.authorizer is not None and route.authorizer not in authorizers:
            raise TemplateError(
                f"Resources.{route.function}: route {route.route_key!r} uses authorizer "
                f"{route.authorizer!r}, which {where}.Auth.Authorizers does not declare"
            )
    return ApiSpec(
        logical_id=api_id,
        stage=_stage_name(props.get("StageName", DEFAULT_STAGE), f"{where}.StageName"),
        routes=tuple(routes),
        cors=_cors(props.get("CorsConfiguration"), f"{where}.CorsConfiguration"),
        default_throttle=_throttle(
            props.get("DefaultRouteSettings") or {}, f"{where}.DefaultRouteSettings"
        ),
        authorizers=authorizers,
        domain=f"{where}.Domain" if props.get("Domain") is not None else None,
        access_log_format=_access_log_format(props.get("AccessLogSettings"), where),
    )


def _access_log_format(settings: Any, where: str) -> str | None:
    # DestinationArn names a CloudWatch log group, which exists only in AWS: the edge writes
    # the lines to its standard output in the stage's Format instead.
    if settings is None:
        return None
    if not isinstance(settings, Mapping):
        raise TemplateError(f"{where}.AccessLogSettings: must be a mapping")
    fmt = settings.get("Format")
    if fmt is not None and not isinstance(fmt, str):
        raise TemplateError(f"{where}.AccessLogSettings.Format: must be a string")
    return fmt
