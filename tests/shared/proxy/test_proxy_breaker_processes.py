"""Two function instances in two processes share one breaker through the real Redis."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable

import redis

from lucid.proxy import BreakerState, Proxy
from lucid_edge.local import EmbeddedRedis
from tests.shared.proxy.conftest import proxy_request, proxy_settings
from tests.shared.proxy.proxy_backends import BackendServer
from tests.shared.proxy.proxy_worker import serve


def test_an_open_breaker_in_one_process_stops_the_other(
    backend: BackendServer,
    make_proxy: Callable[..., Proxy],
    redis_server: EmbeddedRedis,
    redis_client: redis.Redis,
) -> None:
    overrides = {"BLOCKCHAIN_SERVICE_URL": backend.url}
    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    other = context.Process(target=serve, args=(child_end, redis_server.uri, overrides))
    other.start()
    try:

        def call_other() -> tuple[int, str]:
            parent_end.send("call")
            assert parent_end.poll(20), "the other instance did not answer"
            status, state = parent_end.recv()
            return int(status), str(state)

        here = make_proxy(proxy_settings(**overrides))
        # GIVEN the other instance has served one healthy call (and cached CLOSED)
        assert call_other() == (200, "closed")
        # WHEN this instance sees four failures and opens the breaker
        backend.mode = "fail"
        for _ in range(4):
            assert here.forward(proxy_request()).status == 500
        assert here.breakers["blockchain"].state is BreakerState.OPEN
        # THEN the other instance answers 503 without calling the backend
        assert call_other() == (503, "open")
        assert len(backend.received) == 5
        # WHEN the open period ends and the backend is back, the other instance's probe closes it
        time.sleep(1.05)
        backend.mode = "ok"
        assert call_other() == (200, "closed")
        # THEN this instance sees it closed too
        assert here.forward(proxy_request()).status == 200
        # (mypy keeps the state an assert above narrowed: it cannot see the calls change it)
        assert here.breakers["blockchain"].state is BreakerState.CLOSED  # type: ignore[comparison-overlap]
        assert len(backend.received) == 7
    finally:
        parent_end.send("stop")
        other.join(timeout=20)
        parent_end.close()
        child_end.close()
    assert other.exitcode == 0
