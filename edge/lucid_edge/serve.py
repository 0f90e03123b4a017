"""`lucid serve`: run the local edge on 127.0.0.1 with several worker processes.

The parent validates the template (failing loudly), starts the embedded Redis when REDIS_URI
is unset, shares one JWT secret with all workers on the local stage, creates the shared
throttle buckets, prints the URL and route table, then hands one listening socket to uvicorn's
workers. Everything it started stops with them (SIGINT/SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import uvicorn

from lucid.config import LOCAL_STAGE, ephemeral_secret
from lucid_edge import server
from lucid_edge.local import EmbeddedMongo, EmbeddedRedis, start_mongo_server, start_redis
from lucid_edge.model import Template
from lucid_edge.template import TemplateError, load_template, parse_overrides

DEFAULT_WORKERS = 2


def register(subparsers: Any) -> None:
    """Add the `serve` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve", help="serve the SAM template's HTTP API locally (no Docker)"
    )
    parser.add_argument("--template", default="infra/template.yaml", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default=8080, type=int)
    parser.add_argument("--workers", default=DEFAULT_WORKERS, type=int)
    parser.add_argument(
        "--concurrency",
        default=server.DEFAULT_CONCURRENCY,
        type=int,
        help="invocation threads per worker process",
    )
    parser.add_argument(
        "--reload", action="store_true", help="reload a function's code when its files change"
    )
    parser.add_argument(
        "--parameter-overrides", nargs="*", default=[], metavar="KEY=VALUE", dest="overrides"
    )
    parser.set_defaults(func=run)


def _check_handlers(template: Template) -> None:
    # Cheap parent-side check so a missing handler file fails before any worker starts.
    for spec in template.functions.values():
        module = spec.handler.rpartition(".")[0].replace(".", "/")
        if not (spec.code_uri / f"{module}.py").is_file():
            raise TemplateError(
                f"Resources.{spec.logical_id}.Properties.Handler: no {module}.py in {spec.code_uri}"
            )


def _route_table(template: Template) -> str:
    lines = []
    for route in template.api.routes:
        auth = route.authorizer or "NONE"
        lines.append(f"  {route.route_key:<32} -> {route.function:<20} auth={auth}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; returns the process exit code."""
    try:
        overrides = parse_overrides(args.overrides)
        template = load_template(args.template, overrides)
        _check_handlers(template)
    except TemplateError as err:
        print(f"lucid serve: {err}", file=sys.stderr)
        return 2
    if args.workers < 1 or args.concurrency < 1:
        print("lucid serve: --workers and --concurrency must be at least 1", file=sys.stderr)
        return 2
    redis: EmbeddedRedis | None = None
    if not os.environ.get("REDIS_URI") and not template.environment.get("REDIS_URI"):
        redis = start_redis()
        os.environ["REDIS_URI"] = redis.uri
    # One in-memory store served over the wire to every worker; per-process stores would
    # let a user signed in through one worker be unknown to the next.
    mongo: EmbeddedMongo | None = None
    if not os.environ.get("MONGODB_URI") and not template.environment.get("MONGODB_URI"):
        mongo = start_mongo_server()
        os.environ["MONGODB_URI"] = mongo.uri
    stage = os.environ.get("STAGE") or template.environment.get("STAGE")
    has_secret = any(
        os.environ.get(name) or template.environment.get(name)
        for name in ("JWT_SECRET_KEY", "JWT_SECRET_ARN", "JWT_SECRET_PARAM")
    )
    if stage == LOCAL_STAGE and not has_secret:
        os.environ["JWT_SECRET_KEY"] = ephemeral_secret()
        print(
            "WARNING: JWT_SECRET_KEY is unset: using a random key shared by all workers of this "
            "run; tokens stop working when the edge stops",
            file=sys.stderr,
        )
    buckets = server.create_bucket_file(len(template.api.routes))
    os.environ.update(
        {
            server.ENV_TEMPLATE: str(template.path),
            server.ENV_PARAMETERS: json.dumps(overrides),
            server.ENV_CONCURRENCY: str(args.concurrency),
            server.ENV_BUCKETS: str(buckets),
            server.ENV_RELOAD: "1" if args.reload else "0",
        }
    )
    # A named stage serves only below /{stage}, as on AWS: the printed URL is the API's base.
    stage_path = "" if template.api.stage == "$default" else f"/{template.api.stage}"
    print(
        f"Lucid edge on http://{args.host}:{args.port}{stage_path} (stage {template.api.stage}, "
        f"{args.workers} workers x {args.concurrency} threads)"
    )
    if redis is not None:
        print(f"embedded Redis at {redis.uri}")
    if mongo is not None:
        print(f"in-memory MongoDB at {mongo.uri} (NOTHING IS PERSISTED)")
    print(_route_table(template), flush=True)
    if template.deploy_only:
        # Named once here, in the parent: each worker loads the template again, silently.
        print("deploy-only, not emulated locally: " + "; ".join(template.deploy_only), flush=True)
    try:
        uvicorn.run(
            "lucid_edge.server:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            access_log=False,
            server_header=False,
            # uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1 clients: the
            # source IP must be the socket peer, as API Gateway's is.
            proxy_headers=False,
            log_level="warning",
            timeout_graceful_shutdown=5,
        )
    finally:
        buckets.unlink(missing_ok=True)
        if redis is not None:
            redis.stop()
        if mongo is not None:
            mongo.stop()
    return 0
