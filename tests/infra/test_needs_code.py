"""The code follows infra/needs.yaml too: each function, started in a fresh interpreter with only
the variables the declaration gives it (every secret by reference, a deployed stage), reads its
secrets through exactly the AWS calls the declaration implies, and no other, and answers.

moto's server stands in for AWS on a local port (the functions reach it through
AWS_ENDPOINT_URL); the secrets point at the test session's real Redis and in-memory MongoDB
and at a real backend, so the functions serve the requests that make them read everything.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
import pytest
import redis

from lucid.auth.keys import KeyRing
from lucid.auth.tokens import TokenService
from lucid.config import Settings
from lucid.identity import Role
from tests.infra.needs import ROOT, Grant, Needs, load_needs
from tests.shared.proxy.proxy_backends import BackendServer, running_backend
from tests.utils.auth_flow import authorizer_event
from tests.utils.aws import moto_server
from tests.utils.events import http_event
from tests.utils.wallets import Wallet

PROBE = Path(__file__).with_name("needs_probe.py")
PREFIX = f"/lucid/probe-{secrets.token_hex(4)}"
JWT_KEY = secrets.token_urlsafe(48)
OLD_JWT_KEY = secrets.token_urlsafe(48)
JWT_PARAMETER = f"{PREFIX}/jwt-key"
# Who reads the JWT key from SSM (the others that read it: from Secrets Manager).
JWT_IN_SSM = {"AuthorizerFunction"}
# What the template's Globals give every function (the values of a deployed stage).
GLOBALS = {
    "STAGE": "prod",
    "SERVICE_NAME": "lucid-api-gateway",
    "LOG_LEVEL": "WARNING",
    "POWERTOOLS_SERVICE_NAME": "lucid-api-gateway",
    "POWERTOOLS_METRICS_NAMESPACE": "Lucid/prod",
    "TOKEN_EXPIRE_MINUTES": "15",
}
VARIABLES = {
    "JWT_ALGORITHM": "HS256",
    "AUTH_SERVICE_URL": "https://api.lucid.test",
    "ADMIN_ADDRESSES": "",
    "RATE_LIMIT_PUBLIC": "100",
    "RATE_LIMIT_AUTHENTICATED": "1000",
    "RATE_LIMIT_ADMIN": "10000",
    "RATE_LIMIT_FAIL_MODE": "open",
    "BLOCKCHAIN_SERVICE_URL": "",
    "SESSION_SERVICE_URL": "",
    "NODE_SERVICE_URL": "",
    "BACKEND_PARAMETER_PATH": f"{PREFIX}/backends",
}


@pytest.fixture(scope="module")
def aws() -> Iterator[str]:
    """moto's server on a free port: its endpoint URL."""
    with moto_server() as address:
        yield f"http://{address}"


@pytest.fixture(scope="module")
def backend() -> Iterator[BackendServer]:
    with running_backend() as server:
        yield server


