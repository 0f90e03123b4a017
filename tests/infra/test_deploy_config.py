"""samconfig.toml and docker-compose.localstack.yml stay consistent with the template.

Neither can run here (no Docker engine, no AWS account), so they are kept correct by validation.
"""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path
from typing import Any

import yaml
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]


def template_parameters() -> dict[str, Any]:
    template, _ = decode(str(ROOT / "infra" / "template.yaml"))
    assert template is not None
    return dict(template["Parameters"])


def test_samconfig_has_dev_and_prod_with_known_parameters_and_no_secrets() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert (ROOT / config["default"]["global"]["parameters"]["template_file"]).is_file()
    parameters = template_parameters()
    for env in ("dev", "prod"):
        deploy = config[env]["deploy"]["parameters"]
        assert deploy["stack_name"].endswith(env)
        overrides = dict(item.split("=", 1) for item in shlex.split(deploy["parameter_overrides"]))
        assert overrides["Stage"] == env
        assert set(overrides) <= set(parameters), set(overrides) - set(parameters)
        secret_names = {name for name, p in parameters.items() if p.get("NoEcho")}
        assert not secret_names & set(overrides), "secrets must not live in samconfig.toml"


def test_localstack_compose_declares_the_services_the_stack_needs() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.localstack.yml").read_text())
    services = compose["services"]
    assert {"localstack", "redis", "mongo"} <= set(services)
    enabled = set(services["localstack"]["environment"]["SERVICES"].split(","))
    assert {"apigateway", "lambda", "cloudformation", "secretsmanager", "ssm"} <= enabled
    for name, service in services.items():
        assert ":" in service["image"], f"{name} image must be pinned to a tag"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} must only listen on loopback"
