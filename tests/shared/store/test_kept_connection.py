"""Kept connections: the per-request Redis commands of one thread share one connection."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
import redis

from lucid.auth.revocation import SYNC_SECONDS, RevocationList, RevocationRecord, synced_field
from lucid.config import Settings
from lucid.ratelimit.script import ScriptRunner
from lucid.store import resp
from lucid.store.kept_connection import kept_connections, server_run_id
from lucid.store.redis_client import build_redis
from lucid_edge.local import EmbeddedRedis
from tests.utils.layer_redis import layer_redis
from tests.utils.logs import logged_lines
from tests.utils.tied import start_redis

KEY = "k" * 32


def _not_asked() -> RevocationRecord:
    raise AssertionError("the record is not needed while Redis answers")


def test_a_thread_checks_sign_ins_and_rate_limits_on_one_connection(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    # GIVEN the process's client, as the functions build it
    client = build_redis(Settings(JWT_SECRET_KEY=KEY, REDIS_URI=redis_server.uri))
    # Connections are told apart by id: another test's client closing meanwhile (when the
    # garbage collector reaches it) must not change the count this test makes.
    before = {entry["id"] for entry in redis_client.client_list()}
    mark = synced_field(redis_client.info("server")["run_id"])
    try:
        # WHEN one thread checks a sign-in and runs the limiter's script, many times
        for _ in range(5):
            revocations = RevocationList(client, _not_asked, token_lifetime_seconds=900)
            redis_client.hset("lucid:local:revoked-sign-ins", mark, "9999999999")
            assert revocations.is_revoked("s-1") is False
            assert ScriptRunner(client, "return 7")([], []) == 7
        # THEN Redis sees one more connection, not one per caller or per request
        opened = {entry["id"] for entry in redis_client.client_list()} - before
        assert len(opened) == 1
    finally:
        client.connection_pool.disconnect()


def test_a_limiter_whose_client_nobody_else_holds_keeps_working(
    redis_server: EmbeddedRedis,
) -> None:
    # GIVEN a script runner built on a client that only it keeps (its builder let go)
    runner = ScriptRunner(
        build_redis(Settings(JWT_SECRET_KEY=KEY, REDIS_URI=redis_server.uri)), "return 7"
    )
    # WHEN the garbage collector has run THEN the runner still reaches Redis
    gc.collect()
    assert runner([], []) == 7


class _CutShort(resp.Connection):
    """A real connection to Redis whose next read, once told, fails before taking the reply."""

    fail_next_read = False

    def read(self) -> Any:
        if _CutShort.fail_next_read:
            _CutShort.fail_next_read = False
            raise ValueError("the reply could not be decoded")
        return super().read()


def test_a_reply_cut_short_is_never_read_as_the_next_ones(redis_server: EmbeddedRedis) -> None:
    # GIVEN a thread whose command failed half way through reading its reply (its reply is still
    # on the connection the thread keeps)
    client = layer_redis(redis_server.uri, connection_class=_CutShort)
    kept = kept_connections(client)
    try:
        assert kept.execute("SET", "cut", "a") == b"OK"
        _CutShort.fail_next_read = True
        with pytest.raises(ValueError, match="decoded"):
            kept.execute("GET", "cut")
        # WHEN the thread sends its next command THEN it reads that command's own reply
        assert kept.execute("ECHO", "next") == b"next"
        # AND an error Redis answers with leaves the connection as it is
        with pytest.raises(resp.ResponseError):
            kept.execute("INCR", "cut")
        assert kept.execute("GET", "cut") == b"a"
    finally:
        client.close()


def test_kept_connections_are_the_pools_own_and_never_exceed_it(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    # GIVEN a pool of two connections (named, to count them), both in use by the client path
    uri = f"{redis_server.uri}{'&' if '?' in redis_server.uri else '?'}client_name=kept-cap"
    client = layer_redis(uri, max_connections=2, pool_timeout=0.05)
    pool = client.connection_pool
    kept = kept_connections(client)
    busy = [pool.get_connection(), pool.get_connection()]
    for connection in busy:
        connection.connect()
    try:
        # WHEN a thread sends a command on its kept connection THEN it is refused as the client
        # would be (the pool is full), rather than dialling a third connection
        with pytest.raises(resp.ConnectionError):
            kept.execute("PING")
        assert _named(redis_client, "kept-cap") == 2
        # WHEN one of the pool's connections is free again THEN the thread keeps that one
        pool.release(busy.pop())
        assert kept.execute("PING") == b"PONG"
        assert kept.execute("ECHO", "same") == b"same"
        assert _named(redis_client, "kept-cap") == 2
    finally:
        pool.disconnect()


def test_at_most_half_the_pool_is_kept_so_the_client_path_always_has_room(
    redis_server: EmbeddedRedis,
) -> None:
    # GIVEN a pool of two connections; a thread kept one and ended (its place is free again),
    # then this thread kept one (half the pool)
    client = layer_redis(redis_server.uri, max_connections=2, pool_timeout=0.05)
    pool = client.connection_pool
    kept = kept_connections(client)
    ended = threading.Thread(target=kept.execute, args=("PING",))
    ended.start()
    ended.join()
    assert kept.execute("PING") == b"PONG"
    sent, done = threading.Event(), threading.Event()
    replies: list[Any] = []

    def another_thread() -> None:
        replies.append(kept.execute("ECHO", "other"))
        sent.set()
        done.wait(5)  # still alive: a connection it kept would still be held

    other = threading.Thread(target=another_thread)
    other.start()
    try:
        # WHEN another thread, still running, has sent a command
        assert sent.wait(5)
        assert replies == [b"other"]
        # THEN it borrowed the last connection for that command only: the client path gets it
        assert client.ping() is True
    finally:
        done.set()
        other.join()
        pool.disconnect()


def test_threads_finding_the_pool_full_each_wait_one_pool_timeout_side_by_side(
    redis_server: EmbeddedRedis,
) -> None:
    # GIVEN a blocking pool (as the functions build it) whose connections the client path holds
    client = layer_redis(redis_server.uri, max_connections=2, pool_timeout=1.0)
    pool = client.connection_pool
    kept = kept_connections(client)
    busy = [pool.get_connection(), pool.get_connection()]
    waited: list[float] = []

    def command() -> None:
        started = time.monotonic()
        with pytest.raises(resp.ConnectionError):
            kept.execute("PING")
        waited.append(time.monotonic() - started)

    threads = [threading.Thread(target=command) for _ in range(3)]
    try:
        # WHEN three threads that keep no connection yet send a command at once
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # THEN each waits the pool's timeout for a connection, side by side, and is refused:
        # nobody waits while holding what the others need (three in a row would take 3 s)
        assert len(waited) == 3
        assert max(waited) < 2.5
    finally:
        for connection in busy:
            pool.release(connection)
        pool.disconnect()


def _free_places(pool: resp.ConnectionPool) -> int:
    """How many connections the pool could hand out now (taken, then given back)."""
    taken = []
    while (connection := pool.get_connection_now()) is not None:
        taken.append(connection)
    for connection in taken:
        pool.release(connection)
    return len(taken)


def test_a_threads_kept_connection_is_closed_and_given_back_when_the_thread_ends(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    uri = f"{redis_server.uri}?client_name=kept-ends"
    client = layer_redis(uri, max_connections=2, pool_timeout=0.05)
    kept = kept_connections(client)
    try:
        # GIVEN a thread that kept a connection of a pool of two
        ready, end = threading.Event(), threading.Event()

        def work() -> None:
            kept.execute("PING")
            ready.set()
            end.wait(5)

        thread = threading.Thread(target=work)
        thread.start()
        assert ready.wait(5)
        assert _named(redis_client, "kept-ends") == 1
        assert _free_places(client.connection_pool) == 1
        # WHEN the thread ends
        end.set()
        thread.join()
        gc.collect()
        # THEN Redis sees its connection closed, and the pool has both places again
        deadline = time.monotonic() + 5
        while _named(redis_client, "kept-ends") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _named(redis_client, "kept-ends") == 0
        assert _free_places(client.connection_pool) == 2
    finally:
        client.close()


def _named(client: redis.Redis, name: str) -> int:
    """How many connections Redis has from clients named `name`."""
    return len([c for c in client.client_list() if c["name"] == name])


class _Redialled(resp.Connection):
    """A real connection whose replies to one command are lost, the connection dropping, the
    next `drops` times it is sent, never twice in a row: each time the client dials again (as
    after a failover) and the command sent again on the new dial is answered."""

    command = "HMGET"
    drops = 0
    dropped_last = False

    def call(self, args: Sequence[object]) -> Any:
        if args[0] == _Redialled.command and _Redialled.drops and not self.dropped_last:
            _Redialled.drops -= 1
            self.dropped_last = True
            super().call(args)
            raise resp.ConnectionError("the connection dropped")
        self.dropped_last = False
        return super().call(args)


def test_a_command_for_a_server_is_made_again_for_the_server_a_new_dial_reaches(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    # GIVEN a thread that knows which server process its kept connection speaks to
    client = layer_redis(redis_server.uri, connection_class=_Redialled)
    pool = client.connection_pool
    kept = kept_connections(client)
    made_for: list[str] = []

    def echo(run_id: str) -> tuple[str, ...]:
        made_for.append(run_id)
        return ("ECHO", run_id)

    run_id = redis_client.info("server")["run_id"]
    _Redialled.command = "ECHO"
    try:
        connection = pool.get_connection()
        assert (server_run_id(connection), server_run_id(connection)) == (run_id, run_id)
        pool.release(connection)
        assert kept.execute_for_server(echo) == run_id.encode()
        # WHEN the connection drops under the next command and is dialled again
        _Redialled.drops = 1
        # THEN the command is made again for the server the new dial reached, and answered once
        assert kept.execute_for_server(echo) == run_id.encode()
        assert made_for == [run_id] * 3
        # WHEN every dial drops under the command THEN no reply is taken: a connection error
        _Redialled.drops = 2
        with pytest.raises(resp.ConnectionError, match="dialled again"):
            kept.execute_for_server(echo)
    finally:
        _Redialled.drops = 0
        pool.disconnect()


def test_a_command_whose_connection_dropped_is_retried_as_its_retry_says(
    redis_server: EmbeddedRedis,
) -> None:
    # GIVEN a kept connection whose reply to INCRBY is lost once, the connection dropping after
    # Redis ran it (as the rate limiter's script may be)
    client = layer_redis(redis_server.uri, connection_class=_Redialled)
    kept = kept_connections(client)
    _Redialled.command, _Redialled.drops = "INCRBY", 1
    try:
        # WHEN it is sent with a retry of its own THEN the new dial sends the retry, not the
        # command again: 5 then 1, as the limiter sends its script again without its give-back
        assert kept.execute("INCRBY", "retried", 5, again=("INCRBY", "retried", 1)) == 6
    finally:
        _Redialled.command, _Redialled.drops = "HMGET", 0
        client.close()


def test_a_server_that_refuses_info_is_one_process_to_its_callers(
    redis_server: EmbeddedRedis, redis_client: redis.Redis
) -> None:
    # GIVEN a Redis user that may not run INFO (an ACL), and revocations checked as that user
    redis_client.acl_setuser(
        "no-info", enabled=True, nopass=True, keys=["*"], commands=["+@all", "-info"]
    )
    host_port = redis_server.uri.removeprefix("redis://")
    client = build_redis(Settings(JWT_SECRET_KEY=KEY, REDIS_URI=f"redis://no-info:x@{host_port}"))
    asked = []

    def record() -> RevocationRecord:
        asked.append(1)
        return _EmptyRecord()

    try:
        revocations = RevocationList(client, record, token_lifetime_seconds=900)
        # WHEN it checks sign-ins THEN the copy is loaded once and vouches for itself after
        with logged_lines() as lines:
            for _ in range(3):
                assert revocations.is_revoked("s-1") is False
        assert len(asked) == 1
        assert redis_client.hexists("lucid:local:revoked-sign-ins", synced_field(""))
        # AND the refusal is one WARNING line saying what it costs, not the ERROR of credentials
        # refused (the README's known limitation: only a restore goes undetected; it said "it
        # needs every command the gateway sends")
        assert [(line["level"], line["message"]) for line in lines] == [
            (
                "WARNING",
                "Redis refuses INFO to REDIS_URI's user (NOPERM INFO): a Redis restart that "
                "restores older data (a snapshot, a replica that lagged) cannot be told from the "
                "server that loaded the revocation copy, so revocations the restored copy lacks "
                "may go unseen until its next reload (at most 30 s); nothing else is lost. "
                "Allow it with ACL SETUSER <user> +info",
            )
        ]
        assert lines[0]["code"] == "NOPERM INFO"
        assert f"(at most {SYNC_SECONDS} s)" in lines[0]["message"]
        with pytest.raises(resp.ResponseError):  # (the ACL refuses INFO indeed)
            client.execute_command("INFO", "server")
    finally:
        client.connection_pool.disconnect()
        redis_client.acl_deluser("no-info")


def test_a_server_whose_info_is_renamed_away_is_one_warning_too() -> None:
    # GIVEN a Redis whose configuration renames INFO away (rename-command INFO ""), and
    # revocations checked on it
    with start_redis(config=["--rename-command", "INFO", ""]) as server:
        client = build_redis(Settings(JWT_SECRET_KEY=KEY, REDIS_URI=server.uri))
        try:
            revocations = RevocationList(client, _EmptyRecord, token_lifetime_seconds=900)
            # WHEN it checks sign-ins, and INFO is sent again THEN the checks are answered
            with logged_lines() as lines:
                for _ in range(3):
                    assert revocations.is_revoked("s-1") is False
                with pytest.raises(resp.ResponseError, match="unknown command `INFO`"):
                    client.execute_command("INFO", "server")
            # AND Redis's unknown INFO is one WARNING line saying what it costs and what to fix,
            # as a NOPERM of INFO is (it said nothing)
            assert [(line["level"], line["code"], line["message"]) for line in lines] == [
                (
                    "WARNING",
                    "unknown INFO",
                    "Redis does not know INFO (ERR unknown command: renamed in its "
                    "configuration): a Redis restart that restores older data (a snapshot, a "
                    "replica that lagged) cannot be told from the server that loaded the "
                    "revocation copy, so revocations the restored copy lacks may go unseen "
                    "until its next reload (at most 30 s); nothing else is lost. Remove the "
                    "rename-command of INFO from the server's configuration",
                )
            ]
        finally:
            client.connection_pool.disconnect()


class _EmptyRecord:
    def is_revoked(self, sid: str) -> bool:
        return False

    def revoked_since(self, since: Any) -> dict[str, Any]:
        return {}
