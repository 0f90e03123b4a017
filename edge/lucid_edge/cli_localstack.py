"""`lucid localstack`: what a LocalStack deployment of the stack needs, for those who have one.

    lucid localstack seed [--config-env localstack] [--backend blockchain=http://...]
                          [--redis-uri-file PATH] [--mongodb-uri-file PATH] [--jwt-key-file PATH]
    lucid localstack url  [--config-env localstack]

`seed` writes the SSM parameters the environment's parameter_overrides in samconfig.toml name
(the JWT key, the MongoDB URI and the Redis URL as SecureStrings, the backends' URLs under
BackendParameterPath) into LocalStack, before `samlocal deploy --config-env localstack`. An
existing JWT key is kept (tokens stay valid across re-seeds) unless --jwt-key-file (or
LUCID_JWT_KEY) gives one; values are never printed, and come from files, standard input or
LUCID_REDIS_URI / LUCID_MONGODB_URI rather than arguments (lucid_edge.cli_secrets).
`url` prints the deployed API's base URL, from the stack's outputs (HttpApiId, ApiStagePath) and
API Gateway's own endpoint for that API (LocalStack's, not AWS's).

Clients come from `localstack-client` (boto3 pointed at LocalStack: LOCALSTACK_HOST, default
localhost:4566, or --host; AWS_ENDPOINT_URL wins over both). HTTP APIs (API Gateway v2) need
LocalStack's Pro image and an auth token (notes/aws-facts.md section 11, README).
"""

from __future__ import annotations

import argparse
import secrets
import shlex
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lucid_edge.cli_config import CommandError
from lucid_edge.cli_secrets import JWT_KEY, MONGODB_URI, REDIS_URI, add_secret_option, resolve

DEFAULT_CONFIG = Path("samconfig.toml")
DEFAULT_ENV = "localstack"
# Reachable from the Lambda containers on docker-compose.localstack.yml's network.
DEFAULT_MONGODB_URI = "mongodb://mongo:27017/lucid"
DEFAULT_REDIS_URI = "redis://redis:6379/0"
# (template parameter naming the SSM parameter, what it holds)
_SECRETS = (
    ("JwtSecretParam", "the JWT signing key"),
    ("MongoDbUriParam", "the MongoDB URI"),
    ("RedisUriParam", "the Redis URL"),
)


class LocalStackError(RuntimeError):
    """What the user must fix, in one sentence."""


@dataclass(frozen=True)
class Environment:
    """One samconfig.toml environment: where the stack lives and what it reads."""

    name: str
    stack_name: str
    region: str
    parameters: dict[str, str]


def read_environment(config: Path, name: str) -> Environment:
    """The `[<name>.global.parameters]` table of samconfig.toml, overrides parsed."""
    try:
        document = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise LocalStackError(f"cannot read {config}: {error}") from error
    table = document.get(name, {}).get("global", {}).get("parameters")
    if not table or "stack_name" not in table:
        raise LocalStackError(f"{config} has no [{name}.global.parameters] with a stack_name")
    pairs = (item.partition("=") for item in shlex.split(table.get("parameter_overrides", "")))
    return Environment(
        name=name,
        stack_name=str(table["stack_name"]),
        region=str(table.get("region", "us-east-1")),
        parameters={key: value for key, _, value in pairs},
    )


def _client(service: str, args: argparse.Namespace, region: str) -> Any:
    # Imported here: boto3 costs every other `lucid` command a fifth of a second to start.
    from localstack_client.session import Session

    return Session(localstack_host=args.host, region_name=region).client(service)


