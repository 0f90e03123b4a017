"""A deployed stack sets the Redis bounds and the rate limiter's Redis-down mode: template
parameters that reach the functions reading them (through the real SAM transform), with the
constraints CloudFormation checks matching what the functions' settings accept."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from lucid.config import Settings, SettingsError
from lucid_edge.template import TemplateError, load_template
from tests.infra.sam_tools import decode
from tests.infra.test_needs import SCENARIOS, Deployment
from tests.infra.test_template import TEMPLATE

# template parameter -> (the setting it sets, a value other than the default)
PARAMETERS = {
    "RedisTimeoutMs": ("REDIS_TIMEOUT_MS", "250"),
    "RedisConnectTimeoutMs": ("REDIS_CONNECT_TIMEOUT_MS", "800"),
    "RateLimitFailMode": ("RATE_LIMIT_FAIL_MODE", "closed"),
}
# The functions that rate limit (the rest read Redis for revocations or health only).
RATE_LIMITED = {"AuthFunction", "UsersFunction", "SessionsFunction", "ProxyFunction"}
SETTINGS = {field.name for field in dataclasses.fields(Settings)}


def _parameters() -> dict[str, Any]:
    source, _ = decode(str(TEMPLATE))
    assert source is not None
    parameters: dict[str, Any] = source["Parameters"]
    return parameters


def test_a_deployed_stack_s_values_reach_the_settings_of_the_functions_that_read_them() -> None:
    # GIVEN a deployed stage (secrets in SSM) with every one of these parameters changed
    overrides = {parameter: value for parameter, (_, value) in PARAMETERS.items()}
    deployment = Deployment({**SCENARIOS["ssm parameters"], **overrides})
    functions = deployment.functions()
    assert set(functions) > RATE_LIMITED
    for name, function in functions.items():
        environment = function["Environment"]["Variables"]
        # WHEN the function builds its settings from the environment the stack gives it
        settings = Settings(**{k: v for k, v in environment.items() if k in SETTINGS})
        # THEN every function has the Redis bounds, and those that rate limit the fail mode
        assert settings.REDIS_TIMEOUT_MS == 250, name
        assert settings.REDIS_CONNECT_TIMEOUT_MS == 800, name
        if name in RATE_LIMITED:
            assert settings.RATE_LIMIT_FAIL_MODE == "closed", name
        else:
            assert "RATE_LIMIT_FAIL_MODE" not in environment, name


def test_the_defaults_are_the_settings_defaults() -> None:
    parameters = _parameters()
    for parameter, (setting, _) in PARAMETERS.items():
        field = Settings.__dataclass_fields__[setting]
        assert str(parameters[parameter]["Default"]) == str(field.default), parameter


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("RedisTimeoutMs", "0"),
        ("RedisTimeoutMs", "1001"),
        ("RedisConnectTimeoutMs", "0"),
        ("RedisConnectTimeoutMs", "5001"),
        ("RateLimitFailMode", "half-open"),
    ],
)
def test_a_value_the_functions_would_refuse_is_refused_by_the_stack(
    parameter: str, value: str
) -> None:
    # GIVEN a value the function's settings refuse (it would fail every cold start)
    setting, _ = PARAMETERS[parameter]
    with pytest.raises(SettingsError, match=setting):
        Settings(**{setting: value})
    # THEN CloudFormation's parameter check refuses it first (as the local edge evaluates it)
    with pytest.raises(TemplateError, match=parameter):
        load_template(TEMPLATE, {parameter: value})


def test_the_bounds_of_the_stack_are_values_the_functions_accept() -> None:
    parameters = _parameters()
    for parameter, (setting, _) in PARAMETERS.items():
        spec = parameters[parameter]
        for value in [spec.get("MinValue"), spec.get("MaxValue"), *spec.get("AllowedValues", [])]:
            if value is not None:
                Settings(**{setting: str(value)})
                load_template(TEMPLATE, {parameter: str(value)})
