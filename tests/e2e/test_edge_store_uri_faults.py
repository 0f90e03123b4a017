"""`lucid serve` with a store URI its driver refuses: the edge starts, the routes that need the
store answer 503 problem+json naming it over real HTTP, and the functions log ERROR lines
naming the variable (one per function instance that met it)."""

from __future__ import annotations

import json

import pytest

from tests.e2e.subprocess_edge import subprocess_edge


@pytest.mark.parametrize(
    ("setting", "uri", "store", "hidden"),
    [
        ("MONGODB_URI", "mongodb://:bad", "mongodb", ":bad"),
        ("REDIS_URI", "redis://host:notaport", "redis", "notaport"),
    ],
)
def test_the_edge_answers_503_naming_a_store_whose_uri_is_refused(
    setting: str, uri: str, store: str, hidden: str
) -> None:
    # GIVEN the edge serving with one store URI its driver refuses, rate limits on as deployed
    with subprocess_edge({setting: uri, "RATE_LIMIT_ENABLED": "true"}, workers=1) as edge:
        with edge.client() as client:
            # WHEN a route that needs the store is called, twice, and one that needs none
            answers = [client.get("/auth/status") for _ in range(2)]
            health = client.get("/health")
        output = edge.output()
    # THEN the store's routes are its 503, as problem+json naming the store
    for answer in answers:
        assert answer.status_code == 503
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"] == "https://lucid.dev/problems/store-unavailable"
        assert answer.json()["store"] == store
    assert health.status_code == 200
    # AND the log names the variable in ERROR lines (one per function instance that met it)
    errors = [
        record
        for record in (json.loads(line) for line in output.splitlines() if line.startswith("{"))
        if record.get("level") == "ERROR"
    ]
    assert errors
    assert {record.get("setting") for record in errors} == {setting}
    # AND nothing of the URI is in the answers or the log
    assert hidden not in output
    assert all(hidden not in answer.text for answer in answers)
