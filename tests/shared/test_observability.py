"""Logs and metrics per invocation (lucid.observability) through real Mangum handlers.

Every line a function logs carries API Gateway's request id as `correlation_id` and the Lambda
context's keys; each invocation prints its own metrics as one EMF line (nothing when it recorded
nothing), plus Powertools' ColdStart metric on the first; concurrent invocations in threads of
one process, as the local edge runs them, never mix either.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from typing import Annotated, Any

import httpx
import pytest
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.metrics.exceptions import MetricValueError
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.exceptions import (
    MetricNameError,
    MetricUnitError,
)
from fastapi import APIRouter, Depends

from lucid import observability
from lucid.config import Settings
from lucid.observability import count, record
from lucid.web.app import create_app, lambda_handler
from lucid_edge.instances import Account, FunctionInstances, close_all
from tests.utils.events import http_event, lambda_context
from tests.utils.logs import logged_lines
from tests.utils.metrics import emitted, flushed

router = APIRouter()
work_log = logging.getLogger("lucid.test.work")


def in_a_worker_thread() -> None:
    # A plain `def` dependency: FastAPI runs it in a worker thread of its pool.
    work_log.info("dependency")


@router.get("/work")
async def work(step: Annotated[None, Depends(in_a_worker_thread)], n: int = 0) -> dict[str, int]:
    work_log.info("started")
    for _ in range(n):
        count("WorkDone")
    await asyncio.sleep(0.02)  # other invocations run meanwhile
    work_log.info("finished")
    return {"n": n}


@router.get("/boom")
async def boom() -> dict[str, str]:
    raise RuntimeError("a bug")


@router.get("/bad-metric")
async def bad_metric() -> dict[str, str]:
    record("", 1)  # a name CloudWatch refuses
    return {"status": "ok"}


def fresh_handler() -> Any:
    """A new function instance: its first invocation is a cold start."""
    return lambda_handler(create_app("observed", router, rate_limited=False))


def invoke(handler: Any, path: str = "/work", query: str = "") -> tuple[dict[str, Any], str]:
    """One invocation with a real event and Lambda context; (result, API Gateway request id)."""
    event = http_event("GET", path, query=query)
    return handler(event, lambda_context("ObservedFunction")), event["requestContext"]["requestId"]


def emf_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]


def total(line: dict[str, Any], metric: str) -> float:
    """The sum of `metric` in one EMF line (one value or a list of them)."""
    values = line[metric]
    return float(sum(values) if isinstance(values, list) else values)


@pytest.fixture
def handler(capsys: pytest.CaptureFixture[str]) -> Any:
    """A function past its cold start, with nothing printed yet."""
    flushed()
    warm = fresh_handler()
    invoke(warm, query="n=0")
    capsys.readouterr()
    return warm


def test_every_line_of_an_invocation_carries_its_correlation_id_and_context() -> None:
    handler = fresh_handler()
    # WHEN one invocation logs from the route, a worker-thread dependency and the access log
    with logged_lines() as lines:
        result, request_id = invoke(handler)
    assert result["statusCode"] == 200
    # THEN each line carries API Gateway's request id and the Lambda context's keys
    messages = {line["message"] for line in lines}
    assert {"dependency", "started", "finished", "request"} <= messages
    for line in lines:
        assert line["correlation_id"] == request_id
        assert line["service"] == Settings().SERVICE_NAME
        assert line["function_name"] == "ObservedFunction"
        assert line["function_memory_size"] == "512"  # Lambda's context gives a string
        assert line["function_request_id"]
        assert line["cold_start"] is True
    # AND the next invocation is warm, with its own id and nothing left of the first
    with logged_lines() as lines:
        _, second_id = invoke(handler)
    assert {line["correlation_id"] for line in lines} == {second_id}
    assert {line["cold_start"] for line in lines} == {False}


def test_lines_outside_an_invocation_carry_no_request_keys(handler: Any) -> None:
    invoke(handler)
    with logged_lines() as lines:
        work_log.info("between invocations")
    (line,) = lines
    assert "correlation_id" not in line
    assert "function_request_id" not in line


def test_concurrent_invocations_in_threads_never_mix_ids_or_metrics(
    handler: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN 16 invocations on up to 8 instances (threads) of one process, as the local edge runs
    # them, each counting its own number of events
    account = Account(8)
    instances = FunctionInstances("Work", account)

    async def all_at_once() -> list[tuple[dict[str, Any], str]]:
        deadline = time.monotonic() + 30
        calls = [
            instances.invoke(
                invoke,
                handler,
                "/work",
                f"n={n}",
                function_deadline=deadline,
                integration_deadline=deadline,
            )
            for n in range(1, 17)
        ]
        return list(await asyncio.gather(*calls))

    # (a loop of its own: the main thread's, which Mangum uses, stays as it is)
    loop = asyncio.new_event_loop()
    try:
        with logged_lines() as lines:
            results = loop.run_until_complete(all_at_once())
    finally:
        close_all(account, [instances])
        loop.close()
    # THEN every line names the invocation that wrote it: four lines per request id
    counted = {request_id: json.loads(r["body"])["n"] for r, request_id in results}
    assert Counter(line["correlation_id"] for line in lines) == dict.fromkeys(counted, 4)
    # AND each invocation printed one EMF line with exactly its own count
    printed = emf_lines(capsys.readouterr().out)
    assert {line["correlation_id"]: total(line, "WorkDone") for line in printed} == counted


REQUEST_METRICS = {"Latency", "Fault", "ClientError"}


def test_an_invocation_prints_its_metrics_once_with_namespace_and_service(
    handler: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _, request_id = invoke(handler, query="n=3")
    (line,) = emf_lines(capsys.readouterr().out)
    settings = Settings()
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == settings.POWERTOOLS_METRICS_NAMESPACE
    # THEN its metrics are published for the service, its route and its function
    assert directive["Dimensions"] == [["service"], ["service", "route"], ["service", "function"]]
    assert line["service"] == settings.SERVICE_NAME
    assert line["route"] == "GET /work"
    assert line["function"] == "ObservedFunction"
    assert line["correlation_id"] == request_id
    totals = emitted(json.dumps(line))
    assert totals["WorkDone"] == 3
    assert set(totals) == {"WorkDone"} | REQUEST_METRICS


def test_every_request_records_its_latency_and_outcome(
    handler: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an answer of each class: 200, a 404 from the function, a route raising (500)
    invoke(handler, query="n=0")
    invoke(handler, "/nowhere")
    result, _ = invoke(handler, "/boom")
    assert result["statusCode"] == 500
    lines = emf_lines(capsys.readouterr().out)
    # THEN one line per invocation, each with its latency and whether it was a 4xx or a 5xx
    assert [(total(line, "ClientError"), total(line, "Fault")) for line in lines] == [
        (0, 0),
        (1, 0),
        (0, 1),
    ]
    assert all(total(line, "Latency") > 0 for line in lines)
    definitions = lines[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    (unit,) = {m["Unit"] for m in definitions if m["Name"] == "Latency"}
    assert unit == "Milliseconds"
    # AND the slow route's latency is its own (it sleeps 20 ms)
    assert total(lines[0], "Latency") >= 20


def test_a_cold_start_prints_powertools_cold_start_metric_apart(
    capsys: pytest.CaptureFixture[str],
) -> None:
    flushed()
    capsys.readouterr()
    invoke(fresh_handler(), query="n=0")
    line, request = emf_lines(capsys.readouterr().out)
    assert "ColdStart" not in request
    assert total(line, "ColdStart") == 1
    assert line["function_name"] == "ObservedFunction"
    assert line["service"] == Settings().SERVICE_NAME


def test_a_metric_cloudwatch_would_refuse_is_dropped_and_the_request_answers(
    handler: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with logged_lines() as lines:
        result, _ = invoke(handler, "/bad-metric")
    assert result["statusCode"] == 200
    assert any(line["message"].startswith("metric '' dropped") for line in lines)
    (line,) = emf_lines(capsys.readouterr().out)
    assert set(emitted(json.dumps(line))) == REQUEST_METRICS


def test_metrics_without_a_namespace_are_dropped_and_the_request_answers(
    handler: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN no namespace at all (Powertools would raise SchemaValidationError when flushing)
    monkeypatch.setattr(observability, "NAMESPACE", None)
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE")
    # WHEN an invocation records a metric THEN it still answers, and says what it dropped
    with logged_lines() as lines:
        result, _ = invoke(handler, query="n=2")
    assert result["statusCode"] == 200
    assert any("namespace" in line["message"] for line in lines)
    assert emf_lines(capsys.readouterr().out) == []


def test_the_namespace_defaults_when_the_variable_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE")
    assert Settings().POWERTOOLS_METRICS_NAMESPACE == "Lucid"


def test_the_service_name_falls_back_to_powertools_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SERVICE_NAME", raising=False)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "from-powertools")
    assert Settings().SERVICE_NAME == "from-powertools"
    monkeypatch.setenv("SERVICE_NAME", "ours")
    assert Settings().SERVICE_NAME == "ours"


def test_a_warm_invocation_of_a_plain_handler_that_records_nothing_prints_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a handler that is not an HTTP app (the authorizer's kind), past its cold start
    @observability.instrument
    def plain(event: dict[str, Any], context: Any) -> dict[str, bool]:
        return {"isAuthorized": False}

    plain(http_event("GET", "/"), lambda_context("PlainFunction"))
    capsys.readouterr()
    # WHEN it records nothing THEN it prints nothing
    assert plain(http_event("GET", "/"), lambda_context("PlainFunction")) == {"isAuthorized": False}
    assert capsys.readouterr().out == ""


def test_sinks_hear_counted_events_and_the_cold_start_with_their_function() -> None:
    heard: list[tuple[str | None, str]] = []

    def sink(function: str | None, name: str) -> None:
        heard.append((function, name))

    def broken(function: str | None, name: str) -> None:
        raise RuntimeError("a sink's own bug")

    observability.add_sink(broken)
    observability.add_sink(sink)
    try:
        # WHEN a fresh function counts two events (a broken sink beside the good one)
        result, _ = invoke(fresh_handler(), query="n=2")
    finally:
        observability.remove_sink(sink)
        observability.remove_sink(broken)
    # THEN the request still answers, and the sink heard both events and the cold start
    assert result["statusCode"] == 200
    assert heard == [("ObservedFunction", "WorkDone")] * 2 + [("ObservedFunction", "ColdStart")]
    # AND a removed sink hears nothing more
    invoke(fresh_handler(), query="n=1")
    assert len(heard) == 3


def test_requests_served_without_an_invocation_keep_no_metrics() -> None:
    # GIVEN the app served directly (no Lambda handler: uvicorn, a test client)
    app = create_app("observed", router, rate_limited=False)

    async def three_requests() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
            return [(await client.get("/work")).status_code for _ in range(3)]

    loop = asyncio.new_event_loop()  # the main thread's, which Mangum uses, stays as it is
    try:
        assert loop.run_until_complete(three_requests()) == [200] * 3
    finally:
        loop.close()
    # THEN nothing accumulates where no invocation will ever print it
    assert observability._outside.metrics is None or not observability._outside.metrics.metrics


def test_powertools_switch_turns_the_lines_off(
    handler: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    result, _ = invoke(handler, query="n=2")
    assert result["statusCode"] == 200
    assert emf_lines(capsys.readouterr().out) == []
    # AND nothing recorded then is printed by the next invocation
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED")
    invoke(handler, query="n=1")
    (line,) = emf_lines(capsys.readouterr().out)
    assert total(line, "WorkDone") == 1


def test_an_invocation_line_is_the_line_powertools_prints_for_the_same_metrics(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN an invocation counting twice, recording bytes and answering a 404
    def work(event: Any, context: Any) -> None:
        count("RateLimitAdmitted")
        count("RateLimitAdmitted")
        record("Bytes", 3, observability.MetricUnit.Bytes)
        observability.observe_request("GET /users/me", 404, 1.5)

    handler = observability.instrument(work)
    handler(http_event("GET", "/users/me"), lambda_context("UsersFunction"))  # the cold start
    capsys.readouterr()
    handler(http_event("GET", "/users/me"), lambda_context("UsersFunction"))
    (ours,) = emf_lines(capsys.readouterr().out)
    # WHEN Powertools' EphemeralMetrics records the same (as this module did before issue 11)
    powertools = EphemeralMetrics(namespace=observability.NAMESPACE, service=observability.SERVICE)
    powertools.add_metadata(key="correlation_id", value=ours["correlation_id"])
    for _ in range(2):
        powertools.add_metric(name="RateLimitAdmitted", unit=MetricUnit.Count, value=1)
    powertools.add_metric(name="Bytes", unit=MetricUnit.Bytes, value=3)
    powertools.add_dimensions(service=observability.SERVICE, route="GET /users/me")
    powertools.add_dimensions(service=observability.SERVICE, function="UsersFunction")
    powertools.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=1.5)
    powertools.add_metric(name="Fault", unit=MetricUnit.Count, value=0)
    powertools.add_metric(name="ClientError", unit=MetricUnit.Count, value=1)
    theirs = json.loads(json.dumps(powertools.serialize_metric_set()))
    # THEN the lines are the same, key order included, but for the time they were taken
    assert abs(ours["_aws"].pop("Timestamp") - theirs["_aws"].pop("Timestamp")) < 60_000
    assert json.dumps(ours) == json.dumps(theirs)


def test_a_metric_at_powertools_limit_of_100_values_is_printed_then_and_the_rest_later(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def work(event: dict[str, Any], context: Any) -> None:
        for _ in range(150):
            count("Hit")

    handler = observability.instrument(work)
    handler(http_event("GET", "/work"), lambda_context("Hits"))
    lines = [line for line in emf_lines(capsys.readouterr().out) if "Hit" in line]
    assert [len(line["Hit"]) for line in lines] == [100, 50]


@pytest.mark.parametrize(
    ("name", "unit", "value", "refused"),
    [
        ("x" * 256, MetricUnit.Count, 1, MetricNameError),
        ("Hit", MetricUnit.Count, "1", MetricValueError),
        ("Hit", "Furlongs", 1, MetricUnitError),
    ],
)
def test_what_powertools_refuses_the_metric_set_refuses_the_same_way(
    name: str, unit: Any, value: Any, refused: type[Exception]
) -> None:
    # GIVEN a recording CloudWatch would refuse THEN both refuse it with Powertools' exception
    with pytest.raises(refused):
        observability.MetricSet().add_metric(name=name, unit=unit, value=value)
    with pytest.raises(refused):
        EphemeralMetrics(namespace="N").add_metric(name=name, unit=unit, value=value)
    # AND a unit given by its name is the unit
    metrics = observability.MetricSet()
    metrics.add_metric(name="Size", unit="Bytes", value=2)
    assert metrics.units == {"Size": "Bytes"}
