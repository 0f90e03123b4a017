"""`lucid call METHOD PATH`: a request as the signed-in user, printed like `curl` would.

    lucid call GET /users/me
    lucid call POST /sessions --data '{"name": "first"}' -H 'Idempotency-Key: 7f1c...'
    lucid call PATCH /sessions/ID -H 'If-Match: "3"' --data '{"status": "active"}' -i

The body is printed as the gateway sent it, followed by a newline; an empty body (204) prints
nothing. `-i` prints the status line and the headers first. The exit status is 0 for a 1xx-3xx
answer and 1 otherwise, so scripts can test it. When API Gateway refuses the token (403 from the
authorizer: it expired), the pair is refreshed once and the request sent again.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from lucid_edge.cli_config import CommandError, load_credentials, signed_in_gateway
from lucid_edge.cli_http import SignedIn, gateway

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token
# What a value may hold: httpx sends header values as ASCII, and a line break would end the field.
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The methods an HTTP API route names (besides ANY, which matches them all and is no request
# method): http-api-develop-routes.html. Another reaches no route on AWS, and the local edge's
# HTTP parser refuses it with a plain-text 400 ("Invalid HTTP request received.").
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def http_method(value: str) -> str:
    """`value` in upper case if it is one of METHODS; argparse's usage error (exit 2) if not."""
    method = value.upper()
    if method not in METHODS:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an HTTP method the gateway routes ({', '.join(METHODS)})"
        )
    return method


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `lucid call` (`--url` is added by the caller)."""
    parser.add_argument("method", type=http_method, help=f"HTTP method: {', '.join(METHODS)}")
    parser.add_argument("path", help="path below the gateway's URL, e.g. /users/me")
    parser.add_argument("--data", "-d", help="request body: JSON unless -H sets a Content-Type")
    parser.add_argument(
        "--header",
        "-H",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="request header, repeatable (If-Match, Idempotency-Key, ...)",
    )
    parser.add_argument(
        "--include", "-i", action="store_true", help="print the status line and headers too"
    )


def parse_headers(values: list[str]) -> dict[str, str]:
    """`-H` values as a dict; a malformed one, or Authorization, is a `CommandError`."""
    headers: dict[str, str] = {}
    for value in values:
        name, colon, text = value.partition(":")
        name = name.strip()
        if not colon or not _HEADER_NAME.match(name):
            raise CommandError(f"-H takes 'Name: value', not {value!r}")
        if name.lower() == "authorization":
            raise CommandError(
                "lucid call sends your sign-in's token itself: leave out -H Authorization"
            )
        text = text.strip()
        if not _HEADER_VALUE.fullmatch(text):
            # The name only: a value may be a credential (an API key, a cookie).
            raise CommandError(f"-H {name}: the value must be printable ASCII text on one line")
        headers[name] = text
    return headers


def _body(data: str | None, headers: dict[str, str]) -> bytes | None:
    if data is None:
        return None
    if any(name.lower() == "content-type" for name in headers):
        return data.encode()
    try:
        json.loads(data)
    except ValueError:
        raise CommandError(
            "--data is not valid JSON (set -H 'Content-Type: ...' to send other text)"
        ) from None
    headers["Content-Type"] = "application/json"
    return data.encode()


def call(args: argparse.Namespace) -> int:
    """Send METHOD PATH as the signed-in user and print the answer."""
    credentials = load_credentials()
    if credentials is None:
        raise CommandError("not signed in: run `lucid login` first")
    headers = parse_headers(args.header)
    content = _body(args.data, headers)
    if _CONTROL.search(args.path):
        raise CommandError(
            f"the path {args.path!r} holds a control character: percent-encode it (%0A for a "
            "line break)"
        )
    path = args.path if args.path.startswith("/") else f"/{args.path}"
    target = signed_in_gateway(args.url, credentials.url)
    with gateway(target, insecure=args.insecure) as client:
        response = SignedIn(client, credentials).request(
            args.method, path, headers=headers, content=content
        )
    if args.include:
        print(f"HTTP/{response.http_version.removeprefix('HTTP/')} "
              f"{response.status_code} {response.reason_phrase}")  # fmt: skip
        for name, value in response.headers.multi_items():
            print(f"{name}: {value}")
        if response.content:
            print()
    if response.content:
        text = response.text
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0 if response.status_code < 400 else 1