@pytest.fixture(scope="module")
def references(aws: str, backend: BackendServer) -> dict[str, dict[str, str]]:
    """The three secrets kept in AWS (JWT key and Redis URL in Secrets Manager, the MongoDB URI
    in SSM), the backends' URLs under an SSM path: the reference variables of each function.

    Each function gets its own empty Redis database: whether a function reads MongoDB depends on
    Redis's copy of the revoked sign-ins (`lucid.auth.revocation`: a function finding it missing
    reloads it from MongoDB), so functions sharing one would race for who reads MongoDB."""
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    manager = session.client("secretsmanager", endpoint_url=aws)
    ssm = session.client("ssm", endpoint_url=aws)
    # The JWT key rotated in place once, in both services: the functions read the value it
    # replaced too (AWSPREVIOUS, version 1), which must be what their roles allow already.
    jwt_arn = manager.create_secret(Name=f"{PREFIX}/jwt", SecretString=OLD_JWT_KEY)["ARN"]
    manager.put_secret_value(SecretId=jwt_arn, SecretString=JWT_KEY)
    for value, overwrite in ((OLD_JWT_KEY, False), (JWT_KEY, True)):
        ssm.put_parameter(Name=JWT_PARAMETER, Value=value, Type="SecureString", Overwrite=overwrite)
    ssm.put_parameter(
        Name=f"{PREFIX}/mongodb-uri", Value=os.environ["MONGODB_URI"], Type="SecureString"
    )
    ssm.put_parameter(Name=f"{PREFIX}/backends/blockchain", Value=backend.url, Type="String")
    base = urlsplit(os.environ["REDIS_URI"])
    found = {}
    for number, function in enumerate(load_needs().functions, start=1):
        uri = urlunsplit(base._replace(path=f"/{number}"))
        redis.Redis.from_url(uri).flushdb()
        redis_arn = manager.create_secret(Name=f"{PREFIX}/redis-{number}", SecretString=uri)
        in_ssm = function in JWT_IN_SSM
        found[function] = {
            "JWT_SECRET_ARN": "" if in_ssm else jwt_arn,
            "JWT_SECRET_PARAM": JWT_PARAMETER if in_ssm else "",
            "REDIS_URI_SECRET_ARN": redis_arn["ARN"],
            "REDIS_URI_PARAM": "",
            "MONGODB_URI_SECRET_ARN": "",
            "MONGODB_URI_PARAM": f"{PREFIX}/mongodb-uri",
        }
    return found


def _token() -> str:
    settings = Settings(STAGE="prod", JWT_SECRET_KEY=JWT_KEY)
    wallet = Wallet()
    return (
        TokenService(settings, KeyRing(settings))
        .issue("0" * 32, wallet.address, Role.USER, "1" * 24)
        .token
    )


def _events(function: str) -> list[dict[str, Any]]:
    """Requests that make `function` read every secret it uses."""
    caller = {
        "user_id": "0" * 32,
        "role": "user",
        "tier": "authenticated",
        "jti": "j-probe",
        "sid": "2" * 24,
    }
    bearer = {"authorization": f"Bearer {_token()}"}
    return {
        "MetaFunction": [http_event("GET", "/meta/health")],
        "AuthorizerFunction": [authorizer_event(bearer["authorization"])],
        "AuthFunction": [http_event("GET", "/auth/status", headers=bearer)],
        "UsersFunction": [http_event("GET", "/users/me", authorizer=caller)],
        "SessionsFunction": [http_event("GET", "/sessions", authorizer=caller)],
        "ProxyFunction": [
            http_event("GET", "/chain/info", route_key="GET /chain/info"),
            # a signed-in call: its sign-in is checked against the record of revocations
            http_event("GET", "/chain/blocks", route_key="GET /chain/{proxy+}", authorizer=caller),
        ],
    }[function]