def _exists(ssm: Any, name: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        ssm.get_parameter(Name=name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return False
        raise
    return True


def seed(args: argparse.Namespace) -> list[str]:
    """Write the environment's parameters into LocalStack; what was done, one line each."""
    env = read_environment(args.config, args.config_env)
    for arn_parameter in ("JwtSecretArn", "MongoDbUriSecretArn", "RedisUriSecretArn"):
        if env.parameters.get(arn_parameter):
            raise LocalStackError(
                f"[{env.name}] sets {arn_parameter}: a Secrets Manager ARN exists only once the "
                f"secret does; keep the {env.name} environment's secrets in SSM (*Param) to seed "
                f"them"
            )
    given = resolve(args, (JWT_KEY, MONGODB_URI, REDIS_URI), "lucid localstack")
    # Every argument checked before the first write: a refusal leaves LocalStack as it was.
    path = env.parameters.get("BackendParameterPath", "").rstrip("/")
    backends = []
    for backend in args.backend:
        if not path:
            raise LocalStackError(f"[{env.name}] sets no BackendParameterPath for --backend")
        name, _, url = backend.partition("=")
        if not name or not url:
            raise LocalStackError(f"--backend {backend!r} is not name=url")
        backends.append((name, url))
    ssm = _client("ssm", args, env.region)
    values = {
        "JwtSecretParam": given["jwt_key"],
        "MongoDbUriParam": given["mongodb_uri"] or DEFAULT_MONGODB_URI,
        "RedisUriParam": given["redis_uri"] or DEFAULT_REDIS_URI,
    }
    done = []
    for parameter, what in _SECRETS:
        name = env.parameters.get(parameter)
        if not name:
            raise LocalStackError(f"[{env.name}] parameter_overrides set no {parameter}")
        value = values[parameter]
        if parameter == "JwtSecretParam" and value is None:
            if _exists(ssm, name):
                done.append(f"kept {name} ({what})")
                continue
            value = secrets.token_urlsafe(48)
        ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
        done.append(f"wrote {name} ({what})")
    for name, url in backends:
        ssm.put_parameter(Name=f"{path}/{name}", Value=url, Type="String", Overwrite=True)
        done.append(f"wrote {path}/{name} (the {name} backend)")
    return done


def api_url(args: argparse.Namespace) -> str:
    """The deployed API's base URL, as LocalStack serves it."""
    from botocore.exceptions import ClientError

    env = read_environment(args.config, args.config_env)
    stacks = _client("cloudformation", args, env.region)
    try:
        (stack,) = stacks.describe_stacks(StackName=env.stack_name)["Stacks"]
    except ClientError as error:
        raise LocalStackError(
            f"no stack {env.stack_name} in LocalStack: deploy it with "
            f"`samlocal deploy --config-env {env.name}` first"
        ) from error
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    if "HttpApiId" not in outputs:
        raise LocalStackError(f"stack {env.stack_name} has no HttpApiId output")
    api = _client("apigatewayv2", args, env.region).get_api(ApiId=outputs["HttpApiId"])
    stage_path = str(outputs.get("ApiStagePath", "/")).rstrip("/")
    return str(api["ApiEndpoint"]).rstrip("/") + stage_path


def register(subparsers: Any) -> None:
    """Add the `localstack` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "localstack", help="seed a LocalStack deployment's secrets, print its API's URL"
    )
    parser.add_argument("action", choices=["seed", "url"])
    parser.add_argument("--config", default=DEFAULT_CONFIG, type=Path)
    parser.add_argument("--config-env", default=DEFAULT_ENV)
    parser.add_argument("--host", default=None, help="LocalStack's host:port (LOCALSTACK_HOST)")
    add_secret_option(parser, MONGODB_URI, DEFAULT_MONGODB_URI)
    add_secret_option(parser, REDIS_URI, DEFAULT_REDIS_URI)
    add_secret_option(parser, JWT_KEY, "keep the existing key, else make a new one")
    parser.add_argument(
        "--backend", action="append", default=[], metavar="NAME=URL", help="a backend's URL"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Seed or print the URL; 1 with one line on standard error when something is missing."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        if args.action == "seed":
            for line in seed(args):
                print(line)
        else:
            print(api_url(args))
    except (LocalStackError, CommandError) as error:
        print(f"lucid localstack: {error}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as error:
        print(f"lucid localstack: LocalStack did not answer as expected: {error}", file=sys.stderr)
        return 1
    return 0
