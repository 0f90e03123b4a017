"""The SAM template loader: what the edge serves, and loud refusals of what it cannot."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from lucid_edge.intrinsics import Resolver, TemplateError
from lucid_edge.loader import load_handler
from lucid_edge.model import Throttle
from lucid_edge.template import _merge_global, apply_environment, load_template, parse_overrides
from tests.edge.harness import TEMPLATE

REPO = Path(__file__).resolve().parents[2]


def test_real_template_loads_with_every_route_and_the_authorizer() -> None:
    # GIVEN the project's template WHEN the edge loads it
    template = load_template(REPO / "infra" / "template.yaml")
    api = template.api
    keys = {route.route_key: route for route in api.routes}
    # THEN the routes, authorizer, CORS and throttling are those of the template
    assert keys["GET /health"].authorizer is None
    assert keys["GET /users/{id}"].authorizer == "LucidAuthorizer"
    assert keys["GET /chain/{proxy+}"].function == "ProxyFunction"
    assert keys["POST /manifests"].function == "ProxyFunction"  # collection roots route too
    assert not [key for key in keys if key.startswith(("ANY ", "OPTIONS "))]  # preflights
    assert api.stage == "$default"  # served at the root, as deployed (ApiStageName)
    assert api.authorizers["LucidAuthorizer"].identity_headers == ("authorization",)
    assert api.authorizers["LucidAuthorizer"].simple_responses is True
    burst, rate = (template.parameters[f"Throttling{k}Limit"] for k in ("Burst", "Rate"))
    assert api.default_throttle == Throttle(burst=int(burst), rate=float(rate))
    assert api.cors is not None
    assert api.cors.max_age == 600
    assert template.functions["MetaFunction"].timeout == 10
    assert template.environment["STAGE"] == "local"
    assert "JWT_SECRET_KEY" not in template.environment  # "" means unset


def test_every_function_of_the_real_template_that_exists_loads() -> None:
    template = load_template(REPO / "infra" / "template.yaml")
    loaded, missing = [], []
    for spec in template.functions.values():
        if not (spec.code_uri / "app.py").exists():
            missing.append(spec.logical_id)  # written in a later issue
            continue
        function = load_handler(spec.code_uri, spec.handler)
        assert callable(function.handler)
        loaded.append(spec.logical_id)
    assert "MetaFunction" in loaded
    if missing:
        pytest.skip(f"functions without app.py yet: {', '.join(missing)}")


def test_fixture_template_resolves_parameters_conditions_and_globals() -> None:
    template = load_template(TEMPLATE)
    echo = template.functions["EchoFunction"]
    assert echo.timeout == 3
    assert echo.memory_size == 256
    assert echo.code_uri == TEMPLATE.parent / "functions" / "echo"
    assert template.functions["FaultyFunction"].timeout == 1
    assert template.environment == {"EDGE_TEST_GREETING": "hello-test"}
    assert template.api.cors is not None
    assert template.api.cors.allow_credentials is True
    assert template.api.cors.allow_origins == ("http://allowed.example", "http://other.example")
    policy = template.api.authorizers["Policy"]
    assert policy.simple_responses is False
    assert policy.ttl_seconds == 0


def test_parameter_overrides_change_the_served_api() -> None:
    template = load_template(
        TEMPLATE, parse_overrides(["Stage=prod", "ApiStage=prod", "Greeting=hi"])
    )
    assert template.api.stage == "prod"
    assert template.api.cors is not None
    assert template.api.cors.allow_credentials is False
    assert template.environment["EDGE_TEST_GREETING"] == "hi-prod"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [(["Nope=1"], "unknown parameters: Nope"), (["Stage"], "is not Key=Value")],
)
def test_bad_overrides_fail_loudly(overrides: list[str], message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        load_template(TEMPLATE, parse_overrides(overrides))


def test_process_environment_wins_over_the_template() -> None:
    template = load_template(TEMPLATE)
    environ = {"EDGE_TEST_GREETING": "from-shell"}
    assert apply_environment(template, environ) == {}
    assert environ == {"EDGE_TEST_GREETING": "from-shell"}
    fresh: dict[str, str] = {}
    assert apply_environment(template, fresh) == {"EDGE_TEST_GREETING": "hello-test"}
    assert "EDGE_TEST_EMPTY" not in fresh


_BASE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
{extra}
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      StageName: test
{api}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: {runtime}
      CodeUri: functions/faulty/
      Handler: app.handler
{function}
      Events:
        Route:
          Type: {event_type}
          Properties:
            ApiId: !Ref Api
            Method: GET
            Path: {path}
{event}
{resources}
"""


