"""Authorizer answers: which shapes API Gateway accepts and what IAM policies allow."""

from __future__ import annotations

from typing import Any

import pytest

from lucid_edge.authorizer import (
    MalformedResponseError,
    authorizer_event,
    json_copy,
    parse_response,
)

ARN = "arn:aws:execute-api:us-east-1:123456789012:api/test/GET/items/1"


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"principalId": "p", "policyDocument": {"Statement": list(statements)}}


@pytest.mark.parametrize(
    ("statements", "allowed"),
    [
        ([{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": ARN}], True),
        ([{"Action": ["execute-api:*"], "Effect": "Allow", "Resource": ["arn:*/test/*"]}], True),
        ([{"Action": "s3:GetObject", "Effect": "Allow", "Resource": "*"}], False),
        # IAM action names are case-insensitive and take wildcards
        ([{"Action": "EXECUTE-API:invoke", "Effect": "Allow", "Resource": ARN}], True),
        ([{"Action": "execute-api:Inv*", "Effect": "Allow", "Resource": ARN}], True),
        ([{"Action": "execute-api:Invalidate*", "Effect": "Allow", "Resource": ARN}], False),
        (
            [
                {"Action": "*", "Effect": "Allow", "Resource": "*"},
                {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": ARN},
            ],
            False,
        ),
    ],
)
def test_iam_policies_allow_only_what_they_name(
    statements: list[dict[str, Any]], allowed: bool
) -> None:
    assert parse_response(_policy(*statements), simple=False).allows(ARN) is allowed


def test_a_single_statement_object_is_accepted() -> None:
    response = {
        "policyDocument": {"Statement": {"Action": "*", "Effect": "Allow", "Resource": "*"}}
    }
    assert parse_response(response, simple=False).allows(ARN) is True


@pytest.mark.parametrize(
    ("response", "simple"),
    [
        ("yes", True),
        ({"isAuthorized": True, "context": "x"}, True),
        ({"isAuthorized": 1}, True),
        ({"isAuthorized": True}, False),  # simple shape where a policy is expected
        ({"policyDocument": {"Statement": ["x"]}}, False),
    ],
)
def test_malformed_answers_are_refused(response: Any, simple: bool) -> None:
    with pytest.raises(MalformedResponseError):
        parse_response(response, simple)


def test_the_authorizer_event_shares_nothing_mutable_with_the_function_event() -> None:
    # GIVEN a function event with headers, query, path parameters, cookies and a context
    event: dict[str, Any] = {
        "routeKey": "GET /items/{id}",
        "headers": {"authorization": "t"},
        "queryStringParameters": {"q": "1"},
        "pathParameters": {"id": "1"},
        "cookies": ["a=1"],
        "requestContext": {"http": {"method": "GET"}},
    }
    before = json_copy(event)
    # WHEN the authorizer changes everything in its own event
    auth_event = authorizer_event(event, ARN, ("t",))
    for key in ("headers", "queryStringParameters", "pathParameters"):
        auth_event[key]["x"] = "changed"
    auth_event["cookies"].append("b=2")
    auth_event["requestContext"]["http"]["method"] = "POST"
    # THEN the function's event is as API Gateway built it
    assert event == before


def test_a_decision_keeps_the_context_the_authorizer_answered() -> None:
    # GIVEN an authorizer answer with a nested context the authorizer keeps a reference to
    context: dict[str, Any] = {"user": {"roles": ["user"]}}
    decision = parse_response({"isAuthorized": True, "context": context}, simple=True)
    # WHEN the authorizer changes that object after answering
    context["user"]["roles"].append("admin")
    # THEN the cached decision still holds what was answered
    assert decision.context == {"user": {"roles": ["user"]}}


def test_a_tuple_in_the_context_is_a_list_the_authorizer_cannot_reach_into() -> None:
    # GIVEN a Python authorizer answering a tuple holding a mutable object (on AWS the answer
    # is JSON: the function receives a list, built from what was answered)
    grants: dict[str, Any] = {"role": "user"}
    decision = parse_response({"isAuthorized": True, "context": {"grants": (grants,)}}, True)
    # WHEN the authorizer changes that object after answering
    grants["role"] = "admin"
    # THEN the cached decision holds a list with what was answered, as JSON would have made it
    assert decision.context == {"grants": [{"role": "user"}]}


def test_each_request_gets_a_context_of_its_own_flat_or_nested() -> None:
    # GIVEN a cached decision whose context holds scalars only (the gateway's: ids, role, tier,
    # expiry) and one whose context nests an object and a list
    flat = parse_response(
        {"isAuthorized": True, "context": {"user_id": "u-1", "role": "user", "exp": 9, "ok": True}},
        simple=True,
    )
    nested = parse_response(
        {"isAuthorized": True, "context": {"user": {"roles": ["user"]}, "n": 1}}, simple=True
    )
    # WHEN a function changes the copy one request received, at every level
    first = flat.context_copy()
    assert first == {"user_id": "u-1", "role": "user", "exp": 9, "ok": True}
    assert first is not flat.context
    first["role"] = "admin"
    copy = nested.context_copy()
    assert copy == {"user": {"roles": ["user"]}, "n": 1}
    copy["user"]["roles"].append("admin")
    copy["n"] = 2
    # THEN the next request's copy, and the cached decision, are as the authorizer answered
    assert (
        flat.context_copy()
        == flat.context
        == {
            "user_id": "u-1",
            "role": "user",
            "exp": 9,
            "ok": True,
        }
    )
    assert nested.context_copy() == nested.context == {"user": {"roles": ["user"]}, "n": 1}
    # AND a decision without a context gives none
    assert parse_response({"isAuthorized": True}, simple=True).context_copy() is None
