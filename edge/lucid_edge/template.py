"""Load a SAM template into the edge's frozen model; refuse loudly what the edge cannot serve.

Deploy-only parts (`DEPLOY_ONLY_*` below: roles, log groups, alarms, a VPC, reserved or
provisioned concurrency, ...) change nothing about how a request is answered on one machine:
they are accepted, and `Template.deploy_only` names each once, for `lucid serve` to print at
start-up. Anything else the edge does not emulate is refused with its resource and property
named. Parameters are checked as CloudFormation checks them (AllowedValues, AllowedPattern,
MinValue/MaxValue) and the template's Rules are evaluated, so a stack AWS would refuse does
not serve locally either.

Environment: every function of the template runs in the same edge process, so their
`Environment.Variables` become one process environment. Values that resolve to "" are unset;
two functions giving one variable different values is refused; a variable already set in the
edge's own environment wins over the template (see `apply_environment`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from lucid_edge.api_spec import build_api
from lucid_edge.intrinsics import Resolver, TemplateError, load_yaml
from lucid_edge.model import FunctionSpec, Template

__all__ = ["TemplateError", "apply_environment", "load_template", "parse_overrides"]

_PARAMETER_TYPES = frozenset({"String", "Number", "CommaDelimitedList", "List<Number>"})
_TOP_LEVEL = frozenset(
    {"AWSTemplateFormatVersion", "Transform", "Description", "Parameters", "Rules",
     "Conditions", "Globals", "Resources", "Outputs", "Metadata"}
)  # fmt: skip
# The layer is served from the edge's own environment (the `lucid` package is installed).
_LAYER_TYPES = frozenset({"AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"})
# Resource types that exist only in a deployed stack: permissions, logs and monitoring.
DEPLOY_ONLY_TYPES = frozenset(
    {"AWS::IAM::Role", "AWS::IAM::ManagedPolicy", "AWS::IAM::Policy",
     "AWS::Logs::LogGroup", "AWS::Logs::MetricFilter",
     "AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm", "AWS::CloudWatch::Dashboard",
     "AWS::SNS::Topic", "AWS::SNS::Subscription", "AWS::SNS::TopicPolicy"}
)  # fmt: skip
# Function properties that only shape the deployed function: its network, how many instances
# AWS keeps, versions and aliases, /tmp size. ReservedConcurrentExecutions is served: the edge
# runs at most that many invocations of the function at once (lucid_edge.instances).
DEPLOY_ONLY_FUNCTION_PROPERTIES = frozenset(
    {"VpcConfig", "AutoPublishAlias",
     "AutoPublishAliasAllProperties", "AutoPublishCodeSha256", "DeploymentPreference",
     "ProvisionedConcurrencyConfig", "VersionDescription", "EphemeralStorage", "KmsKeyArn"}
)  # fmt: skip
_SERVED_FUNCTION_PROPERTIES = frozenset(
    {"Runtime", "Handler", "CodeUri", "Timeout", "MemorySize", "Environment", "Layers", "Events",
     "Description", "Tracing", "Architectures", "Policies", "Role", "FunctionName", "Tags",
     "PackageType", "LoggingConfig", "PropagateTags", "ReservedConcurrentExecutions"}
)  # fmt: skip
_FUNCTION_PROPERTIES = _SERVED_FUNCTION_PROPERTIES | DEPLOY_ONLY_FUNCTION_PROPERTIES
# Lambda's limits on a function's Timeout (seconds): "1-900"
# (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
_MIN_TIMEOUT, _MAX_TIMEOUT = 1, 900
# What SAM lets Globals set, per section (aws-sam-translator 1.115.0,
# samtranslator/plugins/globals/globals.py, Globals.supported_properties): anything else is
# "'X' is not a supported property of 'Function'" and the transform fails. Only the sections
# the edge serves are listed.
_GLOBAL_PROPERTIES: dict[str, frozenset[str]] = {
    "Function": frozenset(
        {"Handler", "Runtime", "CodeUri", "DeadLetterQueue", "Description", "MemorySize",
         "Timeout", "VpcConfig", "Environment", "Tags", "PropagateTags", "Tracing", "KmsKeyArn",
         "AutoPublishAlias", "AutoPublishAliasAllProperties", "Layers", "DeploymentPreference",
         "RolePath", "PermissionsBoundary", "ReservedConcurrentExecutions",
         "ProvisionedConcurrencyConfig", "AssumeRolePolicyDocument", "EventInvokeConfig",
         "FileSystemConfigs", "CodeSigningConfigArn", "Architectures", "SnapStart",
         "EphemeralStorage", "FunctionUrlConfig", "RuntimeManagementConfig", "LoggingConfig",
         "RecursiveLoop", "SourceKMSKeyArn", "TenancyConfig", "DurableConfig",
         "CapacityProviderConfig", "FunctionScalingConfig", "PublishToLatestPublished",
         "VersionDeletionPolicy"}
    ),
    "HttpApi": frozenset(
        {"Auth", "AccessLogSettings", "StageVariables", "Tags", "CorsConfiguration",
         "DefaultRouteSettings", "Domain", "RouteSettings", "FailOnWarnings", "PropagateTags"}
    ),
}  # fmt: skip
# Lists SAM replaces instead of concatenating (same module: CUSTOM_STRATEGIES, MergeOp.REPLACE).
_REPLACED_LISTS = frozenset({"Function.Architectures"})


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """`["Key=Value", ...]` (the `--parameter-overrides` syntax) as a dict."""
    overrides: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise TemplateError(f"parameter override {pair!r} is not Key=Value")
        overrides[key] = value
    return overrides


def _parameters(declared: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, Any]:
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise TemplateError(f"parameter overrides name unknown parameters: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        kind = spec.get("Type", "String")
        if kind not in _PARAMETER_TYPES:
            raise TemplateError(f"Parameters.{name}.Type: type {kind!r} is not supported locally")
        if name in overrides:
            raw = overrides[name]
        elif "Default" in spec:
            raw = spec["Default"]
        else:
            raise TemplateError(f"Parameters.{name}: no Default and no --parameter-overrides")
        allowed = spec.get("AllowedValues")
        if allowed is not None and str(raw) not in [str(v) for v in allowed]:
            raise TemplateError(f"Parameters.{name}: {raw!r} is not one of {allowed}")
        _check_constraints(name, spec, kind, raw)
        if kind in ("CommaDelimitedList", "List<Number>"):
            items = raw if isinstance(raw, list) else str(raw).split(",")
            values[name] = [str(item).strip() for item in items]
        else:
            values[name] = _env_text(raw)
    return values


def _check_constraints(name: str, spec: Mapping[str, Any], kind: str, raw: Any) -> None:
    # What CloudFormation checks before it creates anything ("Parameter 'X' must match pattern
    # ..."); ConstraintDescription replaces the generic wording, as in the AWS console.
    where = f"Parameters.{name}"
    hint = spec.get("ConstraintDescription")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and kind == "String" and not re.fullmatch(str(pattern), str(raw)):
        because = f": {hint}" if hint else ""
        raise TemplateError(f"{where}: {raw!r} must match {pattern!r}{because}")
    if kind != "Number":
        return
    try:
        number = float(raw)
    except (TypeError, ValueError):
        raise TemplateError(f"{where}: {raw!r} is not a number") from None
    low, high = spec.get("MinValue"), spec.get("MaxValue")
    if (low is not None and number < float(low)) or (high is not None and number > float(high)):
        raise TemplateError(f"{where}: {raw!r} is outside [{low}, {high}]")


def _check_rules(rules: Mapping[str, Any], resolver: Resolver) -> None:
    # CloudFormation refuses to create or update a stack whose parameters break a rule.
    for name, rule in rules.items():
        where = f"Rules.{name}"
        condition = rule.get("RuleCondition")
        if condition is not None and not resolver.resolve(condition, f"{where}.RuleCondition"):
            continue
        for index, assertion in enumerate(rule.get("Assertions") or []):
            if not resolver.resolve(assertion.get("Assert"), f"{where}.Assertions[{index}]"):
                why = assertion.get("AssertDescription", "assertion failed")
                raise TemplateError(f"{where}: {why}")


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_intrinsic(value: Any) -> bool:
    # samtranslator.model.intrinsics.is_intrinsic: a one-key map naming Ref, Condition or Fn::*.
    if not isinstance(value, dict) or len(value) != 1:
        return False
    key = next(iter(value))
    return key in ("Ref", "Condition") or str(key).startswith("Fn::")


def _merge_global(global_value: Any, local_value: Any, path: str) -> Any:
    """A resource's value merged over its Globals value, as SAM merges them
    (samtranslator/plugins/globals/globals.py, GlobalProperties._do_merge): two maps merge key
    by key, recursively; two lists concatenate, Globals' items first (except the lists SAM
    replaces); anything else, intrinsics included, is the resource's value."""
    global_map = isinstance(global_value, dict) and not _is_intrinsic(global_value)
    local_map = isinstance(local_value, dict) and not _is_intrinsic(local_value)
    if global_map and local_map:
        merged = dict(global_value)
        for key, value in local_value.items():
            merged[key] = (
                _merge_global(merged[key], value, f"{path}.{key}") if key in merged else value
            )
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return local_value if path in _REPLACED_LISTS else global_value + local_value
    return local_value


