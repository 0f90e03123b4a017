"""What only a deployed stack has is accepted and named once; what AWS would refuse is refused.

Deploy-only: permissions, log groups, monitoring, a VPC, reserved or provisioned concurrency,
aliases, /tmp size, a custom domain. Refused as CloudFormation / SAM refuse them: parameters
breaking AllowedPattern or Min/MaxValue, a failing Rule, the CorsConfiguration forms the SAM
transform does not deploy as written, an invalid stage name.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lucid_edge.template import TemplateError, load_template
from tests.edge.harness import TEMPLATE

FUNCTIONS = TEMPLATE.parent / "functions"


def _template(tmp_path: Path, *, function: str = "", api: str = "", extra: str = "") -> Path:
    """A one-function, one-route template with `function`/`api` properties and `extra` text."""
    text = textwrap.dedent(
        """\
        Transform: AWS::Serverless-2016-10-31
        {extra}
        Resources:
          Api:
            Type: AWS::Serverless::HttpApi
            Properties:
              StageName: $default
        {api}
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              Runtime: python3.11
              CodeUri: functions/echo/
              Handler: app.handler
        {function}
              Events:
                Route:
                  Type: HttpApi
                  Properties: {{ApiId: !Ref Api, Method: GET, Path: /x}}
        """
    ).format(
        extra=extra,
        api=textwrap.indent(textwrap.dedent(api), " " * 6),
        function=textwrap.indent(textwrap.dedent(function), " " * 6),
    )
    path = tmp_path / "template.yaml"
    path.write_text(text)
    if not (tmp_path / "functions").exists():
        (tmp_path / "functions").symlink_to(FUNCTIONS)
    return path


DEPLOY_ONLY_RESOURCES = """\
Resources:
  FnRole: {Type: AWS::IAM::Role, Properties: {AssumeRolePolicyDocument: {}}}
  ReadPolicy: {Type: AWS::IAM::ManagedPolicy, Properties: {PolicyDocument: {}}}
  Logs: {Type: AWS::Logs::LogGroup}
  Errors: {Type: AWS::CloudWatch::Alarm, Properties: {MetricName: Errors}}
  Board: {Type: AWS::CloudWatch::Dashboard, Properties: {DashboardBody: "{}"}}
  Pager: {Type: AWS::SNS::Topic}
  PagerMail: {Type: AWS::SNS::Subscription, Properties: {TopicArn: !Ref Pager}}
"""


def test_deploy_only_properties_and_resources_are_accepted_and_named_once(
    tmp_path: Path,
) -> None:
    # GIVEN production hardening on the function, the API and beside them
    path = _template(
        tmp_path,
        function="""\
            VpcConfig: {SubnetIds: [subnet-1], SecurityGroupIds: [sg-1]}
            ReservedConcurrentExecutions: 5
            AutoPublishAlias: live
            ProvisionedConcurrencyConfig: {ProvisionedConcurrentExecutions: 2}
            EphemeralStorage: {Size: 1024}
            Role: !GetAtt FnRole.Arn
        """,
        api="Domain: {DomainName: api.lucid.example, CertificateArn: arn:aws:acm:x}\n",
    )
    text = path.read_text().replace("Resources:\n", DEPLOY_ONLY_RESOURCES, 1)
    path.write_text(text)
    # WHEN the edge loads it
    template = load_template(path)
    # THEN it serves the route, and names each deploy-only part exactly once
    assert [route.route_key for route in template.api.routes] == ["GET /x"]
    assert template.deploy_only == (
        "Resources.FnRole (AWS::IAM::Role)",
        "Resources.ReadPolicy (AWS::IAM::ManagedPolicy)",
        "Resources.Logs (AWS::Logs::LogGroup)",
        "Resources.Errors (AWS::CloudWatch::Alarm)",
        "Resources.Board (AWS::CloudWatch::Dashboard)",
        "Resources.Pager (AWS::SNS::Topic)",
        "Resources.PagerMail (AWS::SNS::Subscription)",
        "Resources.Fn.Properties.AutoPublishAlias",
        "Resources.Fn.Properties.EphemeralStorage",
        "Resources.Fn.Properties.ProvisionedConcurrencyConfig",
        "Resources.Fn.Properties.VpcConfig",
        "Resources.Api.Properties.Domain",
    )
    # AND the reserved concurrency is not deploy-only: the edge applies it per function
    assert template.functions["Fn"].reserved_concurrency == 5


def test_a_property_set_in_globals_is_named_once_for_every_function(tmp_path: Path) -> None:
    extra = "Globals:\n  Function:\n    VpcConfig: {SubnetIds: [s], SecurityGroupIds: [g]}\n"
    template = load_template(_template(tmp_path, extra=extra))
    assert template.deploy_only == ("Globals.Function.VpcConfig",)
    assert template.functions["Fn"].reserved_concurrency is None


def test_a_vpc_switched_off_by_its_condition_is_not_there_at_all() -> None:
    # The real template: VpcConfig is !If [InVpc, ..., !Ref AWS::NoValue]
    real = TEMPLATE.parents[3] / "infra" / "template.yaml"
    assert not any("VpcConfig" in item for item in load_template(real).deploy_only)
    vpc = {"VpcSubnetIds": "subnet-1,subnet-2", "VpcSecurityGroupIds": "sg-1"}
    named = load_template(real, vpc).deploy_only
    assert "Globals.Function.VpcConfig" in named
    assert "Resources.VpcNetworkInterfacesPolicy (AWS::IAM::ManagedPolicy)" in named


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        (
            {"function": "ReservedConcurrentExecutions: many\n"},
            "ReservedConcurrentExecutions: 'many' is not a count",
        ),
        (
            {"function": "ProvisionedConcurrencyConfig: {ProvisionedConcurrentExecutions: 1}\n"},
            "ProvisionedConcurrencyConfig: needs AutoPublishAlias",
        ),
        ({"function": "SnapStart: {ApplyOn: PublishedVersions}\n"}, "SnapStart: property is not"),
        (
            {"extra": "Resources:\n  Q: {Type: AWS::SQS::Queue}\n"},
            "Resources.Q.Type: 'AWS::SQS::Queue' is not supported",
        ),
    ],
)
def test_what_changes_how_a_request_is_answered_or_is_invalid_is_refused(
    tmp_path: Path, parts: dict[str, str], message: str
) -> None:
    path = _template(tmp_path, **{k: v for k, v in parts.items() if k != "extra"})
    if "extra" in parts:
        path.write_text(path.read_text().replace("Resources:\n", parts["extra"], 1))
    with pytest.raises(TemplateError, match=message):
        load_template(path)


PARAMETERS = """\
Parameters:
  Origins:
    Type: String
    Default: http://a.example
    AllowedPattern: "^https?://[^,]+(,https?://[^,]+)*$"
    ConstraintDescription: origins separated by commas
  Ttl: {Type: Number, Default: 60, MinValue: 0, MaxValue: 3600}
  Stage: {Type: String, Default: local}
  Secret: {Type: String, Default: ""}
