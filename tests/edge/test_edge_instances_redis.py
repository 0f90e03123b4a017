"""The Redis connections the local edge's instance threads keep (`lucid.store.kept_connection`)
come and go with the threads: a retired instance closes its connection, and however many
instances start, the worker's connections stay within REDIS_MAX_CONNECTIONS. Against the
session's real redis-server, counting what its CLIENT LIST shows."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import redis

from lucid.config import Settings
from lucid.store import resp
from lucid.store.kept_connection import kept_connections
from lucid.store.redis_client import build_redis
from lucid_edge import instances as instances_module
from lucid_edge.instances import Account, FunctionInstances, close_all
from lucid_edge.local import EmbeddedRedis
from tests.edge.test_edge_instances import Gate, deadlines, run, until

KEY = "k" * 32
CAP = 6  # REDIS_MAX_CONNECTIONS: at most 3 kept, the rest of the pool for the client path
NAME = "lucid-kept-test"


def _named(uri: str) -> str:
    return f"{uri}{'&' if '?' in uri else '?'}client_name={NAME}"


class Connections:
    """The process's connections as Redis sees them (CLIENT LIST), and the most seen."""

    def __init__(self, observer: redis.Redis) -> None:
        self.observer = observer
        self.most = 0

    def now(self) -> int:
        count = sum(1 for client in self.observer.client_list() if client["name"] == NAME)
        self.most = max(self.most, count)
        return count


def _handler(client: resp.Redis, gate: Gate, *, through_client: bool) -> Callable[[str], str]:
    """A handler as the functions run: a command on the thread's kept connection (the sign-in
    check's), maybe one through the client, then it waits for the gate (its instance busy)."""

    def handle(name: str) -> str:
        assert kept_connections(client).execute("PING") == b"PONG"
        if through_client:
            client.set(f"kept-test:{name}", name)
        return gate(name)

    return handle


@pytest.mark.usefixtures("redis_client")
def test_retired_instances_close_their_connections_and_the_cap_holds(
    redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a worker whose idle instances retire after 50 ms, on the functions' Redis client
    # with REDIS_MAX_CONNECTIONS=6
    monkeypatch.setattr(instances_module, "IDLE_SECONDS", 0.05)
    monkeypatch.setattr(instances_module, "EAGER_INSTANCES", 10)
    settings = Settings(
        JWT_SECRET_KEY=KEY, REDIS_URI=_named(redis_server.uri), REDIS_MAX_CONNECTIONS=CAP
    )
    client = build_redis(settings)
    account = Account(16)
    function = FunctionInstances("Sessions", account)
    observer = redis.Redis.from_url(redis_server.uri)
    connections = Connections(observer)

    async def wave(size: int, *, through_client: bool = False) -> None:
        # `size` invocations at once, each on an instance of its own, held until all run
        gate = Gate()
        handler = _handler(client, gate, through_client=through_client)
        calls = [
            asyncio.ensure_future(function.invoke(handler, f"call-{i}", **deadlines()))
            for i in range(size)
        ]
        await until(lambda: len(gate.calls) == size, 10)
        connections.now()  # the peak: every instance busy, every connection open
        gate.release.set()
        assert sorted(await asyncio.gather(*calls)) == sorted(f"call-{i}" for i in range(size))
        await until(lambda: function.instance_count == 0, 10)  # they retire

    async def main() -> None:
        # WHEN waves of new instance threads come and go, more than the cap in all
        for _ in range(4):
            await wave(3)
            # THEN each wave's instances take their connections with them
            await until(lambda: connections.now() == 0)
        # WHEN more instances than the cap run at once, on the client path too, THEN all are
        # answered (those that find no connection to keep borrow one per command)
        await wave(9, through_client=True)

    try:
        run(main())
    finally:
        close_all(account, [function])
        client.connection_pool.disconnect()
        observer.close()
    # AND at no time did Redis see more connections from the worker than REDIS_MAX_CONNECTIONS
    assert 0 < connections.most <= CAP
