"""infra/template.yaml is valid SAM: cfn-lint finds no errors, the SAM transform succeeds, the
transformed API has the routes, authorizer, CORS and throttling we declare, and every function's
Handler/CodeUri loads."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from lucid.store.lease import CLOCK_SKEW_SECONDS, LEASE_SECONDS
from lucid_edge.intrinsics import Resolver
from tests.infra.sam_tools import decode, lint, transform
from tests.utils.functions import load_module

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"
PUBLIC_ROUTES = {
    "GET /health",
    "GET /meta/info",
    "GET /meta/health",
    "GET /meta/openapi.json",
    "GET /meta/docs",
    "GET /meta/docs/{asset}",
    "POST /auth/challenge",
    "POST /auth/login",
    "POST /auth/verify",
    "POST /auth/refresh",
    "GET /auth/status",
    "GET /chain/info",
}


@pytest.fixture(scope="module")
def sam_template() -> dict[str, Any]:
    template, matches = decode(str(TEMPLATE))
    assert not matches, matches
    assert template is not None
    return dict(template)


def packaged(template: dict[str, Any]) -> dict[str, Any]:
    """What `sam package` hands CloudFormation: local code folders replaced by S3 objects."""
    result = copy.deepcopy(template)
    for name, resource in result["Resources"].items():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if key in props:
                props[key] = f"s3://lucid-artifacts/{name}.zip"
    return result


@pytest.fixture(scope="module")
def cloudformation(sam_template: dict[str, Any]) -> dict[str, Any]:
    translated = transform(packaged(sam_template), parameter_values={"AWS::Region": "us-east-1"})
    return translated


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_cfn_lint_matches_no_error_rule() -> None:
    matches = lint(TEMPLATE, regions=["us-east-1"])
    errors = [f"{m.rule} {m.message} ({m.line})" for m in matches if m.rule[0] == "E"]
    assert errors == []


def test_cfn_lint_matches_no_rule_at_all_as_sam_validate_lint_requires() -> None:
    # `sam validate --lint` (make sam-build runs it) fails on any match, warnings included
    # (aws-sam-cli 1.170.0, samcli/commands/validate/validate.py _lint): e.g. W1001, a resource
    # named where its condition may be false
    matches = lint(TEMPLATE, regions=["us-east-1"])
    assert [f"{m.rule} {m.message} ({m.line})" for m in matches] == []


def test_transform_gives_one_http_api_with_payload_2_routes(cloudformation: dict[str, Any]) -> None:
    apis = resources_of(cloudformation, "AWS::ApiGatewayV2::Api")
    assert len(apis) == 1
    (api,) = apis.values()
    assert api["Properties"]["Body"]["openapi"].startswith("3.")
    body_routes = api["Properties"]["Body"]["paths"]
    assert "/health" in body_routes
    assert "/sessions/{id}" in body_routes
    for path_item in body_routes.values():
        for operation in path_item.values():
            integration = operation["x-amazon-apigateway-integration"]
            assert integration["type"] == "aws_proxy"
            assert integration["payloadFormatVersion"] == "2.0"


def test_protected_routes_use_the_lambda_authorizer_and_public_ones_opt_out(
    cloudformation: dict[str, Any],
) -> None:
    (api,) = resources_of(cloudformation, "AWS::ApiGatewayV2::Api").values()
    body = api["Properties"]["Body"]
    authorizers = body["components"]["securitySchemes"]
    assert authorizers["LucidAuthorizer"]["x-amazon-apigateway-authorizer"]["type"] == "request"
    seen_public = set()
    for path, path_item in body["paths"].items():
        for method, operation in path_item.items():
            route = (
                f"{'ANY' if method == 'x-amazon-apigateway-any-method' else method.upper()} {path}"
            )
            if route in PUBLIC_ROUTES:
                seen_public.add(route)
                assert operation["security"] == [{"NONE": []}], route
            else:
                assert operation["security"] == [{"LucidAuthorizer": []}], route
    assert seen_public == PUBLIC_ROUTES


def test_stage_has_throttling_and_access_logging(cloudformation: dict[str, Any]) -> None:
    (stage,) = resources_of(cloudformation, "AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["DefaultRouteSettings"]
    assert {"ThrottlingBurstLimit", "ThrottlingRateLimit"} <= set(settings)
    assert "DestinationArn" in stage["Properties"]["AccessLogSettings"]


def test_every_function_is_python311_with_the_layer_and_untraced(
    cloudformation: dict[str, Any],
) -> None:
    functions = resources_of(cloudformation, "AWS::Lambda::Function")
    assert len(functions) >= 6
    for name, function in functions.items():
        props = function["Properties"]
        assert props["Runtime"] == "python3.11", name
        # No X-Ray: no Tracer in the code, whose cold-start cost bench/coldstart.py measures
        assert props.get("TracingConfig", {"Mode": "PassThrough"}) == {"Mode": "PassThrough"}, name
        (layer,) = props["Layers"]
        assert layer["Ref"].startswith("SharedLayer"), name
        assert props["Handler"] == "app.handler", name


def test_secrets_are_noecho_parameters(sam_template: dict[str, Any]) -> None:
    parameters = sam_template["Parameters"]
    for name in ("JwtSecretKey", "MongoDbUri", "RedisUri"):
        assert parameters[name]["NoEcho"] is True


def test_the_layer_and_every_function_are_built_by_infra_makefile(
    sam_template: dict[str, Any],
) -> None:
    # GIVEN the layer and the functions of the template
    resources = sam_template["Resources"]
    built = {
        name: resource
        for name, resource in resources.items()
        if resource["Type"] in {"AWS::Serverless::Function", "AWS::Serverless::LayerVersion"}
    }
    # THEN `sam build` runs infra/Makefile for each (it ships their bytecode), in a scratch copy of
    # a folder holding the code and its requirements.txt
    for name, resource in built.items():
        assert resource["Metadata"]["BuildMethod"] == "makefile", name
        assert (TEMPLATE.parent / resource["Metadata"]["ContextPath"] / "Makefile").is_file(), name
    layer = resources["SharedLayer"]["Properties"]
    content = (TEMPLATE.parent / layer["ContentUri"]).resolve()
    assert (content / "lucid" / "__init__.py").is_file()
    assert (content / "requirements.txt").is_file()


def test_every_function_handler_loads_from_its_code_uri(sam_template: dict[str, Any]) -> None:
    functions = {
        name: res["Properties"]
        for name, res in sam_template["Resources"].items()
        if res["Type"] == "AWS::Serverless::Function"
    }
    for name, props in functions.items():
        folder = (TEMPLATE.parent / props["CodeUri"]).resolve()
        module_name, attribute = props["Handler"].rsplit(".", 1)
        assert (folder / "requirements.txt").is_file(), name
        module = load_module(folder.name, module_name)
        assert callable(getattr(module, attribute)), name


@pytest.mark.parametrize(
    ("overrides", "origins", "credentials"),
    [
        ({}, ["http://localhost:3000", "https://lucid.onion"], True),
        ({"CorsOrigins": "https://lucid.onion", "CorsAllowCredentials": "false"},
         ["https://lucid.onion"], None),
    ],
)  # fmt: skip
def test_cors_survives_the_transform_with_its_list_of_origins_and_credentials(
    sam_template: dict[str, Any],
    overrides: dict[str, str],
    origins: list[str],
    credentials: bool | None,
) -> None:
    # GIVEN what the real SAM transform makes of CorsConfiguration for these parameter values
    translated = transform(
        packaged(sam_template), parameter_values={"AWS::Region": "us-east-1", **overrides}
    )
    (api,) = resources_of(translated, "AWS::ApiGatewayV2::Api").values()
    values = {
        name: overrides.get(name, spec.get("Default", ""))
        for name, spec in sam_template["Parameters"].items()
    }
    resolver = Resolver(values, frozenset(translated["Resources"]), translated["Conditions"])
    # WHEN CloudFormation evaluates it (the intrinsics left in the API's Body)
    cors = resolver.resolve(api["Properties"]["Body"]["x-amazon-apigateway-cors"], "cors")
    # THEN API Gateway gets a list of origins (not one comma-joined string), the credentials
    # flag, and every other key: SAM dropped nothing
    assert cors["allowOrigins"] == origins
    assert cors.get("allowCredentials") is credentials
    assert {"allowMethods", "allowHeaders", "exposeHeaders", "maxAge"} <= set(cors)
    assert "if-match" in cors["allowHeaders"]
    assert "location" in cors["exposeHeaders"]


def test_no_route_behind_the_authorizer_catches_a_cors_preflight(
    cloudformation: dict[str, Any],
) -> None:
    # GIVEN the routes of the transformed API, which has a CorsConfiguration
    (api,) = resources_of(cloudformation, "AWS::ApiGatewayV2::Api").values()
    body = api["Properties"]["Body"]
    assert "x-amazon-apigateway-cors" in body
    # WHEN a browser sends the preflight of a signed-in call (OPTIONS, without Authorization)
    catching = [
        f"{method} {path}"
        for path, path_item in body["paths"].items()
        for method, operation in path_item.items()
        if method in ("x-amazon-apigateway-any-method", "options")
        and operation["security"] != [{"NONE": []}]
    ]
    # THEN no route behind the authorizer matches it: API Gateway answers a preflight itself
    # only when no route matches OPTIONS on that path; an ANY (or OPTIONS) route receives it,
    # and its authorizer answers 401 for want of an Authorization header, so the browser never
    # makes the call (http-api-cors.html on the $default route; notes/aws-facts.md section 6).
    assert catching == []


# Lambda refuses a function's resource-based policy over 20 KB ("The final policy size is
# bigger than the limit", a quota that cannot be raised: AWS Knowledge Center,
# lambda-resource-based-policy-size-error). SAM adds one statement per HttpApi route.
POLICY_LIMIT_BYTES = 20 * 1024
LONG_STACK_NAME = "lucid-api-gateway-" + "x" * 22  # 40 characters, longer than any samconfig's


def _resource_policy_sizes(cloudformation: dict[str, Any]) -> dict[str, int]:
    """Each function's resource policy as Lambda would store it, in bytes (compact JSON): the
    statements CloudFormation adds for the transform's AWS::Lambda::Permission resources, with a
    long stack name in their ids and in the function's generated name."""
    statements: dict[str, list[dict[str, Any]]] = {}
    for logical_id, resource in resources_of(cloudformation, "AWS::Lambda::Permission").items():
        props = resource["Properties"]
        function = props["FunctionName"].get("Ref") or props["FunctionName"]["Fn::GetAtt"][0]
        source, values = props["SourceArn"]["Fn::Sub"]
        for name, value in {
            "AWS::Partition": "aws",
            "AWS::Region": "ap-southeast-2",
            "AWS::AccountId": "123456789012",
            "__ApiId__": "a1b2c3d4e5",
            "__Stage__": values.get("__Stage__", "*"),
        }.items():
            source = source.replace("${" + name + "}", value)
        statements.setdefault(function, []).append(
            {
                "Sid": f"{LONG_STACK_NAME}-{logical_id}-1A2B3C4D5E6F7",
                "Effect": "Allow",
                "Principal": {"Service": props["Principal"]},
                "Action": props["Action"],
                "Resource": "arn:aws:lambda:ap-southeast-2:123456789012:function:"
                f"{LONG_STACK_NAME}-{function}-AbCdEf123456",
                "Condition": {"ArnLike": {"AWS:SourceArn": source}},
            }
        )
    return {
        function: len(
            json.dumps(
                {"Version": "2012-10-17", "Id": "default", "Statement": listed},
                separators=(",", ":"),
            )
        )
        for function, listed in statements.items()
    }


