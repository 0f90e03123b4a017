"""The template's alarms, dashboard and log retention (issue 14): every metric they read is one
AWS documents for HTTP APIs and Lambda or one our code emits, the local edge's alert rules
mirror the alarms one for one with the same thresholds, an alarm on the account's own metrics is
deployed by one stack per account (AccountAlarms), and no function logs without retention.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from lucid import observability
from lucid.ratelimit.limiter import FALLBACK_METRIC
from lucid_edge.intrinsics import Resolver, TemplateError
from tests.infra.sam_tools import decode, lint, transform
from tests.infra.test_template import packaged
from tests.monitoring.exports import alert_rules

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
# The metrics AWS documents, by namespace:
# https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-metrics.html
# https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html and
# https://docs.aws.amazon.com/lambda/latest/dg/monitoring-concurrency.html
AWS_METRICS = {
    "AWS/ApiGateway": {"4xx", "5xx", "Count", "IntegrationLatency", "Latency", "DataProcessed"},
    "AWS/Lambda": {
        "Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions",
        "UnreservedConcurrentExecutions", "ClaimedAccountConcurrency",
    },
}  # fmt: skip
# The dimension sets each publishes (the HTTP API's per-stage ones, Lambda's per function and
# the Region's aggregate) and ours (lucid.observability, Powertools' cold start, the filter).
LUCID = "Lucid/${Stage}"  # our namespace, one per stage (the template's !Sub)
DIMENSIONS = {
    "AWS/ApiGateway": [{"ApiId", "Stage"}],
    "AWS/Lambda": [{"FunctionName"}, set()],
    LUCID: [{"service"}, {"service", "route"}, {"service", "function"},
              {"function_name", "service"}, {"ApiId"}],
}  # fmt: skip
_COUNTED = re.compile(r'\bcount\(\s*"(\w+)"')
_SEARCH = re.compile(r"SEARCH\('\{((?:[^}$]|\$\{\w+\})*)\} MetricName=\\?\"(\w+)\\?\"")


def emitted_metrics() -> set[str]:
    """Every metric name our code publishes in the Lucid namespace."""
    names = {observability.LATENCY, observability.FAULT, observability.CLIENT_ERROR}
    names |= {observability.COLD_START, FALLBACK_METRIC}
    for folder in ("shared", "functions"):
        for path in (ROOT / folder).rglob("*.py"):
            names |= set(_COUNTED.findall(path.read_text(encoding="utf-8")))
    return names


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, matches = decode(str(TEMPLATE))
    assert not matches
    assert decoded is not None
    return dict(decoded)


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == kind}


def _namespace(value: Any) -> str:
    """A namespace as the template writes it (`!Sub Lucid/${Stage}` kept as its text)."""
    return str(value["Fn::Sub"] if isinstance(value, dict) else value).strip('"')


def alarm_metrics(alarm: dict[str, Any]) -> list[tuple[str, str, set[str]]]:
    """(namespace, metric, dimension names) of every metric an alarm reads."""
    if "MetricName" in alarm:
        dims = {d["Name"] for d in alarm.get("Dimensions", [])}
        return [(_namespace(alarm["Namespace"]), alarm["MetricName"], dims)]
    found = []
    for query in alarm["Metrics"]:
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            dims = {d["Name"] for d in metric.get("Dimensions", [])}
            found.append((_namespace(metric["Namespace"]), metric["MetricName"], dims))
    return found


def dashboard_metrics(body: str) -> list[tuple[str, str, set[str]]]:
    """(namespace, metric, dimension names) of every metric the dashboard shows."""
    found = []
    for widget in json.loads(body)["widgets"]:
        for line in widget["properties"].get("metrics", []):
            if isinstance(line[0], dict):  # an expression: SEARCH('{ns,dims} MetricName="x"')
                for keys, name in _SEARCH.findall(line[0]["expression"]):
                    namespace, *dims = keys.split(",")
                    found.append((_namespace(namespace), name, set(dims)))
                continue
            strings = [item for item in line if isinstance(item, str)]
            found.append((strings[0], strings[1], set(strings[2::2])))
    return found


def dashboard_body(template: dict[str, Any]) -> str:
    """The dashboard's JSON as the template writes it, its `${...}` left in, except the !Sub's
    own variables (the alarm ARNs only some stacks have), left out."""
    (dashboard,) = of_type(template, "AWS::CloudWatch::Dashboard").values()
    sub = dashboard["DashboardBody"]["Fn::Sub"]
    if not isinstance(sub, list):
        return str(sub)
    text, own = sub
    return re.sub(r"\$\{(\w+)\}", lambda m: "" if m[1] in own else m[0], str(text))


def known(namespace: str, metric: str, dims: set[str], ours: set[str]) -> bool:
    names = ours if namespace == LUCID else AWS_METRICS.get(namespace, set())
    return metric in names and dims in DIMENSIONS[namespace]


def test_every_alarm_reads_a_metric_aws_documents_or_our_code_emits(
    template: dict[str, Any],
) -> None:
    ours = emitted_metrics() | {
        t["MetricName"]
        for f in of_type(template, "AWS::Logs::MetricFilter").values()
        for t in f["MetricTransformations"]
    }
    alarms = of_type(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) == 9
    for name, alarm in alarms.items():
        metrics = alarm_metrics(alarm)
        assert metrics, name
        for namespace, metric, dims in metrics:
            assert known(namespace, metric, dims, ours), f"{name}: {namespace} {metric} {dims}"


def test_the_check_tells_an_unknown_metric() -> None:
    ours = emitted_metrics()
    assert known(LUCID, "CircuitRejected", {"service"}, ours)
    assert not known(LUCID, "CircuitRejectd", {"service"}, ours)
    assert not known("AWS/ApiGateway", "5XXError", {"ApiId", "Stage"}, ours)  # REST's name
    assert not known(LUCID, "Latency", {"route"}, ours)  # never published without service


def test_every_dashboard_metric_is_one_aws_documents_or_our_code_emits(
    template: dict[str, Any],
) -> None:
    metrics = dashboard_metrics(dashboard_body(template))
    assert len(metrics) > 20
    ours = emitted_metrics() | {"ApiThrottled"}
    for namespace, metric, dims in metrics:
        assert known(namespace, metric, dims, ours), f"dashboard: {namespace} {metric} {dims}"


def test_each_graph_shows_what_its_title_says_on_a_grid_without_overlaps(
    template: dict[str, Any],
) -> None:
    # GIVEN the dashboard's widgets, and the metrics each graphs
    widgets = json.loads(dashboard_body(template))["widgets"]
    shown = {
        widget["properties"]["title"]: {
            metric for _, metric, _ in dashboard_metrics(json.dumps({"widgets": [widget]}))
        }
        for widget in widgets
    }
    # THEN the breakers' graph shows the breakers alone (it also plotted the stage throttle's
    # 429s), and those are on the throttles' graph, beside Lambda's throttles
    assert shown["Circuit breakers"] == {"CircuitOpened", "CircuitRejected"}
    assert [title for title, metrics in shown.items() if "ApiThrottled" in metrics] == [
        "Throttles: the API stage (429) and Lambda by function"
    ]
    assert shown["Throttles: the API stage (429) and Lambda by function"] == {
        "ApiThrottled",
        "Throttles",
    }
    # AND every widget fits CloudWatch's 24 columns and covers no other
    taken: set[tuple[int, int]] = set()
    for widget in widgets:
        x, y, width, height = (widget[k] for k in ("x", "y", "width", "height"))
        assert x + width <= 24, widget["properties"]["title"]
        cells = {(column, row) for column in range(x, x + width) for row in range(y, y + height)}
        assert not cells & taken, widget["properties"]["title"]
        taken |= cells


def test_the_local_alert_rules_mirror_the_alarms_one_for_one(template: dict[str, Any]) -> None:
    mirrored = {rule["labels"]["cloudwatch_alarm"] for rule in alert_rules()}
    assert mirrored == set(of_type(template, "AWS::CloudWatch::Alarm"))


def _readme_alarm_rows(heading: str) -> set[str]:
    """The alarms named in the first column of the README table that follows `heading`."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(f"\n{heading}\n", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`(\w+Alarm)`", row.split(" | ", 1)[0])}