Rules:
  SecretOffLocal:
    RuleCondition: !Not [!Equals [!Ref Stage, local]]
    Assertions:
      - Assert: !Not [!Equals [!Ref Secret, ""]]
        AssertDescription: Set Secret outside the local stage.
"""


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"Origins": '["http://a.example"]'},
            "Parameters.Origins: .* must match .*: origins separated by commas",
        ),
        ({"Ttl": "7200"}, r"Parameters.Ttl: '7200' is outside \[0, 3600\]"),
        ({"Ttl": "soon"}, "Parameters.Ttl: 'soon' is not a number"),
        ({"Stage": "prod"}, "Rules.SecretOffLocal: Set Secret outside the local stage."),
    ],
)
def test_parameters_and_rules_are_checked_as_cloudformation_checks_them(
    tmp_path: Path, overrides: dict[str, str], message: str
) -> None:
    path = _template(tmp_path, extra=PARAMETERS)
    load_template(path)  # the defaults pass
    load_template(path, {"Stage": "prod", "Secret": "/lucid/prod/x"})  # the rule holds
    with pytest.raises(TemplateError, match=message):
        load_template(path, overrides)


@pytest.mark.parametrize(
    ("cors", "message"),
    [
        (
            "CorsConfiguration: {AllowOrigins: !Split [',', !Ref Origins], AllowCredentials: true}",
            "CorsConfiguration.AllowOrigins: SAM deploys an intrinsic here without the other",
        ),
        (
            "CorsConfiguration: {AllowOrigins: [http://a], AllowCredentials: !Equals [a, a]}",
            "CorsConfiguration.AllowCredentials: SAM drops a value that is not a literal",
        ),
        ("StageName: 'dev stage'", "StageName: 'dev stage' is not an HTTP API stage name"),
    ],
)
def test_api_forms_aws_would_not_deploy_as_written_are_refused(
    tmp_path: Path, cors: str, message: str
) -> None:
    path = _template(tmp_path, api=cors + "\n", extra=PARAMETERS)
    path.write_text(path.read_text().replace("      StageName: $default\n", "", 1))
    with pytest.raises(TemplateError, match=message):
        load_template(path)


def test_a_whole_map_intrinsic_cors_configuration_is_served(tmp_path: Path) -> None:
    cors = """\
        CorsConfiguration: !If
          - Creds
          - {AllowOrigins: !Split [",", !Ref Origins], AllowCredentials: true}
          - {AllowOrigins: !Split [",", !Ref Origins]}
    """
    extra = PARAMETERS + "Conditions:\n  Creds: !Equals [!Ref Stage, local]\n"
    path = _template(tmp_path, api=cors, extra=extra)
    cors_spec = load_template(path, {"Origins": "http://a.example,https://b.example"}).api.cors
    assert cors_spec is not None
    assert cors_spec.allow_origins == ("http://a.example", "https://b.example")
    assert cors_spec.allow_credentials is True