def test_every_function_s_resource_policy_stays_well_under_lambda_s_limit(
    cloudformation: dict[str, Any],
) -> None:
    # GIVEN the permissions the transform gives API Gateway, one per route
    sizes = _resource_policy_sizes(cloudformation)
    # THEN each function's policy, with a long stack name, keeps a tenth of the limit free
    assert set(sizes) >= {"ProxyFunction", "UsersFunction", "SessionsFunction"}
    assert {name: size for name, size in sizes.items() if size > 0.9 * POLICY_LIMIT_BYTES} == {}


# Response headers a script may read without being exposed (Fetch standard, "CORS-safelisted
# response-header name"), and Content-Encoding, which only the API reference's static assets
# send and which the browser itself acts on.
_READABLE_WITHOUT_EXPOSE = {
    "cache-control", "content-language", "content-length", "content-type", "expires",
    "last-modified", "pragma", "content-encoding",
}  # fmt: skip


def _headers_of_responses(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "headers" and isinstance(item, dict):
                found.update(name.split(".")[0].lower() for name in item)
            found |= _headers_of_responses(item)
    elif isinstance(value, list):
        for item in value:
            found |= _headers_of_responses(item)
    return found


def test_cors_exposes_every_response_header_the_api_reference_documents(
    sam_template: dict[str, Any], cloudformation: dict[str, Any]
) -> None:
    # GIVEN the headers the API reference says the routes answer with
    document = json.loads((TEMPLATE.parents[1] / "functions/meta/openapi.json").read_text())
    documented = _headers_of_responses(document["paths"]) - _READABLE_WITHOUT_EXPOSE
    # WHEN CloudFormation evaluates the API's CORS configuration with the template's defaults
    (api,) = resources_of(cloudformation, "AWS::ApiGatewayV2::Api").values()
    values = {name: spec.get("Default", "") for name, spec in sam_template["Parameters"].items()}
    resources = frozenset(cloudformation["Resources"])
    resolver = Resolver(values, resources, cloudformation["Conditions"])
    cors = resolver.resolve(api["Properties"]["Body"]["x-amazon-apigateway-cors"], "cors")
    # THEN a browser script can read each of them (Access-Control-Expose-Headers)
    assert documented - {name.lower() for name in cors["exposeHeaders"]} == set()


def test_no_function_outlives_the_admins_lease(cloudformation: dict[str, Any]) -> None:
    # A holder of a MongoDB lease (lucid.store.lease) must be gone before its lease expires:
    # Lambda resets an environment whose invocation timed out, so its Timeout bounds a holder.
    functions = resources_of(cloudformation, "AWS::Lambda::Function")
    for name, function in functions.items():
        assert function["Properties"]["Timeout"] < LEASE_SECONDS - CLOCK_SKEW_SECONDS, name
