"""CloudFormation YAML: short tags (`!Ref`, `!Sub`, ...) and intrinsic function resolution.

`load_yaml` turns short tags into their long form (`!Ref X` -> `{"Ref": "X"}`); `Resolver`
evaluates the long forms the local edge supports against parameter values, conditions and a
few pseudo parameters. Anything else raises `TemplateError` naming where it was found.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml


class TemplateError(ValueError):
    """The template cannot be served by the local edge; the message names resource + property."""


class _CfnLoader(yaml.SafeLoader):
    """A SafeLoader that understands CloudFormation short-form tags."""


def _construct_tag(loader: yaml.Loader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_yaml(path: Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML file into plain data (short tags in long form)."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506
    except OSError as err:
        raise TemplateError(f"cannot read template {path}: {err}") from err
    except yaml.YAMLError as err:
        raise TemplateError(f"template {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise TemplateError(f"template {path} is not a mapping")
    return data


class _NoValue:
    """`AWS::NoValue`: removes the property (or list item) it stands in for."""


NO_VALUE = _NoValue()

PSEUDO_PARAMETERS: Mapping[str, str] = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "lucid-local",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/lucid-local/local",
    "AWS::NotificationARNs": "",
}

_SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")


class Resolver:
    """Evaluates intrinsic functions for one template (parameters + conditions + resources)."""

    def __init__(
        self,
        parameters: Mapping[str, str | list[str]],
        resource_ids: frozenset[str],
        condition_defs: Mapping[str, Any],
    ) -> None:
        self._parameters = parameters
        self._resource_ids = resource_ids
        self._condition_defs = condition_defs
        self._conditions: dict[str, bool] = {}
        self._functions: dict[str, Callable[[Any, str], Any]] = {
            "Ref": self._ref,
            "Fn::Sub": self._sub,
            "Fn::GetAtt": self._get_att,
            "Fn::If": self._if,
            "Fn::Join": self._join,
            "Fn::Equals": self._equals,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::Not": lambda args, where: not self._bool(args, where, 1)[0],
            "Fn::And": lambda args, where: all(self._bool(args, where)),
            "Fn::Or": lambda args, where: any(self._bool(args, where)),
            "Condition": lambda name, where: self.condition(str(name), where),
        }

    def condition(self, name: str, where: str) -> bool:
        """The value of a named condition (evaluated once)."""
        if name not in self._conditions:
            if name not in self._condition_defs:
                raise TemplateError(f"{where}: unknown condition {name!r}")
            self._conditions[name] = bool(self.resolve(self._condition_defs[name], where))
        return self._conditions[name]

    def resolve(self, value: Any, where: str) -> Any:
        """`value` with every intrinsic function evaluated; `where` names it in errors."""
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, args),) = value.items()
                if key == "Ref" or key == "Condition" or key.startswith("Fn::"):
                    function = self._functions.get(key)
                    if function is None:
                        raise TemplateError(f"{where}: intrinsic function {key} is not supported")
                    return function(args, where)
            resolved = {k: self.resolve(v, f"{where}.{k}") for k, v in value.items()}
            return {k: v for k, v in resolved.items() if v is not NO_VALUE}
        if isinstance(value, list):
            items = [self.resolve(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return [item for item in items if item is not NO_VALUE]
        return value

    def _ref(self, name: Any, where: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self._parameters:
            return self._parameters[name]
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if name in self._resource_ids:
            return name  # a resource's physical id; locally its logical id
        raise TemplateError(f"{where}: !Ref to unknown parameter or resource {name!r}")

    def _sub(self, args: Any, where: str) -> str:
        if isinstance(args, list) and len(args) == 2 and isinstance(args[1], dict):
            text, extra = args[0], {k: self.resolve(v, where) for k, v in args[1].items()}
        else:
            text, extra = args, {}
        if not isinstance(text, str):
            raise TemplateError(f"{where}: !Sub needs a string")

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name in extra:
                return str(extra[name])
            if "." in name:
                return str(self._get_att(name.split(".", 1), where))
            value = self._ref(name, where)
            return ",".join(value) if isinstance(value, list) else str(value)

        return _SUB_VARIABLE.sub(substitute, text).replace("${!", "${")

    def _get_att(self, args: Any, where: str) -> str:
        if not (isinstance(args, list) and len(args) == 2 and args[0] in self._resource_ids):
            raise TemplateError(f"{where}: !GetAtt {args!r} names no resource of the template")
        region, account = PSEUDO_PARAMETERS["AWS::Region"], PSEUDO_PARAMETERS["AWS::AccountId"]
        return f"arn:aws:local:{region}:{account}:{args[0]}/{args[1]}"

    def _if(self, args: Any, where: str) -> Any:
        if not (isinstance(args, list) and len(args) == 3):
            raise TemplateError(f"{where}: !If needs [condition, then, else]")
        branch = args[1] if self.condition(str(args[0]), where) else args[2]
        return self.resolve(branch, where)

    def _join(self, args: Any, where: str) -> str:
        if not (isinstance(args, list) and len(args) == 2):
            raise TemplateError(f"{where}: !Join needs [delimiter, list]")
        items = self.resolve(args[1], where)
        if not isinstance(items, list):
            raise TemplateError(f"{where}: !Join needs a list to join")
        return str(args[0]).join(str(item) for item in items)

    def _equals(self, args: Any, where: str) -> bool:
        if not (isinstance(args, list) and len(args) == 2):
            raise TemplateError(f"{where}: !Equals needs two values")
        left, right = (self.resolve(arg, where) for arg in args)
        return str(left) == str(right)

    def _select(self, args: Any, where: str) -> Any:
        if not (isinstance(args, list) and len(args) == 2):
            raise TemplateError(f"{where}: !Select needs [index, list]")
        index, items = int(self.resolve(args[0], where)), self.resolve(args[1], where)
        if not isinstance(items, list) or not 0 <= index < len(items):
            raise TemplateError(f"{where}: !Select index {index} is out of range")
        return items[index]

    def _split(self, args: Any, where: str) -> list[str]:
        if not (isinstance(args, list) and len(args) == 2):
            raise TemplateError(f"{where}: !Split needs [delimiter, string]")
        return str(self.resolve(args[1], where)).split(str(args[0]))

    def _bool(self, args: Any, where: str, count: int | None = None) -> list[bool]:
        if not isinstance(args, list) or (count is not None and len(args) != count):
            raise TemplateError(f"{where}: condition functions need a list of conditions")
        return [bool(self.resolve(arg, where)) for arg in args]
