"""Least privilege, proven on what CloudFormation would create: the real SAM transform of
infra/template.yaml gives each function exactly the environment and the role infra/needs.yaml
declares, both ways (nothing missing, nothing extra), for each way of keeping the secrets.

The transformed template's conditions and intrinsics are evaluated with the local edge's
resolver (lucid_edge.intrinsics), region us-east-1, account 123456789012.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import pytest

from lucid_edge.intrinsics import Resolver
from lucid_edge.template import TemplateError, load_template
from tests.infra.needs import ACCOUNT, REGION, Grant, Needs, load_needs, ssm_arn
from tests.infra.sam_tools import decode, transform
from tests.infra.test_template import TEMPLATE, packaged

KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:lucid/prod"
SCENARIOS: dict[str, dict[str, str]] = {
    "local stage, plaintext for sam local": {},
    "secrets manager, a customer managed key, a VPC, backends in SSM": {
        "Stage": "prod",
        "JwtSecretArn": f"{SECRET}/jwt-AbCdEf",
        "MongoDbUriSecretArn": f"{SECRET}/mongo-Gh1jKl",
        "RedisUriSecretArn": f"{SECRET}/redis-Mn2oPq",
        "SecretsKmsKeyArn": KEY,
        "VpcSubnetIds": "subnet-0a1b2c3d,subnet-4e5f6a7b",
        "VpcSecurityGroupIds": "sg-0123456789abcdef0",
        "BackendParameterPath": "/lucid/prod/backends",
    },
    "ssm parameters": {
        "Stage": "dev",
        "JwtSecretParam": "/lucid/dev/jwt-key",
        "MongoDbUriParam": "/lucid/dev/mongodb-uri",
        "RedisUriParam": "/lucid/dev/redis-uri",
    },
    "rs256: the private key in secrets manager, the public key in ssm": {
        "Stage": "prod",
        "JwtAlgorithm": "RS256",
        "JwtSecretArn": f"{SECRET}/jwt-private-AbCdEf",
        "JwtPublicKeyParam": "/lucid/prod/jwt-public-key",
        "MongoDbUriParam": "/lucid/prod/mongodb-uri",
        "RedisUriParam": "/lucid/prod/redis-uri",
        "SecretsKmsKeyArn": KEY,
    },
    "es256: both keys in secrets manager": {
        "Stage": "prod",
        "JwtAlgorithm": "ES256",
        "JwtSecretArn": f"{SECRET}/jwt-private-AbCdEf",
        "JwtPublicKeyArn": f"{SECRET}/jwt-public-GhIjKl",
        "MongoDbUriSecretArn": f"{SECRET}/mongo-Gh1jKl",
        "RedisUriSecretArn": f"{SECRET}/redis-Mn2oPq",
    },
}
# The only actions allowed on Resource "*", each because AWS gives no narrower choice.
WILDCARD_ONLY = {
    # https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html#vpc-permissions:
    # "ec2:DescribeNetworkInterfaces - This action only works if it's allowed on all resources",
    # and a DeleteNetworkInterface limited to some resources may leave the function outside the
    # VPC; the others are the ENI lifecycle Lambda runs with the function's role.
    "ec2:CreateNetworkInterface": "VPC ENI (Lambda docs: configuration-vpc)",
    "ec2:DescribeNetworkInterfaces": "only works on all resources",
    "ec2:DescribeSubnets": "Describe* actions support no resource-level permissions",
    "ec2:DeleteNetworkInterface": "unrestricted, or the function may lose its VPC access",
    "ec2:AssignPrivateIpAddresses": "VPC ENI (Lambda docs: configuration-vpc)",
    "ec2:UnassignPrivateIpAddresses": "VPC ENI (Lambda docs: configuration-vpc)",
    # With `Tracing: Active` (not used today) AWS's X-Ray actions have no resource types.
    "xray:PutTraceSegments": "no resource-level permissions",
    "xray:PutTelemetryRecords": "no resource-level permissions",
}
VPC_GRANTS = {(action, "*", None) for action in WILDCARD_ONLY if action.startswith("ec2:")}


def _values(declared: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        raw = overrides.get(name, spec.get("Default", ""))
        values[name] = str(raw).split(",") if spec["Type"] == "CommaDelimitedList" else str(raw)
    return values


class Deployment:
    """The transformed template for one set of parameter values, intrinsics evaluated."""

    def __init__(self, overrides: Mapping[str, str]) -> None:
        source, _ = decode(str(TEMPLATE))
        assert source is not None
        self.source = dict(source)
        self.values = _values(self.source["Parameters"], overrides)
        transformed = transform(
            packaged(copy.deepcopy(self.source)),
            parameter_values={"AWS::Region": REGION, **overrides},
        )
        self.output = transformed
        self.resources: dict[str, Any] = transformed["Resources"]
        self.resolver = Resolver(
            self.values, frozenset(self.resources), transformed.get("Conditions", {})
        )

    def resolve(self, value: Any, where: str) -> Any:
        return self.resolver.resolve(value, where)

    def functions(self) -> dict[str, dict[str, Any]]:
        return {
            name: self.resolve(resource["Properties"], name)
            for name, resource in self.resources.items()
            if resource["Type"] == "AWS::Lambda::Function"
        }

    def role_of(self, function: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        role_id = self.resources_by_arn()[function["Role"]]
        return role_id, self.resolve(self.resources[role_id]["Properties"], role_id)

    def resources_by_arn(self) -> dict[str, str]:
        return {self.resolve({"Fn::GetAtt": [rid, "Arn"]}, rid): rid for rid in self.resources}

    def grants_of_role(self, role: Mapping[str, Any]) -> set[Grant]:
        statements: list[dict[str, Any]] = []
        for policy in role.get("Policies", []):
            statements += policy["PolicyDocument"]["Statement"]
        for arn in role.get("ManagedPolicyArns", []):
            assert arn in self.resources, f"a managed policy from outside the template: {arn}"
            managed = self.resources[arn]
            assert managed["Type"] == "AWS::IAM::ManagedPolicy"
            condition = managed.get("Condition")
            assert condition is None or self.resolver.condition(condition, arn)
            document = self.resolve(managed["Properties"]["PolicyDocument"], arn)
            statements += document["Statement"]
        grants: set[Grant] = set()
        for statement in statements:
            assert statement["Effect"] == "Allow", statement
            grants |= _grants(statement)
        return grants


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _grants(statement: Mapping[str, Any]) -> set[Grant]:
    condition = None
    if "Condition" in statement:
        parts = [
            f"{operator}:{key}={','.join(sorted(_listed(values)))}"
            for operator, keys in statement["Condition"].items()
            for key, values in keys.items()
        ]
        condition = ";".join(sorted(parts))
    return {
        (action, resource, condition)
        for action in _listed(statement["Action"])
        for resource in _listed(statement["Resource"])
    }


@pytest.fixture(scope="module")
def needs() -> Needs:
    return load_needs()


@pytest.fixture(scope="module", params=list(SCENARIOS), ids=list(SCENARIOS))
def deployment(request: pytest.FixtureRequest) -> Deployment:
    return Deployment(SCENARIOS[request.param])


def test_every_function_is_declared_and_has_its_own_role(
    deployment: Deployment, needs: Needs
) -> None:
    functions = deployment.functions()
    assert set(functions) == set(needs.functions)
    roles = {deployment.role_of(function)[0] for function in functions.values()}
    assert len(roles) == len(functions)  # one each: no function borrows another's rights
    every_role = {k for k, r in deployment.resources.items() if r["Type"] == "AWS::IAM::Role"}
    assert every_role == roles  # SAM generated none of its own (they carry logs on "*")
    for role_id in roles:
        trust = deployment.resources[role_id]["Properties"]["AssumeRolePolicyDocument"]
        assert trust["Statement"] == [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ]


def test_each_role_allows_exactly_what_its_function_needs(
    deployment: Deployment, needs: Needs
) -> None:
    in_vpc = deployment.values["VpcSubnetIds"] != [""]
    for name, function in deployment.functions().items():
        # GIVEN what the function may do: write its own log group, read its declared secrets
        log_group = deployment.resolve(
            {"Fn::GetAtt": [function["LoggingConfig"]["LogGroup"], "Arn"]}, name
        )
        expected = {
            ("logs:CreateLogStream", log_group, None),
            ("logs:PutLogEvents", log_group, None),
            *needs.grants_of(name, deployment.values),
            *(VPC_GRANTS if in_vpc else set()),
        }
        # THEN its role allows that, and nothing else
        _, role = deployment.role_of(function)
        granted = deployment.grants_of_role(role)
        assert granted - expected == set(), f"{name} may do more than it needs"
        assert expected - granted == set(), f"{name} lacks a permission it needs"


def test_no_resource_is_star_but_where_aws_requires_it(deployment: Deployment) -> None:
    for name, function in deployment.functions().items():
        _, role = deployment.role_of(function)
        for action, resource, _ in deployment.grants_of_role(role):
            if resource == "*" or resource.endswith(":*:*"):
                assert action in WILDCARD_ONLY, f"{name}: {action} on {resource}"


def test_each_function_receives_exactly_its_declared_variables(
    deployment: Deployment, needs: Needs
) -> None:
    globals_ = set(deployment.source["Globals"]["Function"]["Environment"]["Variables"])
    for name, resource in deployment.resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        variables = resource["Properties"]["Environment"]["Variables"]
        assert set(variables) == globals_ | needs.variables_of(name), name
        # each secret's or path's variable is set by the parameter the declaration names; a
        # secret the function does not read with RS256/ES256 is "" then
        needs_of = needs.functions[name]
        hmac_only = set(needs_of.secrets) - set(needs_of.asymmetric_secrets or needs_of.secrets)
        hmac_only_variables = {
            source["name"] for secret in hmac_only for source in needs.secrets[secret].values()
        }
        for variable, value in variables.items():
            parameter = needs.parameter_of(variable)
            if parameter is None:
                continue
            expected: dict[str, Any] = {"Ref": parameter}
            if variable in hmac_only_variables:
                expected = {"Fn::If": ["IsAsymmetricJwt", "", expected]}
            assert value == expected, f"{name}.{variable}"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_secret_values_reach_an_environment_only_on_the_local_stage(
    scenario: str, needs: Needs
) -> None:
    # GIVEN a deployment that also passes a secret's value itself (the sam local parameters)
    for sources in needs.secrets.values():
        if "variable" not in sources:
            continue  # a reference only (the JWT public key)
        overrides = {**SCENARIOS[scenario], sources["variable"]["parameter"]: "plain-value"}
        if overrides.get("Stage", "local") == "local":
            # THEN sam local's stage takes it (env.json can only set declared variables)
            load_template(TEMPLATE, overrides)
        else:
            # THEN CloudFormation refuses the stack: the template's Rules (evaluated as AWS does)
            with pytest.raises(TemplateError, match=r"for sam local \(Stage=local\) only"):
                load_template(TEMPLATE, overrides)


def test_the_declared_parameters_exist_with_the_constraints_aws_checks(needs: Needs) -> None:
    source, _ = decode(str(TEMPLATE))
    assert source is not None
    parameters = source["Parameters"]
    for sources in needs.secrets.values():
        if "variable" in sources:
            assert parameters[sources["variable"]["parameter"]]["NoEcho"] is True
        assert "secretsmanager" in parameters[sources["secret_arn"]["parameter"]]["AllowedPattern"]
        assert parameters[sources["ssm_parameter"]["parameter"]]["AllowedPattern"].startswith(
            "^(|/"
        )
    rules = json.dumps(source["Rules"])
    for sources in needs.secrets.values():  # refused in plaintext and required off local
        for source in sources.values():
            assert source["parameter"] in rules


def test_an_asymmetric_authorizer_reads_the_public_key_and_cannot_read_the_private_key() -> None:
    # GIVEN an RS256 deployment: the private key in Secrets Manager, the public key in SSM
    overrides = SCENARIOS["rs256: the private key in secrets manager, the public key in ssm"]
    deployment = Deployment(overrides)
    functions = deployment.functions()
    private, public = overrides["JwtSecretArn"], ssm_arn(overrides["JwtPublicKeyParam"])

    def readable(name: str) -> set[str]:
        grants = deployment.grants_of_role(deployment.role_of(functions[name])[1])
        return {resource for action, resource, _ in grants if action.startswith(("ssm", "secret"))}

    # THEN the authorizer is given, and may read, the public key only
    authorizer = functions["AuthorizerFunction"]["Environment"]["Variables"]
    assert authorizer["JWT_ALGORITHM"] == "RS256"
    assert authorizer["JWT_PUBLIC_KEY_PARAM"] == overrides["JwtPublicKeyParam"]
    assert authorizer["JWT_SECRET_ARN"] == authorizer["JWT_SECRET_PARAM"] == ""
    assert public in readable("AuthorizerFunction")
    assert private not in readable("AuthorizerFunction")
    # AND the auth function, which signs, reads the private key and not the public one
    assert private in readable("AuthFunction")
    assert public not in readable("AuthFunction")


@pytest.mark.parametrize(
    ("overrides", "refusal"),
    [
        ({"JwtAlgorithm": "RS256"}, "set JwtPublicKeyArn or JwtPublicKeyParam"),
        ({"JwtPublicKeyParam": "/lucid/dev/jwt-public-key"}, "for JwtAlgorithm RS256/ES256 only"),
    ],
    ids=["rs256 without a public key", "hs256 with a public key"],
)
def test_the_public_key_reference_goes_with_an_asymmetric_algorithm(
    overrides: dict[str, str], refusal: str
) -> None:
    # GIVEN the SSM deployment with its algorithm and public-key reference mismatched
    values = {**SCENARIOS["ssm parameters"], **overrides}
    # THEN CloudFormation refuses the stack (the template's Rules, evaluated as AWS does)
    with pytest.raises(TemplateError, match=refusal):
        load_template(TEMPLATE, values)
    load_template(TEMPLATE, SCENARIOS["ssm parameters"])


def test_an_ssm_name_without_a_leading_slash_maps_to_one_arn() -> None:
    assert (
        ssm_arn("/lucid/dev/x")
        == ssm_arn("lucid/dev/x")
        == (f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/lucid/dev/x")
    )
