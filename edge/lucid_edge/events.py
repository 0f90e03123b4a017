"""API Gateway HTTP API payload 2.0 events and the Lambda context object.

Shape as AWS sends it: `cookies`, `queryStringParameters`, `pathParameters` and `body` are
absent when empty; `stageVariables` is absent (the edge refuses templates that set them);
the `cookie` header moves into `cookies`; duplicate headers and query parameters are joined
with commas; bodies are text only for `text/*`, `application/json`, `application/xml` and
`application/javascript` and base64 for everything else (including no content type and
form-urlencoded), as measured against AWS.
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from lucid_edge.intrinsics import PSEUDO_PARAMETERS
from lucid_edge.model import DEFAULT_STAGE

ACCOUNT_ID = PSEUDO_PARAMETERS["AWS::AccountId"]
REGION = PSEUDO_PARAMETERS["AWS::Region"]
_TEXT_TYPES = frozenset({"application/json", "application/xml", "application/javascript"})
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def is_text_content_type(content_type: str | None) -> bool:
    """True when API Gateway passes a body of this content type as text (not base64)."""
    if not content_type:
        return False
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime.startswith("text/") or mime in _TEXT_TYPES


def new_request_id() -> str:
    """An id shaped like API Gateway's (16 base64 characters, e.g. `JKJaXmPLvHcESHA=`)."""
    return base64.b64encode(os.urandom(11)).decode()