def _environment(
    needs: Needs, function: str, aws: str, references: dict[str, str]
) -> dict[str, str]:
    given = {**GLOBALS}
    for name in needs.variables_of(function):
        given[name] = references.get(name, VARIABLES.get(name, ""))
    return {
        **given,
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_ENDPOINT_URL": aws,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def _expected(needs: Needs, function: str, references: dict[str, str]) -> set[tuple[str, str]]:
    values = {
        "JwtSecretArn": references["JWT_SECRET_ARN"],
        "JwtSecretParam": references["JWT_SECRET_PARAM"],
        "RedisUriSecretArn": references["REDIS_URI_SECRET_ARN"],
        "MongoDbUriParam": references["MONGODB_URI_PARAM"],
        "BackendParameterPath": VARIABLES["BACKEND_PARAMETER_PATH"],
    }
    grants: set[Grant] = needs.grants_of(function, values)
    # by the name the code asks for: the ARN, or the parameter's name (the grant holds its ARN)
    names = {
        "secretsmanager": lambda resource: resource,
        "ssm": lambda resource: resource.split(":parameter", 1)[1],
    }
    return {(action, names[action.split(":")[0]](resource)) for action, resource, _ in grants}


@pytest.fixture(scope="module")
def reports(
    aws: str, references: dict[str, dict[str, str]], backend: BackendServer
) -> dict[str, Any]:
    """Every function started at once, each in its own interpreter: what each printed."""
    needs = load_needs()
    running = {}
    for function in needs.functions:
        code_uri = ROOT / "functions" / function.removesuffix("Function").lower()
        config = {"code_uri": str(code_uri), "events": _events(function)}
        running[function] = subprocess.Popen(
            [sys.executable, str(PROBE), json.dumps(config)],
            env=_environment(needs, function, aws, references[function]),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    found: dict[str, Any] = {}
    for function, process in running.items():
        stdout, stderr = process.communicate(timeout=120)
        lines = [line for line in stdout.splitlines() if line.startswith("NEEDS-PROBE ")]
        found[function] = (
            json.loads(lines[-1].removeprefix("NEEDS-PROBE "))
            if lines
            else {"failed": stdout[-3000:] + stderr[-3000:]}
        )
    return found


@pytest.mark.parametrize("function", list(load_needs().functions))
def test_each_function_reads_exactly_its_declared_secrets_and_answers(
    function: str, reports: dict[str, Any], references: dict[str, dict[str, str]]
) -> None:
    # WHEN the function started with only its declared variables and served its requests
    report = reports[function]
    assert "failed" not in report, report.get("failed")
    # THEN it answered (not a 5xx: everything it needed was given to it)
    for answer in report["answers"]:
        status = answer.get("statusCode", 200 if answer.get("isAuthorized") else 403)
        assert status < 500, answer
    if function == "AuthorizerFunction":
        assert report["answers"][0]["isAuthorized"] is True
    # AND its AWS calls are exactly those its declared secrets and paths imply
    made = {(f"{service}:{operation}", target) for service, operation, target in report["calls"]}
    assert {_resource(call) for call in made} == _expected(
        load_needs(), function, references[function]
    )
    # AND a function that verifies tokens reads the JWT key's previous value, with those calls
    if "JWT_SECRET_KEY" in load_needs().functions[function].secrets:
        previous = (
            ("ssm:GetParameter", f"{JWT_PARAMETER}:1")
            if function in JWT_IN_SSM
            else (
                "secretsmanager:GetSecretValue",
                f"{references[function]['JWT_SECRET_ARN']}#AWSPREVIOUS",
            )
        )
        assert previous in made


def _resource(call: tuple[str, str]) -> tuple[str, str]:
    """The resource IAM authorises `call` on: the version asked for is part of the request, not
    of the resource. Secrets Manager: GetSecretValue is authorised on the secret, the stage is
    only the `secretsmanager:VersionStage` condition key; SSM: Parameter Store's one resource
    type is the parameter, `name:version` a selector of its versions (notes/aws-facts.md,
    "JWT key rotation")."""
    action, target = call
    if action == "secretsmanager:GetSecretValue":
        return action, target.split("#", 1)[0]
    if action == "ssm:GetParameter" and target.rpartition(":")[2].isdigit():
        return action, target.rpartition(":")[0]
    return call


def test_without_a_reference_no_function_imports_boto3() -> None:
    # GIVEN each function configured with plain values only (the local edge, sam local)
    plain = {
        **GLOBALS,
        "STAGE": "local",
        "JWT_SECRET_KEY": JWT_KEY,
        "REDIS_URI": os.environ["REDIS_URI"],
        "MONGODB_URI": os.environ["MONGODB_URI"],
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    check = (
        "import sys; sys.path.insert(0, sys.argv[1]); import app; "
        "print(sorted(m for m in ('boto3', 'aws_lambda_powertools.utilities.parameters') "
        "if m in sys.modules))"
    )
    # WHEN each is imported, as at a cold start (all at once, each in its own interpreter)
    running = {
        function: subprocess.Popen(
            [sys.executable, "-c", check, str(ROOT / "functions" / folder)],
            env=plain,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for function, folder in (
            (name, name.removesuffix("Function").lower()) for name in load_needs().functions
        )
    }
    # THEN none of them paid for boto3 (~75 ms of every cold start; the authorizer's target is
    # 0.6x a hello-world function: `make bench coldstart`)
    for function, process in running.items():
        output, _ = process.communicate(timeout=120)
        assert output.strip().splitlines()[-1] == "[]", (function, output[-2000:])