def _globals_for(
    section: str, globals_: Mapping[str, Any], logical_id: str, resource: Mapping[str, Any]
) -> dict[str, Any]:
    """The Globals properties that apply to a resource, without those its `IgnoreGlobals`
    attribute ("*" or a list of property names) drops (Globals.get_template_globals)."""
    if section not in globals_:
        return {}  # SAM reads IgnoreGlobals only when Globals has the resource's section
    props = dict(globals_[section] or {})
    where = f"Resources.{logical_id}.IgnoreGlobals"
    ignore = resource.get("IgnoreGlobals")
    if ignore == "*":
        return {}
    if isinstance(ignore, list):
        for name in ignore:
            if name not in props:
                raise TemplateError(f"{where}: {name!r} is not set in Globals.{section}")
            del props[name]
    elif ignore is not None:
        raise TemplateError(f"{where}: '*' or a list of properties")
    return props


def _check_globals(globals_: Any) -> None:
    if not isinstance(globals_, dict):
        raise TemplateError("Globals: must be a mapping")
    for section, props in globals_.items():
        supported = _GLOBAL_PROPERTIES.get(section)
        if supported is None:
            raise TemplateError(f"Globals.{section}: section is not supported by the local edge")
        if not isinstance(props, dict):
            raise TemplateError(f"Globals.{section}: must be a mapping")
        for prop in props:
            if prop not in supported:
                # SAM fails the transform ("'X' is not a supported property of 'Function'").
                raise TemplateError(
                    f"Globals.{section}.{prop}: SAM does not take this property from Globals"
                )


