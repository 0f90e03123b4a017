"""CloudFormation refuses a template whose resources depend on each other in a circle ("Circular
dependency between resources: [...]"), and neither the SAM transform nor `sam validate --lint`
(cfn-lint) says so beforehand: an `AUTH_SERVICE_URL: !Sub https://${HttpApi}...` on AuthFunction
made HttpApi -> AuthFunction -> HttpApi and passed both.

A resource depends on every resource it names through Ref, Fn::GetAtt, Fn::Sub or DependsOn
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-dependson.html:
"Resources that reference other resources ... using Ref or Fn::GetAtt ... are created after
them"; Fn::Sub's ${Name} and ${Name.Attribute} are a Ref and a GetAtt). Both branches of every
Fn::If count: a cycle that one parameter value would close is refused too.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

import pytest

from tests.infra.sam_tools import decode, transform
from tests.infra.test_needs import SCENARIOS
from tests.infra.test_template import TEMPLATE, packaged

# ${Name} or ${Name.Attribute}; ${!Literal} is text, not a reference
_SUB_NAME = re.compile(r"\$\{(?!!)([^}.]+)(?:\.[^}]+)?\}")


def _source() -> dict[str, Any]:
    template, matches = decode(str(TEMPLATE))
    assert not matches, matches
    assert template is not None
    return dict(template)


def _transformed(source: dict[str, Any], overrides: Mapping[str, str]) -> dict[str, Any]:
    return transform(
        packaged(copy.deepcopy(source)), parameter_values={"AWS::Region": "us-east-1", **overrides}
    )


def _named(node: Any, resources: frozenset[str]) -> set[str]:
    """The resources `node` names through Ref, Fn::GetAtt and Fn::Sub, at any depth."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= _named(item, resources)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value.split(".")[0] if isinstance(value, str) else value[0])
            elif key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else value
                found |= {name for name in _SUB_NAME.findall(text) if name not in variables}
                found |= _named(variables, resources)
            else:
                found |= _named(value, resources)
    return found & resources


def dependencies(template: Mapping[str, Any]) -> dict[str, set[str]]:
    """Per resource, the resources CloudFormation must create before it."""
    resources = template["Resources"]
    names = frozenset(resources)
    graph: dict[str, set[str]] = {}
    for name, resource in resources.items():
        body = {key: value for key, value in resource.items() if key != "DependsOn"}
        depends_on = resource.get("DependsOn", [])
        graph[name] = _named(body, names) | set(
            [depends_on] if isinstance(depends_on, str) else depends_on
        )
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Each dependency circle once, as the path that closes it (first resource repeated last)."""
    found: list[list[str]] = []
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    return found


@pytest.mark.parametrize("overrides", SCENARIOS.values(), ids=list(SCENARIOS))
def test_the_transformed_template_has_no_dependency_cycle(overrides: dict[str, str]) -> None:
    # GIVEN what CloudFormation receives for a deployment: the SAM transform's output
    graph = dependencies(_transformed(_source(), overrides))
    # THEN the walk sees the API's dependency on the functions it integrates
    assert "AuthFunction" in graph["HttpApi"]
    # AND no resource depends on itself through any chain of references
    assert cycles(graph) == []


def test_a_function_reading_the_apis_own_url_is_refused_as_a_cycle() -> None:
    # GIVEN a copy of the template in which AuthFunction builds its URL from the API's id
    source = _source()
    variables = source["Resources"]["AuthFunction"]["Properties"]["Environment"]["Variables"]
    variables["AUTH_SERVICE_URL"] = {
        "Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.amazonaws.com"
    }
    # WHEN it is transformed (the transform accepts it, as cfn-lint does)
    graph = dependencies(_transformed(source, {}))
    # THEN the circle CloudFormation would refuse is found, naming both resources
    (cycle,) = cycles(graph)
    assert cycle[0] == cycle[-1]
    assert sorted(cycle[1:]) == ["AuthFunction", "HttpApi"]


def test_the_walk_reads_every_form_of_reference() -> None:
    # GIVEN resources naming each other in each of CloudFormation's forms
    template = {
        "Resources": {
            "A": {"Type": "T", "Properties": {"X": {"Fn::GetAtt": "B.Arn"}}},
            "B": {"Type": "T", "Properties": {"X": {"Fn::Sub": ["${V}", {"V": {"Ref": "C"}}]}}},
            "C": {"Type": "T", "DependsOn": "D"},
            "D": {"Type": "T", "Properties": {"X": {"Fn::Sub": "${!A} ${AWS::Region} ${E.Arn}"}}},
            "E": {"Type": "T", "DependsOn": ["E"]},
        }
    }
    graph = dependencies(template)
    # THEN each is an edge; ${!A} is literal text and pseudo parameters are no resources
    assert graph == {"A": {"B"}, "B": {"C"}, "C": {"D"}, "D": {"E"}, "E": {"E"}}
    assert cycles(graph) == [["E", "E"]]
