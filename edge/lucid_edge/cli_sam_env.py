"""`lucid env-json`: the env.json `sam local start-api` / `sam local invoke` read (make local-api).

    lucid env-json [--output .lucid/env.json] [--redis-uri-file PATH] [--mongodb-uri-file PATH]

(or LUCID_REDIS_URI / LUCID_MONGODB_URI: a URI with a password never goes on the command line,
lucid_edge.cli_secrets)

sam local runs each function in its own container with the template's environment, and an
env.json "only overrides variables that the template declares" (notes/aws-facts.md section 8:
aws-sam-cli `EnvironmentVariables.resolve`). So the file holds exactly the secret-valued
variables (lucid.secret_store.REFERENCES) some function of the template declares: the Redis and
MongoDB on the host machine (`host.docker.internal`, which `make local-api` maps to the host),
and one random JWT key that every container shares (each would otherwise pick its own on the
local stage, and no token would verify). The file is written 0600 (a new file renamed over the
old one) and is not committed (.gitignore: .lucid/).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path
from typing import Any

from lucid.secret_store import REFERENCES
from lucid_edge.cli_config import CommandError, private_write, write_failure
from lucid_edge.cli_secrets import MONGODB_URI, REDIS_URI, add_secret_option, resolve
from lucid_edge.intrinsics import TemplateError, load_yaml

DEFAULT_TEMPLATE = Path("infra/template.yaml")
DEFAULT_OUTPUT = Path(".lucid/env.json")
HOST_REDIS = "redis://host.docker.internal:6379/0"
HOST_MONGODB = "mongodb://host.docker.internal:27017/lucid"


def declared_variables(template: Path) -> set[str]:
    """Every environment variable a function of `template` declares (Globals included)."""
    raw = load_yaml(template)
    declared: set[str] = set()
    globals_ = (raw.get("Globals") or {}).get("Function") or {}
    functions = [
        resource.get("Properties") or {}
        for resource in (raw.get("Resources") or {}).values()
        if resource.get("Type") == "AWS::Serverless::Function"
    ]
    for props in [globals_, *functions]:
        declared |= set(((props.get("Environment") or {}).get("Variables") or {}).keys())
    return declared


def env_json(template: Path, redis_uri: str, mongodb_uri: str) -> dict[str, Any]:
    """The env.json document for `template`: {"Parameters": {variable: value}}."""
    values = {
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "MONGODB_URI": mongodb_uri,
        "REDIS_URI": redis_uri,
    }
    declared = declared_variables(template)
    return {"Parameters": {k: v for k, v in values.items() if k in REFERENCES and k in declared}}


def register(subparsers: Any) -> None:
    """Add the `env-json` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "env-json", help="write the env.json that `sam local` reads (make local-api, make invoke)"
    )
    parser.add_argument("--template", default=DEFAULT_TEMPLATE, type=Path)
    parser.add_argument("--output", default=DEFAULT_OUTPUT, type=Path)
    add_secret_option(parser, REDIS_URI, HOST_REDIS)
    add_secret_option(parser, MONGODB_URI, HOST_MONGODB)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the file (0600: it holds a signing key); 2 when the template cannot be read, 1
    when a URI cannot be read or is malformed."""
    try:
        uris = resolve(args, (REDIS_URI, MONGODB_URI), "lucid env-json")
    except CommandError as error:
        print(f"lucid env-json: {error}", file=sys.stderr)
        return 1
    try:
        document = env_json(
            args.template, uris["redis_uri"] or HOST_REDIS, uris["mongodb_uri"] or HOST_MONGODB
        )
    except TemplateError as error:
        print(f"lucid env-json: {error}", file=sys.stderr)
        return 2
    # A new 0600 file renamed over the old one: truncating an existing file in place kept its
    # mode (0644: readable by anyone while the new key was written, until a chmod) and wrote
    # through a symlink into whatever file it named.
    try:
        private_write(args.output, json.dumps(document, indent=2) + "\n", replace=True)
    except OSError as error:
        print(
            f"lucid env-json: cannot write {args.output}: {write_failure(args.output, error)}",
            file=sys.stderr,
        )
        return 1
    print(f"wrote {args.output} ({', '.join(sorted(document['Parameters']))})")
    return 0