def _write(tmp_path: Path, **parts: str) -> Path:
    values = {"extra": "", "api": "", "runtime": "python3.11", "function": "", "event": "",
              "event_type": "HttpApi", "path": "/x", "resources": ""}  # fmt: skip
    values.update(parts)
    path = tmp_path / "template.yaml"
    path.write_text(_BASE.format(**values))
    (tmp_path / "functions").symlink_to(TEMPLATE.parent / "functions")
    return path


def _indent(text: str, spaces: int) -> str:
    return textwrap.indent(textwrap.dedent(text), " " * spaces)


UNSUPPORTED = {
    "rest api event": ({"event_type": "Api"}, "Resources.Fn.Properties.Events.Route.Type"),
    "rest api resource": (
        {"resources": _indent("Rest:\n  Type: AWS::Serverless::Api\n", 2)},
        "Resources.Rest.Type",
    ),
    "jwt authorizer": (
        {"api": _indent("Auth:\n  Authorizers:\n    Jwt:\n      JwtConfiguration: {}\n", 6)},
        "Resources.Api.Properties.Auth.Authorizers.Jwt",
    ),
    "definition body": (
        {"api": _indent("DefinitionBody: {}\n", 6)},
        "Resources.Api.Properties.DefinitionBody",
    ),
    "image function": (
        {"function": _indent("PackageType: Image\n", 6)},
        "Resources.Fn.Properties.PackageType",
    ),
    "node runtime": ({"runtime": "nodejs20.x"}, "Resources.Fn.Properties.Runtime"),
    "unknown function property": (
        {"function": _indent("InlineCode: x\n", 6)},
        "Resources.Fn.Properties.InlineCode",
    ),
    "unknown intrinsic": (
        {"function": _indent("Description: !FindInMap [A, B, C]\n", 6)},
        "Resources.Fn.Properties.Description: intrinsic function Fn::FindInMap",
    ),
    "conflicting environment": (
        {
            "function": _indent("Environment: {Variables: {MODE: a}}\n", 6),
            "resources": _indent(
                "Other:\n  Type: AWS::Serverless::Function\n  Properties:\n"
                "    Runtime: python3.11\n    CodeUri: functions/echo/\n    Handler: app.handler\n"
                "    Environment: {Variables: {MODE: b}}\n",
                2,
            ),
        },
        "Environment.Variables.MODE",
    ),
    "payload 1.0": (
        {"event": _indent('PayloadFormatVersion: "1.0"\n', 12)},
        "Events.Route.Properties.PayloadFormatVersion",
    ),
    "undeclared authorizer": (
        {"event": _indent("Auth: {Authorizer: Missing}\n", 12)},
        "authorizer 'Missing'",
    ),
    "iam authorizer": ({"event": _indent("Auth: {Authorizer: AWS_IAM}\n", 12)}, "'AWS_IAM'"),
    "stage variables": (
        {"api": _indent("StageVariables: {a: b}\n", 6)},
        "Resources.Api.Properties.StageVariables",
    ),
    "globals api": ({"extra": "Globals:\n  Api: {}\n"}, "Globals.Api"),
    # SAM refuses these Globals ("'StageName' is not a supported property of 'HttpApi'")
    "globals stage name": (
        {"extra": "Globals:\n  HttpApi: {StageName: g}\n"},
        "Globals.HttpApi.StageName: SAM does not take this property from Globals",
    ),
    "globals not a mapping": ({"extra": "Globals: [1]\n"}, "Globals: must be a mapping"),
    "globals section not a mapping": (
        {"extra": "Globals:\n  Function: [1]\n"},
        "Globals.Function: must be a mapping",
    ),
    "globals events": (
        {"extra": "Globals:\n  Function: {Events: {}}\n"},
        "Globals.Function.Events: SAM does not take",
    ),
    "wildcard origin with credentials": (
        {"api": _indent("CorsConfiguration: {AllowOrigins: ['*'], AllowCredentials: true}\n", 6)},
        "CorsConfiguration.AllowCredentials",
    ),
    "parameter without default": (
        {"extra": "Parameters:\n  Needed: {Type: String}\n"},
        "Parameters.Needed",
    ),
    "ssm parameter type": (
        {"extra": "Parameters:\n  P: {Type: 'AWS::SSM::Parameter::Value<String>', Default: x}\n"},
        "Parameters.P.Type",
    ),
    "greedy segment not last": ({"path": "/{proxy+}/x"}, "Events.Route.Path"),
    "two http apis": (
        {"resources": _indent("Api2:\n  Type: AWS::Serverless::HttpApi\n", 2)},
        "the local edge serves one HttpApi",
    ),
    "unknown ref": (
        {"function": _indent("Description: !Ref Nothing\n", 6)},
        "Resources.Fn.Properties.Description: !Ref to unknown",
    ),
    "authorizer payload 1.0": (
        {
            "api": _indent(
                "Auth:\n  Authorizers:\n    A:\n      FunctionArn: !GetAtt Fn.Arn\n"
                "      AuthorizerPayloadFormatVersion: '1.0'\n",
                6,
            )
        },
        "Auth.Authorizers.A.AuthorizerPayloadFormatVersion",
    ),
    "settings not a mapping": (
        {"api": _indent("DefaultRouteSettings: [1]\n", 6)},
        "DefaultRouteSettings: expected a mapping",
    ),
    "unknown route setting": (
        {"event": _indent("RouteSettings: {ThrottlingBurst: 1}\n", 12)},
        "RouteSettings.ThrottlingBurst",
    ),
    "bad method": ({"event": "", "path": "/x\n            Method: FETCH"}, "Route.Method"),
    "bad path": ({"path": "/a{b}"}, "Events.Route.Path"),
    "path with a trailing slash": ({"path": "/events/"}, "Route.Path: '/events/' has an empty"),
    "path with an empty segment": ({"path": "/a//b"}, "Route.Path: '/a//b' has an empty segment"),
    "event on another api": (
        {"event": _indent("ApiId: Elsewhere\n", 12)},
        "Events.Route.Properties.ApiId",
    ),
    "duplicate route": (
        {
            "resources": _indent(
                "Fn2:\n  Type: AWS::Serverless::Function\n  Properties:\n    Runtime: python3.11\n"
                "    CodeUri: functions/echo/\n    Handler: app.handler\n    Events:\n"
                "      Same: {Type: HttpApi,\n"
                "             Properties: {ApiId: !Ref Api, Method: GET, Path: /x}}\n",
                2,
            )
        },
        "route 'GET /x' is declared twice",
    ),
    "not in allowed values": (
        {"extra": "Parameters:\n  P: {Type: String, Default: x, AllowedValues: [a, b]}\n"},
        "Parameters.P",
    ),
    "handler without function": (
        {"function": _indent("Description: x\n", 6) + "      Handler: handler\n"},
        "CodeUri/Handler",
    ),
    "unknown top-level section": ({"extra": "Mappings: {}\n"}, "Mappings: top-level section"),
    "authorizer arn not a function": (
        {"api": _indent("Auth:\n  Authorizers:\n    A:\n      FunctionArn: arn:x\n", 6)},
        "Auth.Authorizers.A.FunctionArn",
    ),
    "timeout beyond lambda's": (
        {"function": _indent("Timeout: 901\n", 6)},
        "Resources.Fn.Properties.Timeout: 901 is outside Lambda's 1-900 seconds",
    ),
    "negative reserved concurrency": (
        {"function": _indent("ReservedConcurrentExecutions: -1\n", 6)},
        "Resources.Fn.Properties.ReservedConcurrentExecutions",
    ),
    # AuthorizerResultTtlInSeconds is 300 when unset and "the identity source ... is required
    # when authorization caching is enabled" (apigatewayv2 API reference, Authorizer): SAM writes
    # no identitySource without Identity.Headers/QueryStrings (ApiGatewayV2Authorizer).
    "authorizer cache without identity source": (
        {
            "api": _indent(
                "Auth:\n  Authorizers:\n    A:\n      FunctionArn: !GetAtt Fn.Arn\n"
                "      AuthorizerPayloadFormatVersion: '2.0'\n",
                6,
            )
        },
        "Auth.Authorizers.A.Identity: caching (ReauthorizeEvery, 300 when unset) needs",
    ),
    "authorizer ttl over an hour": (
        {
            "api": _indent(
                "Auth:\n  Authorizers:\n    A:\n      FunctionArn: !GetAtt Fn.Arn\n"
                "      AuthorizerPayloadFormatVersion: '2.0'\n"
                "      Identity: {Headers: [Authorization], ReauthorizeEvery: 3601}\n",
                6,
            )
        },
        "Auth.Authorizers.A.Identity.ReauthorizeEvery: 3601 is not 0-3600",
    ),
    "authorizer api gateway may not invoke": (
        {
            "api": _indent(
                "Auth:\n  Authorizers:\n    A:\n      FunctionArn: !GetAtt Fn.Arn\n"
                "      AuthorizerPayloadFormatVersion: '2.0'\n"
                "      Identity: {Headers: [Authorization]}\n",
                6,
            )
        },
        "Auth.Authorizers.A.EnableFunctionDefaultPermissions: API Gateway may not invoke Fn",
    ),
    "integration timeout beyond 30 s": (
        {"event": _indent("TimeoutInMillis: 30001\n", 12)},
        "Events.Route.Properties.TimeoutInMillis: 30001 is not 50-30000",
    ),
}