def test_the_readme_says_what_each_alarm_reads_and_what_to_do_when_it_fires(
    template: dict[str, Any],
) -> None:
    # GIVEN the template's alarms
    alarms = set(of_type(template, "AWS::CloudWatch::Alarm"))
    # THEN the README's table of what each reads, and its table of what to do when one fires,
    # name exactly those
    assert _readme_alarm_rows("## Operate it: metrics, alarms and dashboards") == alarms
    assert _readme_alarm_rows("### When something fails: what it means and what to do") == alarms


def test_the_alert_thresholds_are_the_alarms_defaults(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    rules = {rule["labels"]["cloudwatch_alarm"]: rule["expr"] for rule in alert_rules()}
    five_xx = parameters["Alarm5xxRatePercent"]["Default"] / 100
    assert rules["Api5xxRateAlarm"].endswith(f"> {five_xx}")
    latency_s = parameters["AlarmLatencyP99Ms"]["Default"] / 1000
    assert rules["ApiLatencyP99Alarm"].endswith(f"> {latency_s:g}")
    # Lambda's default concurrency quota is 1,000 per Region
    assert rules["ConcurrencyNearLimitAlarm"].endswith(
        f"> {parameters['AlarmConcurrency']['Default'] / 1000}"
    )


def test_alarms_notify_the_topic_only_when_one_is_given(template: dict[str, Any]) -> None:
    for name, alarm in of_type(template, "AWS::CloudWatch::Alarm").items():
        for key in ("AlarmActions", "OKActions"):
            assert alarm[key] == {
                "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
            }, name
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""


def test_every_function_logs_to_its_own_group_with_retention(template: dict[str, Any]) -> None:
    # GIVEN what the SAM transform makes of the template
    translated = transform(packaged(template), parameter_values={"AWS::Region": "us-east-1"})
    groups = of_type(translated, "AWS::Logs::LogGroup")
    functions = of_type(translated, "AWS::Lambda::Function")
    assert len(functions) == 6
    for name, function in functions.items():
        # THEN each function names its log group (no implicit /aws/lambda/<name> group, which
        # would keep logs forever), and that group has the template's retention
        group = function["LoggingConfig"]["LogGroup"]["Ref"]
        assert groups[group]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
    assert groups["AccessLogGroup"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_the_access_log_carries_errors_and_the_authorizer_latency(
    template: dict[str, Any],
) -> None:
    settings = template["Resources"]["HttpApi"]["Properties"]["AccessLogSettings"]
    line = json.loads(re.sub(r"\$context\.[\w.]+", "x", settings["Format"]))
    assert {"errorMessage", "integrationError", "authorizerLatency", "apiId"} <= set(line)
    assert "$context.error.message" in settings["Format"]
    assert "$context.integrationErrorMessage" in settings["Format"]
    assert "$context.authorizer.latency" in settings["Format"]
    # AND the throttle filter reads fields the line has
    (metric_filter,) = of_type(template, "AWS::Logs::MetricFilter").values()
    assert set(re.findall(r"\$\.(\w+)", metric_filter["FilterPattern"])) <= set(line)


def test_the_dashboard_finds_the_functions_of_a_stack_of_any_name(
    template: dict[str, Any],
) -> None:
    # GIVEN functions without a FunctionName: CloudFormation names each
    # <stack name>-<logical id>-<random suffix>, whatever ServiceName and Stage say
    functions = of_type(template, "AWS::Serverless::Function")
    assert all("FunctionName" not in props for props in functions.values())
    stack = "my-lucid"  # `sam deploy --guided` asks for any name
    names = [f"{stack}-{logical_id}-1A2B3C4D5E6F" for logical_id in functions]
    # WHEN CloudFormation fills in the dashboard's searches over AWS/Lambda's FunctionName
    body = dashboard_body(template)
    for name, value in {"AWS::StackName": stack, "ServiceName": "lucid-api-gateway",
                        "Stage": "dev", "AWS::Region": "us-east-1"}.items():  # fmt: skip
        body = body.replace("${" + name + "}", value)
    terms = re.findall(r"\{AWS/Lambda,FunctionName\} MetricName=\\\"\w+\\\" \\\"([^\\]+)\\\"", body)
    # THEN each search's term is part of every function's name
    assert len(terms) == 2
    assert [(term, name) for term in terms for name in names if term not in name] == []


# --- alarms on the account's own metrics: deployed by one stack per account and Region --------
# CloudWatch keeps one series per namespace, metric and dimension values
# (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html,
# "Dimensions"): a metric with no dimension, such as AWS/Lambda's ClaimedAccountConcurrency, is
# the whole account's in the Region, so every stack there alarming on it pages for one incident.
ACCOUNT_CONDITION = "HasAccountAlarms"


def test_every_alarm_on_an_account_metric_needs_account_alarms(template: dict[str, Any]) -> None:
    # GIVEN every alarm and the metrics it reads: one with no dimension is the account's; every
    # other names this stack's API (ApiId), functions (FunctionName) or stage (Lucid/<Stage>)
    account_wide = set()
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        if any(not dims for _, _, dims in alarm_metrics(resource["Properties"])):
            account_wide.add(name)
        # THEN exactly those alarms are deployed only where AccountAlarms is "true"
        assert (resource.get("Condition") == ACCOUNT_CONDITION) is (name in account_wide), name
    assert account_wide == {"ConcurrencyNearLimitAlarm"}
    assert template["Conditions"][ACCOUNT_CONDITION] == {
        "Fn::Equals": [{"Ref": "AccountAlarms"}, "true"]
    }
    # AND a stack deployed without saying keeps them (one stack alone in its account)
    assert template["Parameters"]["AccountAlarms"]["Default"] == "true"
    assert template["Parameters"]["AccountAlarms"]["AllowedValues"] == ["true", "false"]


def parameter_values(template: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    """Every parameter's value as CloudFormation hands it to the template: the override, else
    the default; a CommaDelimitedList as its list."""
    values: dict[str, Any] = {}
    for name, spec in template["Parameters"].items():
        value = str(overrides.get(name, spec.get("Default", "")))
        values[name] = value.split(",") if spec["Type"] == "CommaDelimitedList" else value
    return values


def deployed(translated: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """What CloudFormation creates from the transformed template for these parameter values:
    each condition evaluated, a resource or output whose condition is false left out, each
    Fn::If replaced by the branch it takes; everything else as written."""
    resolver = Resolver(values, frozenset(translated["Resources"]), translated["Conditions"])

    def choose(node: Any, where: str) -> Any:
        if isinstance(node, dict):
            if list(node) == ["Fn::If"]:
                condition, then, otherwise = node["Fn::If"]
                return choose(then if resolver.condition(condition, where) else otherwise, where)
            return {key: choose(value, f"{where}.{key}") for key, value in node.items()}
        if isinstance(node, list):
            return [choose(value, f"{where}[{index}]") for index, value in enumerate(node)]
        return node

    result = {key: value for key, value in translated.items() if key != "Conditions"}
    for section in ("Resources", "Outputs"):
        kept = {}
        for name, entry in translated.get(section, {}).items():
            condition = entry.get("Condition")
            if condition is None or resolver.condition(condition, f"{section}.{name}"):
                written = {key: value for key, value in entry.items() if key != "Condition"}
                kept[name] = choose(written, f"{section}.{name}")
        result[section] = kept
    return result


def shown_alarms(stack: dict[str, Any], values: dict[str, Any]) -> list[str]:
    """The logical ids of the alarms the dashboard's alarm widget shows, the body resolved
    against the stack's own resources (a reference to one it lacks raises TemplateError)."""
    resolver = Resolver(values, frozenset(stack["Resources"]), {})
    (dashboard,) = of_type(stack, "AWS::CloudWatch::Dashboard").values()
    body = json.loads(resolver.resolve(dashboard["DashboardBody"], "Dashboard.DashboardBody"))
    (widget,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    # the local resolver's GetAtt: arn:aws:local:<region>:<account>:<logical id>/<attribute>
    return [arn.rsplit(":", 1)[1].removesuffix("/Arn") for arn in widget["properties"]["alarms"]]


def deployed_with(template: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    """What CloudFormation creates from the real SAM transform of the template with these
    parameter values (every other parameter at its default)."""
    translated = transform(
        packaged(template), parameter_values={"AWS::Region": "us-east-1", **overrides}
    )
    return deployed(translated, parameter_values(template, overrides))


def lint_errors(stack: dict[str, Any], folder: Path) -> list[str]:
    """cfn-lint's errors (what `sam validate --lint` runs) in a deployed template."""
    path = folder / "deployed.json"
    path.write_text(json.dumps(stack))
    matches = lint(path, regions=["us-east-1"])
    return [f"{m.rule} {m.message} ({m.line})" for m in matches if m.rule[0] == "E"]


@pytest.mark.parametrize("owner", ["true", "false"], ids=lambda owner: f"AccountAlarms={owner}")
def test_only_the_stack_owning_the_account_alarms_deploys_and_shows_them(
    template: dict[str, Any], owner: str, tmp_path: Path
) -> None:
    # GIVEN what CloudFormation creates from the template with AccountAlarms set
    stack = deployed_with(template, {"AccountAlarms": owner})
    # THEN the account's alarm is created by the owning stack only, every other alarm by both
    written = list(of_type(template, "AWS::CloudWatch::Alarm"))
    expected = [name for name in written if owner == "true" or name != "ConcurrencyNearLimitAlarm"]
    assert sorted(of_type(stack, "AWS::CloudWatch::Alarm")) == sorted(expected)
    # AND the dashboard's alarm widget shows exactly the alarms created, in the template's order
    values = parameter_values(template, {"AccountAlarms": owner})
    assert shown_alarms(stack, values) == expected
    # AND cfn-lint finds no error in what is deployed
    assert lint_errors(stack, tmp_path) == []


def test_a_stack_without_the_account_alarms_differs_by_them_alone(
    template: dict[str, Any],
) -> None:
    # GIVEN the stacks CloudFormation creates with AccountAlarms "true" and "false", each
    # dashboard's body as CloudWatch gets it
    values = parameter_values(template, {})
    stacks, boards = [], []
    for owner in ("true", "false"):
        stack = deployed_with(template, {"AccountAlarms": owner})
        resolver = Resolver(values, frozenset(stack["Resources"]), {})
        dashboard = stack["Resources"].pop("Dashboard")["Properties"]["DashboardBody"]
        boards.append(json.loads(resolver.resolve(dashboard, "Dashboard")))
        stacks.append(stack)
    # THEN they differ by the account's alarm and its place on the dashboard, nothing else
    del stacks[0]["Resources"]["ConcurrencyNearLimitAlarm"]
    assert stacks[0] == stacks[1]
    alarms = boards[0]["widgets"][0]["properties"]["alarms"]
    alarms.remove(next(arn for arn in alarms if ":ConcurrencyNearLimitAlarm/" in arn))
    assert boards[0] == boards[1]


def test_the_checks_tell_a_dashboard_naming_an_absent_alarm(
    template: dict[str, Any], tmp_path: Path
) -> None:
    # GIVEN a stack without the account's alarm whose dashboard still names it
    stack = deployed_with(template, {"AccountAlarms": "false"})
    (dashboard,) = of_type(stack, "AWS::CloudWatch::Dashboard").values()
    dashboard["DashboardBody"]["Fn::Sub"][1]["AccountAlarmArns"] = {
        "Fn::Sub": '"${ConcurrencyNearLimitAlarm.Arn}", '
    }
    # THEN resolving it fails, and cfn-lint refuses it, each naming the alarm
    with pytest.raises(TemplateError, match="ConcurrencyNearLimitAlarm"):
        shown_alarms(stack, parameter_values(template, {"AccountAlarms": "false"}))
    (error,) = lint_errors(stack, tmp_path)
    assert error.startswith("E1019 'ConcurrencyNearLimitAlarm' is not one of"), error
