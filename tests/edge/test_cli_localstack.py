"""`lucid localstack` against moto's server standing in for LocalStack's endpoint (both speak
the AWS APIs on a local port): it seeds what samconfig.toml's localstack environment reads and
finds the deployed API's URL."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import boto3
import pytest

from lucid_edge.cli import main
from lucid_edge.cli_localstack import read_environment
from lucid_edge.local import free_port
from tests.utils.aws import moto_server

ROOT = Path(__file__).resolve().parents[2]
SAMCONFIG = ROOT / "samconfig.toml"
ENV = read_environment(SAMCONFIG, "localstack")
# A stand-in for the deployed stack: CloudFormation in moto has no API Gateway v2 resources,
# so the API is made directly and the stack only carries the template's two outputs.
STACK_TEMPLATE = {
    "Parameters": {"Api": {"Type": "String"}, "Path": {"Type": "String"}},
    "Resources": {"Marker": {"Type": "AWS::SSM::Parameter",
                             "Properties": {"Name": "/lucid/localstack/deployed",
                                            "Type": "String", "Value": "yes"}}},
    "Outputs": {"HttpApiId": {"Value": {"Ref": "Api"}}, "ApiStagePath": {"Value": {"Ref": "Path"}}},
}  # fmt: skip


@pytest.fixture(scope="module")
def localstack() -> Iterator[str]:
    """moto's server on a free port: LocalStack's host:port for `--host`."""
    with moto_server() as address:
        yield address


@pytest.fixture(autouse=True)
def no_endpoint_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("LOCALSTACK_HOST", raising=False)


def _aws(localstack: str, service: Literal["ssm", "apigatewayv2", "cloudformation"]) -> Any:
    return boto3.client(
        service,
        endpoint_url=f"http://{localstack}",
        region_name=ENV.region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def _value(localstack: str, name: str) -> tuple[str, str]:
    found = _aws(localstack, "ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]
    return found["Value"], found["Type"]


def test_seed_writes_what_the_localstack_environment_reads(
    localstack: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN the parameters are seeded (a backend's URL too)
    args = ["localstack", "seed", "--host", localstack, "--backend", "blockchain=http://chain:8084"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    # THEN each parameter samconfig's localstack environment names exists, secrets encrypted
    names = {
        key: ENV.parameters[key] for key in ("JwtSecretParam", "MongoDbUriParam", "RedisUriParam")
    }
    key, kind = _value(localstack, names["JwtSecretParam"])
    assert (kind, len(key) >= 32) == ("SecureString", True)
    assert _value(localstack, names["MongoDbUriParam"]) == (
        "mongodb://mongo:27017/lucid",
        "SecureString",
    )
    assert _value(localstack, names["RedisUriParam"])[0] == "redis://redis:6379/0"
    backends = ENV.parameters["BackendParameterPath"]
    assert _value(localstack, f"{backends}/blockchain") == ("http://chain:8084", "String")
    # AND no value was printed, only what was written
    assert key not in printed
    assert f"wrote {names['JwtSecretParam']} (the JWT signing key)" in printed
    # WHEN it is seeded again THEN the JWT key is kept (signed-in users stay signed in)
    assert main(["localstack", "seed", "--host", localstack, "--redis-uri", "redis://r:1"]) == 0
    assert f"kept {names['JwtSecretParam']}" in capsys.readouterr().out
    assert _value(localstack, names["JwtSecretParam"])[0] == key
    assert _value(localstack, names["RedisUriParam"])[0] == "redis://r:1"


@pytest.mark.parametrize("stage_path", ["/", "/v1"])
def test_url_prints_the_deployed_apis_base_url(
    localstack: str, capsys: pytest.CaptureFixture[str], stage_path: str
) -> None:
    # GIVEN the stack is deployed (its HttpApi and outputs)
    api = _aws(localstack, "apigatewayv2").create_api(Name=ENV.stack_name, ProtocolType="HTTP")
    stacks = _aws(localstack, "cloudformation")
    stacks.create_stack(
        StackName=ENV.stack_name,
        TemplateBody=json.dumps(STACK_TEMPLATE),
        Parameters=[
            {"ParameterKey": "Api", "ParameterValue": api["ApiId"]},
            {"ParameterKey": "Path", "ParameterValue": stage_path},
        ],
    )
    try:
        # WHEN asked for the URL THEN it is API Gateway's endpoint for that API, stage included
        assert main(["localstack", "url", "--host", localstack]) == 0
        expected = api["ApiEndpoint"].rstrip("/") + stage_path.rstrip("/")
        assert capsys.readouterr().out.strip() == expected
    finally:
        stacks.delete_stack(StackName=ENV.stack_name)


def test_url_before_a_deploy_says_how_to_deploy(
    localstack: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["localstack", "url", "--host", localstack, "--config-env", "localstack"]) == 1
    assert "samlocal deploy --config-env localstack" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("config", "extra", "message"),
    [
        ("[x.global.parameters]\nstack_name = 's'\nparameter_overrides = 'JwtSecretArn=arn:x'\n",
         [], "a Secrets Manager ARN exists only once the secret does"),
        ("[x.global.parameters]\nstack_name = 's'\nparameter_overrides = 'Stage=x'\n",
         [], "set no JwtSecretParam"),
        ("[y.global.parameters]\nstack_name = 's'\n", [], "has no [x.global.parameters]"),
        ("not toml = [", [], "cannot read"),
    ],
)  # fmt: skip
def test_an_environment_that_cannot_be_seeded_is_refused_in_one_line(
    tmp_path: Path,
    localstack: str,
    capsys: pytest.CaptureFixture[str],
    config: str,
    extra: list[str],
    message: str,
) -> None:
    path = tmp_path / "samconfig.toml"
    path.write_text(config)
    args = ["localstack", "seed", "--host", localstack, "--config", str(path), "--config-env", "x"]
    assert main(args + extra) == 1
    assert message in capsys.readouterr().err


def _versions(localstack: str) -> dict[str, int]:
    found = _aws(localstack, "ssm").describe_parameters()["Parameters"]
    return {parameter["Name"]: parameter["Version"] for parameter in found}


def test_a_backend_needs_a_name_and_a_url_and_nothing_is_written_without_one(
    localstack: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN LocalStack as it is WHEN seeding with a --backend that is not name=url
    before = _versions(localstack)
    assert main(["localstack", "seed", "--host", localstack, "--backend", "chain"]) == 1
    # THEN it says so, and wrote nothing (before: the three secrets, then the refusal)
    assert "is not name=url" in capsys.readouterr().err
    assert _versions(localstack) == before


def test_an_unreachable_localstack_is_one_line_too(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["localstack", "seed", "--host", f"127.0.0.1:{free_port()}"]) == 1
    assert "LocalStack did not answer as expected" in capsys.readouterr().err


def test_the_samconfig_environment_is_the_one_documented() -> None:
    assert (
        tomllib.loads(SAMCONFIG.read_text())["localstack"]["global"]["parameters"]["stack_name"]
        == ENV.stack_name
    )


def test_seed_takes_its_secrets_from_files_and_the_environment(
    localstack: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a JWT key in a file and URIs with passwords in the environment (not in argv)
    key = "k" * 24 + "-fresh-key-from-a-file"
    key_file = tmp_path / "jwt-key"
    key_file.write_text(key + "\n")
    monkeypatch.setenv("LUCID_REDIS_URI", "rediss://:Pw-r3dis@cache:6380/0")
    monkeypatch.setenv("LUCID_MONGODB_URI", "mongodb+srv://lucid:Pw-m0ngo@cluster/lucid")
    # WHEN seeded
    assert main(["localstack", "seed", "--host", localstack, "--jwt-key-file", str(key_file)]) == 0
    # THEN LocalStack holds each value as given, and none was printed
    assert _value(localstack, ENV.parameters["JwtSecretParam"]) == (key, "SecureString")
    assert _value(localstack, ENV.parameters["RedisUriParam"])[0] == os.environ["LUCID_REDIS_URI"]
    mongodb_uri = _value(localstack, ENV.parameters["MongoDbUriParam"])[0]
    assert mongodb_uri == os.environ["LUCID_MONGODB_URI"]
    printed = capsys.readouterr()
    assert not {key, "Pw-r3dis", "Pw-m0ngo"} & set(printed.out.split() + printed.err.split())
    assert "Pw-" not in printed.out + printed.err


def test_seed_refuses_a_key_the_functions_would_refuse_without_quoting_it(
    localstack: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LUCID_JWT_KEY", "short-Pw-key")
    assert main(["localstack", "seed", "--host", localstack]) == 1
    err = capsys.readouterr().err
    assert "the JWT signing key from LUCID_JWT_KEY is shorter than 32 bytes" in err
    assert "short-Pw-key" not in err