def _function(
    logical_id: str, props: Mapping[str, Any], base_dir: Path
) -> tuple[FunctionSpec, dict[str, str]]:
    where = f"Resources.{logical_id}.Properties"
    for prop in props:
        if prop not in _FUNCTION_PROPERTIES:
            raise TemplateError(f"{where}.{prop}: property is not supported by the local edge")
    if "ProvisionedConcurrencyConfig" in props and "AutoPublishAlias" not in props:
        # SAM: provisioned concurrency is set on the alias AutoPublishAlias creates.
        raise TemplateError(f"{where}.ProvisionedConcurrencyConfig: needs AutoPublishAlias")
    if props.get("PackageType", "Zip") != "Zip":
        raise TemplateError(f"{where}.PackageType: only Zip functions run locally")
    runtime = str(props.get("Runtime", ""))
    if not runtime.startswith("python3"):
        raise TemplateError(f"{where}.Runtime: {runtime or 'missing'!r} is not a python runtime")
    code_uri, handler = props.get("CodeUri"), props.get("Handler")
    if not isinstance(code_uri, str) or not isinstance(handler, str) or "." not in handler:
        raise TemplateError(f"{where}.CodeUri/Handler: a local folder and module.function needed")
    timeout = float(props.get("Timeout", 3))
    if not _MIN_TIMEOUT <= timeout <= _MAX_TIMEOUT:
        raise TemplateError(f"{where}.Timeout: {timeout:g} is outside Lambda's 1-900 seconds")
    reserved = _reserved_concurrency(props.get("ReservedConcurrentExecutions"), where)
    variables = (props.get("Environment") or {}).get("Variables") or {}
    environment = {k: _env_text(v) for k, v in variables.items() if _env_text(v) != ""}
    spec = FunctionSpec(
        logical_id=logical_id,
        code_uri=(base_dir / code_uri).resolve(),
        handler=handler,
        timeout=timeout,
        memory_size=int(props.get("MemorySize", 128)),
        environment=environment,
        reserved_concurrency=reserved,
    )
    return spec, environment


