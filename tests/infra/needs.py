"""infra/needs.yaml read as data: per function, the variables it receives and the AWS calls it
may make, for the parameter values a deployment sets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
NEEDS_FILE = ROOT / "infra" / "needs.yaml"
REGION, ACCOUNT = "us-east-1", "123456789012"
ASYMMETRIC = ("RS256", "ES256")  # JwtAlgorithm values verified with a public key

# (action, resource, condition as a sorted JSON-able tuple or None)
Grant = tuple[str, str, str | None]


@dataclass(frozen=True)
class FunctionNeeds:
    """What infra/needs.yaml says one function reads."""

    secrets: tuple[str, ...] = ()
    asymmetric_secrets: tuple[str, ...] | None = None  # None: `secrets` for every algorithm
    parameter_paths: tuple[str, ...] = ()
    variables: tuple[str, ...] = ()


@dataclass(frozen=True)
class Needs:
    """The whole declaration."""

    secrets: Mapping[str, Mapping[str, Mapping[str, str]]]
    parameter_paths: Mapping[str, Mapping[str, str]]
    kms_parameter: str
    functions: Mapping[str, FunctionNeeds] = field(default_factory=dict)

    def variables_of(self, function: str) -> set[str]:
        """Every variable the function receives beyond Globals."""
        needs = self.functions[function]
        names = set(needs.variables) | set(needs.parameter_paths)
        for secret in {*needs.secrets, *(needs.asymmetric_secrets or ())}:
            names |= {source["name"] for source in self.secrets[secret].values()}
        return names

    def parameter_of(self, variable: str) -> str | None:
        """The template parameter that sets a secret's or path's variable (None: another)."""
        for sources in self.secrets.values():
            for source in sources.values():
                if source["name"] == variable:
                    return source["parameter"]
        if variable in self.parameter_paths:
            return self.parameter_paths[variable]["parameter"]
        return None

    def grants_of(self, function: str, values: Mapping[str, Any]) -> set[Grant]:
        """The calls the function may make when the template parameters are `values`."""
        needs = self.functions[function]
        grants: set[Grant] = set()
        for secret in self.secrets_of(function, values):
            sources = self.secrets[secret]
            arn = values.get(sources["secret_arn"]["parameter"], "")
            name = values.get(sources["ssm_parameter"]["parameter"], "")
            if arn:
                grants.add(("secretsmanager:GetSecretValue", arn, None))
            elif name:
                grants.add(("ssm:GetParameter", ssm_arn(name), None))
        for path in needs.parameter_paths:
            value = values.get(self.parameter_paths[path]["parameter"], "")
            if value:
                grants.add(("ssm:GetParametersByPath", ssm_arn(value), None))
        key = values.get(self.kms_parameter, "")
        if key and self.secrets_of(function, values):
            services = f"secretsmanager.{REGION}.amazonaws.com,ssm.{REGION}.amazonaws.com"
            via = f"StringEquals:kms:ViaService={services}"
            grants.add(("kms:Decrypt", key, via))
        return grants

    def secrets_of(self, function: str, values: Mapping[str, Any]) -> tuple[str, ...]:
        """The secrets the function reads with the template's JwtAlgorithm in `values`."""
        needs = self.functions[function]
        asymmetric = values.get("JwtAlgorithm", "HS256") in ASYMMETRIC
        if asymmetric and needs.asymmetric_secrets is not None:
            return needs.asymmetric_secrets
        return needs.secrets


def ssm_arn(name: str) -> str:
    """The ARN of an SSM parameter or path (a leading slash joins `parameter` directly)."""
    return f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name if name.startswith('/') else '/' + name}"


def load_needs() -> Needs:
    """infra/needs.yaml."""
    raw: dict[str, Any] = yaml.safe_load(NEEDS_FILE.read_text())
    functions = {
        name: FunctionNeeds(
            secrets=tuple(spec.get("secrets", ())),
            asymmetric_secrets=(
                tuple(spec["asymmetric_secrets"]) if "asymmetric_secrets" in spec else None
            ),
            parameter_paths=tuple(spec.get("parameter_paths", ())),
            variables=tuple(spec.get("variables", ())),
        )
        for name, spec in raw["functions"].items()
    }
    return Needs(raw["secrets"], raw["parameter_paths"], raw["kms_key"]["parameter"], functions)