@pytest.mark.parametrize("case", list(UNSUPPORTED))
def test_unsupported_template_features_fail_loudly(tmp_path: Path, case: str) -> None:
    parts, message = UNSUPPORTED[case]
    with pytest.raises(TemplateError) as caught:
        load_template(_write(tmp_path, **parts))
    assert message in str(caught.value)


def test_unreadable_and_invalid_templates_fail_loudly(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="cannot read"):
        load_template(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [\n")
    with pytest.raises(TemplateError, match="not valid YAML"):
        load_template(bad)
    bad.write_text("- a\n")
    with pytest.raises(TemplateError, match="not a mapping"):
        load_template(bad)


def test_resolver_evaluates_the_supported_intrinsics() -> None:
    resolver = Resolver(
        {"Names": ["a", "b", "c"], "Env": "prod"},
        frozenset({"Fn"}),
        {"IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]}},
    )
    value = {
        "select": {"Fn::Select": [1, {"Ref": "Names"}]},
        "split": {"Fn::Split": [",", "x,y"]},
        "join": {"Fn::Join": ["-", {"Ref": "Names"}]},
        "sub": {"Fn::Sub": ["${Fn.Arn} ${X} ${AWS::Region} ${Names} ${!Literal}", {"X": "y"}]},
        "logic": {"Fn::And": [{"Condition": "IsProd"}, {"Fn::Not": [{"Fn::Or": [False]}]}]},
        "gone": {"Fn::If": ["IsProd", {"Ref": "AWS::NoValue"}, "kept"]},
        "list": ["a", {"Ref": "AWS::NoValue"}],
        "ref": {"Ref": "Fn"},
    }
    resolved = resolver.resolve(value, "Test")
    assert resolved["select"] == "b"
    assert resolved["split"] == ["x", "y"]
    assert resolved["join"] == "a-b-c"
    assert resolved["sub"].endswith(" y us-east-1 a,b,c ${Literal}")
    assert resolved["sub"].startswith("arn:")
    assert "Fn/Arn" in resolved["sub"]
    assert resolved["logic"] is True
    assert "gone" not in resolved
    assert resolved["list"] == ["a"]
    assert resolved["ref"] == "Fn"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"Fn::If": ["Nope", 1, 2]}, "unknown condition"),
        ({"Fn::If": [1]}, "!If needs"),
        ({"Fn::Join": [","]}, "!Join needs"),
        ({"Fn::Join": [",", "x"]}, "a list to join"),
        ({"Fn::Equals": [1]}, "!Equals needs"),
        ({"Fn::Select": [5, ["a"]]}, "out of range"),
        ({"Fn::Select": [0]}, "!Select needs"),
        ({"Fn::Split": [","]}, "!Split needs"),
        ({"Fn::Not": [True, False]}, "list of conditions"),
        ({"Fn::Sub": 3}, "needs a string"),
        ({"Fn::GetAtt": ["Nothing", "Arn"]}, "names no resource"),
        ({"Fn::ImportValue": "x"}, "Fn::ImportValue is not supported"),
    ],
)
def test_resolver_refuses_malformed_intrinsics(value: object, message: str) -> None:
    resolver = Resolver({}, frozenset(), {})
    with pytest.raises(TemplateError, match=message):
        resolver.resolve(value, "Where")