class _Clock:
    """`time` in API Gateway's format, formatted once per second rather than per request."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> tuple[str, int]:
        epoch = time.time()
        second = int(epoch)
        if second != self._second:
            t = time.gmtime(second)
            month = _MONTHS[t.tm_mon - 1]
            self._text = (
                f"{t.tm_mday:02d}/{month}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:"
                f"{t.tm_sec:02d} +0000"
            )
            self._second = second
        return self._text, int(epoch * 1000)


def header_text(value: bytes) -> str:
    """A header value as the event's text: UTF-8 when the bytes are UTF-8, else one character
    per byte (obs-text, RFC 9110 section 5.5).

    A Lambda event is UTF-8 JSON, so API Gateway hands a client's UTF-8 value (`naïve`) over as
    those characters; read as Latin-1 it became `naÃ¯ve`, which Mangum re-encodes to bytes the
    client never sent. What AWS does with bytes that are not UTF-8 is not documented
    (notes/aws-facts.md, rv-edge2): the edge keeps each byte as its Latin-1 character, as the
    proxy does with such backend values (lucid.proxy)."""
    if value.isascii():
        return value.decode("ascii")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> tuple[dict[str, str], list[str]]:
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in raw:
        name, value = raw_name.decode("latin-1").lower(), header_text(raw_value)
        if name == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
        elif name in headers:
            headers[name] = f"{headers[name]},{value}"
        else:
            headers[name] = value
    return headers, cookies


def _query(raw_query: str) -> dict[str, str]:
    # `+` is a space here, as `%20` is, and `%2B` a plus, as in `sam local`: aws-sam-cli 1.170.0
    # builds the field from werkzeug's `request.args` (samcli/local/apigw/event_constructor.py
    # `_query_string_params_v_2_0`), which werkzeug 3.1 parses with this same `parse_qsl`
    # (werkzeug/sansio/request.py `args`; `q=a+b%20c%2Bd` gives `a b c+d`, checked). A REST API
    # (payload 1.0) decodes `+` the same way (an event in aws/aws-cdk#19827); for HTTP APIs
    # AWS's documentation says nothing of `+`, so it is listed in README "Differences from AWS".
    # rawQueryString is the query as sent either way, which is what Mangum gives the functions
    # (mangum/handlers/api_gateway.py reads `rawQueryString` for payload 2.0).
    params: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        params[name] = f"{params[name]},{value}" if name in params else value
    return params


class EventBuilder:
    """Builds payload 2.0 events for one API; the static parts are computed once."""

    def __init__(self, api_id: str, stage: str) -> None:
        self.api_id = api_id
        self.stage = stage
        self._clock = _Clock()
        self._domains: dict[str, tuple[str, str]] = {}

    def _domain(self, host: str) -> tuple[str, str]:
        domain = self._domains.get(host)
        if domain is None:
            if len(self._domains) > 256:  # a client can send any Host: keep the cache bounded
                self._domains.clear()
            domain = self._domains[host] = (host, host.split(".", 1)[0])
        return domain

    def route_arn(self, method: str, path: str) -> str:
        """The execute-api ARN of a request (what IAM policies of authorizers name): the stage
        is its own part, so a named stage's prefix leaves the path (`.../dev/GET/health`)."""
        prefix = "/" + self.stage
        if self.stage != DEFAULT_STAGE and (path == prefix or path.startswith(prefix + "/")):
            path = path[len(prefix) :] or "/"
        return (
            f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{self.api_id}/{self.stage}/{method}{path}"
        )

    def build(
        self,
        *,
        method: str,
        path: str,
        raw_query: str,
        raw_headers: Iterable[tuple[bytes, bytes]],
        http_version: str,
        source_ip: str,
        server_port: str,
        route_key: str,
        path_parameters: Mapping[str, str] | None,
        body: bytes,
        request_id: str,
    ) -> dict[str, Any]:
        """The event the function of the matched route receives."""
        headers, cookies = _headers(raw_headers)
        forwarded = headers.get("x-forwarded-for")
        headers["x-forwarded-for"] = f"{forwarded}, {source_ip}" if forwarded else source_ip
        headers["x-forwarded-port"] = server_port
        headers["x-forwarded-proto"] = "http"
        if "x-amzn-trace-id" not in headers:
            headers["x-amzn-trace-id"] = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
        domain_name, domain_prefix = self._domain(headers.get("host", "localhost"))
        time_text, time_epoch = self._clock.now()
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": path,
            "rawQueryString": raw_query,
        }
        if cookies:
            event["cookies"] = cookies
        event["headers"] = headers
        # Absent when the query holds no parameter, as when there is none: a query of separators
        # only (`?&`, `?&&`) gave `{}`. aws-sam-cli 1.170.0 builds the field from werkzeug's
        # `request.args` (samcli/local/apigw/event_constructor.py `_query_string_params_v_2_0`)
        # and leaves it out when that is empty (samcli/local/events/api_event.py
        # `ApiGatewayV2httpEvent.to_dict`: `if self.query_string_params:`), as AWS leaves an
        # empty field out (module docstring); AWS's documentation says nothing of such a query.
        # `?=` is one parameter named "" for both (parse_qsl and werkzeug keep blank names and
        # values); AWS does not say either (README, "Differences from AWS").
        if raw_query and (parameters := _query(raw_query)):
            event["queryStringParameters"] = parameters
        event["requestContext"] = {
            "accountId": ACCOUNT_ID,
            "apiId": self.api_id,
            "domainName": domain_name,
            "domainPrefix": domain_prefix,
            "http": {
                "method": method,
                "path": path,
                "protocol": f"HTTP/{http_version}",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": self.stage,
            "time": time_text,
            "timeEpoch": time_epoch,
        }
        if path_parameters:
            event["pathParameters"] = dict(path_parameters)
        attach_body(event, body)
        return event


def attach_body(event: dict[str, Any], body: bytes | bytearray) -> None:
    """Put a request body into an event built without one (text or base64, as AWS does)."""
    if body:
        if is_text_content_type(event["headers"].get("content-type")):
            try:
                event["body"] = body.decode("utf-8")
                event["isBase64Encoded"] = False
                return
            except UnicodeDecodeError:
                pass  # declared text but is not UTF-8: deliver the bytes intact
        event["body"] = base64.b64encode(body).decode("ascii")
        event["isBase64Encoded"] = True
        return
    event["isBase64Encoded"] = False


class CognitoIdentity:
    """`context.identity`: Lambda sets both fields only for the AWS Mobile SDK (None here)."""

    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self) -> None:
        self.cognito_identity_id: str | None = None
        self.cognito_identity_pool_id: str | None = None


class LambdaContext:
    """The `context` object a Python Lambda handler receives, as the Python runtime builds it
    (aws-lambda-python-runtime-interface-client, awslambdaric/lambda_context.py):
    `memory_limit_in_mb` is the string of AWS_LAMBDA_FUNCTION_MEMORY_SIZE ("512", not 512),
    `identity` an object whose fields are None, `client_context` and `tenant_id` None for an API
    Gateway invocation."""

    __slots__ = ("_deadline", "aws_request_id", "function_name", "identity", "memory_limit_in_mb")
    function_version = "$LATEST"
    client_context = None
    tenant_id = None

    def __init__(self, function_name: str, memory_mb: int, timeout: float) -> None:
        self.function_name = function_name
        self.memory_limit_in_mb = str(memory_mb)
        self.aws_request_id = str(uuid.uuid4())
        self.identity = CognitoIdentity()
        self._deadline = time.monotonic() + timeout

    @property
    def invoked_function_arn(self) -> str:
        """The ARN the function was invoked by."""
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        """The function's CloudWatch log group."""
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        """A log stream name shaped like Lambda's."""
        return f"{time.strftime('%Y/%m/%d')}/[$LATEST]local"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's Timeout."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))