def _reserved_concurrency(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not str(value).isdigit():
        raise TemplateError(f"{where}.ReservedConcurrentExecutions: {value!r} is not a count >= 0")
    return int(value)


def _shared_environment(functions: Mapping[str, FunctionSpec]) -> dict[str, str]:
    merged: dict[str, str] = {}
    owner: dict[str, str] = {}
    for logical_id, function in functions.items():
        for name, value in function.environment.items():
            if name in merged and merged[name] != value:
                raise TemplateError(
                    f"Resources.{logical_id}.Properties.Environment.Variables.{name}: differs "
                    f"from {owner[name]}; all functions share one process environment locally"
                )
            merged[name], owner[name] = value, logical_id
    return merged


def load_template(path: Path, overrides: Mapping[str, str] | None = None) -> Template:
    """Load, resolve and validate a SAM template; `TemplateError` names what is unsupported."""
    path = path.resolve()
    raw = load_yaml(path)
    for key in raw:
        if key not in _TOP_LEVEL:
            raise TemplateError(f"{key}: top-level section is not supported by the local edge")
    resources: dict[str, Any] = raw.get("Resources") or {}
    parameters = _parameters(raw.get("Parameters") or {}, overrides or {})
    resolver = Resolver(parameters, frozenset(resources), raw.get("Conditions") or {})
    _check_rules(raw.get("Rules") or {}, resolver)
    globals_ = raw.get("Globals") or {}
    _check_globals(globals_)

    functions: dict[str, FunctionSpec] = {}
    events: dict[str, dict[str, Any]] = {}
    apis: dict[str, dict[str, Any]] = {}
    deploy_only: dict[str, None] = {}  # ordered, each named once
    for logical_id, resource in resources.items():
        where = f"Resources.{logical_id}"
        kind = resource.get("Type")
        condition = resource.get("Condition")
        if condition is not None and not resolver.condition(str(condition), where):
            continue
        if kind in _LAYER_TYPES:
            continue
        if kind in DEPLOY_ONLY_TYPES:
            deploy_only[f"{where} ({kind})"] = None
            continue
        if kind == "AWS::Serverless::Function":
            global_props = _globals_for("Function", globals_, logical_id, resource)
            props = _merge_global(global_props, resource.get("Properties") or {}, "Function")
            raw_events = props.pop("Events", None) or {}
            props = resolver.resolve(props, f"{where}.Properties")
            functions[logical_id], _ = _function(logical_id, props, path.parent)
            events[logical_id] = raw_events
            for prop in sorted(DEPLOY_ONLY_FUNCTION_PROPERTIES & set(props)):
                own = prop in (resource.get("Properties") or {}) or prop not in global_props
                deploy_only[f"{where}.Properties.{prop}" if own else f"Globals.Function.{prop}"] = (
                    None
                )
        elif kind == "AWS::Serverless::HttpApi":
            apis[logical_id] = _merge_global(
                _globals_for("HttpApi", globals_, logical_id, resource),
                resource.get("Properties") or {},
                "HttpApi",
            )
        else:
            raise TemplateError(f"{where}.Type: {kind!r} is not supported by the local edge")
    if len(apis) > 1:
        raise TemplateError(f"Resources: {', '.join(apis)}: the local edge serves one HttpApi")
    api = build_api(apis, events, functions, resolver)
    if api.domain is not None:
        deploy_only[api.domain] = None
    return Template(
        path=path,
        functions=functions,
        api=api,
        environment=_shared_environment(functions),
        parameters=parameters,
        deploy_only=tuple(deploy_only),
    )


def apply_environment(
    template: Template, environ: MutableMapping[str, str] | None = None
) -> dict[str, str]:
    """Export the template's environment; variables already set win. Returns what was set."""
    target = os.environ if environ is None else environ
    exported: dict[str, str] = {}
    for name, value in template.environment.items():
        if name not in target:
            target[name] = exported[name] = value
    return exported