def test_environment_is_left_untouched_by_loading() -> None:
    before = dict(os.environ)
    load_template(TEMPLATE)
    assert dict(os.environ) == before


def test_globals_http_api_default_route_and_integration_timeout(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            Globals:
              HttpApi:
                CorsConfiguration: true
              Function:
                Environment: {Variables: {FLAG: true}}
            Resources:
              Api:
                Type: AWS::Serverless::HttpApi
                Properties:
                  StageName: s
                  DefaultRouteSettings: {ThrottlingBurstLimit: 7}
              Fn:
                Type: AWS::Serverless::Function
                Properties:
                  Runtime: python3.11
                  CodeUri: fn/
                  Handler: app.handler
                  Timeout: 120
                  ReservedConcurrentExecutions: 5
                  Events:
                    Everything:
                      Type: HttpApi
                      Properties: {ApiId: !Ref Api, TimeoutInMillis: 1500}
            """
        )
    )
    template = load_template(path)
    (route,) = template.api.routes
    assert route.route_key == "$default"
    # The integration's timeout and the function's own are kept apart (each has its answer).
    assert route.timeout == 1.5
    assert template.functions["Fn"].timeout == 120
    assert template.functions["Fn"].reserved_concurrency == 5
    assert template.api.stage == "s"
    assert template.api.cors is not None
    assert template.api.cors.allow_origins == ("*",)
    assert template.api.default_throttle == Throttle(burst=7, rate=10000.0)
    assert template.environment == {"FLAG": "true"}


_GLOBALS_TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Conditions:
  Short: !Equals [a, a]
Globals:
  Function:
    Timeout: !Ref AWS::NoValue
    MemorySize: 256
    Environment: {{Variables: {{FROM_GLOBALS: g, BOTH: g}}}}
  HttpApi:
    CorsConfiguration:
      AllowOrigins: [https://a.example]
      AllowHeaders: [x-a]
    Auth:
      Authorizers:
        A:
          FunctionArn: !GetAtt Fn.Arn
          AuthorizerPayloadFormatVersion: "2.0"
          EnableFunctionDefaultPermissions: true
          Identity: {{Headers: [Authorization], ReauthorizeEvery: 0}}
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
{api_attributes}
    Properties:
      CorsConfiguration:
        AllowOrigins: [https://b.example]
      Auth:
        Authorizers:
          A:
            Identity: {{Headers: [X-Tenant]}}
  Fn:
    Type: AWS::Serverless::Function
{fn_attributes}
    Properties:
      Runtime: python3.11
      CodeUri: functions/faulty/
      Handler: app.handler
      Timeout: !If [Short, 5, 6]
      Environment: {{Variables: {{BOTH: local}}}}
      Events:
        Route: {{Type: HttpApi, Properties: {{ApiId: !Ref Api, Method: GET, Path: /x}}}}
"""


def _globals_template(tmp_path: Path, api_attributes: str = "", fn_attributes: str = "") -> Path:
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "template.yaml"
    path.write_text(
        _GLOBALS_TEMPLATE.format(api_attributes=api_attributes, fn_attributes=fn_attributes)
    )
    (tmp_path / "functions").symlink_to(TEMPLATE.parent / "functions")
    return path


def test_globals_merge_as_the_sam_transform_merges_them(tmp_path: Path) -> None:
    # GIVEN Globals and resources that both set maps, lists and intrinsics
    # WHEN the edge loads the template
    template = load_template(_globals_template(tmp_path))
    api = template.api
    # THEN lists concatenate, Globals' items first (GlobalProperties._merge_lists, checked by
    # running aws-sam-translator 1.115.0: allowOrigins [a, b], identitySource both headers)
    assert api.cors is not None
    assert api.cors.allow_origins == ("https://a.example", "https://b.example")
    assert api.cors.allow_headers == ("x-a",)
    assert api.authorizers["A"].identity_headers == ("authorization", "x-tenant")
    # AND maps merge key by key, the resource's value winning
    fn = template.functions["Fn"]
    assert fn.environment == {"FROM_GLOBALS": "g", "BOTH": "local"}
    assert fn.memory_size == 256
    # AND an intrinsic is a scalar: the resource's !If replaces the Globals' !Ref whole
    assert fn.timeout == 5


def test_ignore_globals_drops_what_it_names(tmp_path: Path) -> None:
    # GIVEN a function ignoring every Global, and an API ignoring its CorsConfiguration
    path = _globals_template(
        tmp_path,
        api_attributes="    IgnoreGlobals: [CorsConfiguration]",
        fn_attributes="    IgnoreGlobals: '*'",
    )
    # WHEN the edge loads it THEN only the resource's own values are left
    template = load_template(path)
    fn = template.functions["Fn"]
    assert (fn.memory_size, fn.environment) == (128, {"BOTH": "local"})
    assert template.api.cors is not None
    assert template.api.cors.allow_origins == ("https://b.example",)
    assert template.api.authorizers["A"].identity_headers == ("authorization", "x-tenant")
    # AND a name Globals does not set is refused, as SAM refuses it
    bad = _globals_template(tmp_path / "bad", fn_attributes="    IgnoreGlobals: [Layers]")
    with pytest.raises(TemplateError, match="IgnoreGlobals: 'Layers' is not set in Globals"):
        load_template(bad)
    worse = _globals_template(tmp_path / "worse", fn_attributes="    IgnoreGlobals: Timeout")
    with pytest.raises(TemplateError, match="IgnoreGlobals: '\\*' or a list of properties"):
        load_template(worse)


def test_globals_architectures_are_replaced_not_concatenated() -> None:
    # GIVEN SAM's one replaced list (CUSTOM_STRATEGIES "Function.Architectures": REPLACE)
    merged = _merge_global(
        {"Architectures": ["arm64"], "Layers": ["g"]},
        {"Architectures": ["x86_64"], "Layers": ["l"]},
        "Function",
    )
    # THEN the resource's architectures replace Globals', and other lists concatenate
    assert merged == {"Architectures": ["x86_64"], "Layers": ["g", "l"]}
