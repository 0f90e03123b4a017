"""Leases: a busy caller is decided in Redis a few times, not on every request, and the limits
still hold (never more admissions; early refusals within the stated bound)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

import pytest
import redis

from lucid.errors import ServiceUnavailableError
from lucid.ratelimit import RateLimiter
from lucid.ratelimit.lease import LEASE_SECONDS, LEASE_SHARE, NO_LEASE, Leases, Spent, TripTerms
from lucid.ratelimit.window import LUA_SCRIPT
from lucid.store import resp
from lucid_edge.local import EmbeddedRedis
from tests.shared.ratelimit.helpers import limiter_for
from tests.utils.layer_redis import layer_redis
from tests.utils.tied import start_redis

IP = "198.51.100.7"


def _script_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    calls = (stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))
    return sum(int(count) for count in calls)


def _admitted(limiter: RateLimiter, attempts: int) -> int:
    return sum(limiter.check(limiter.policies.public, IP).allowed for _ in range(attempts))


def _two_instances(client: resp.Redis, quota: int) -> tuple[RateLimiter, RateLimiter]:
    """Two instances' limiters (each its own leases) on one Redis, with an hour's window."""
    first, second = (
        limiter_for(client, RATE_LIMIT_PUBLIC=quota, RATE_LIMIT_WINDOW_SECONDS=3600)
        for _ in range(2)
    )
    return first, second


def test_a_busy_caller_is_decided_in_redis_a_few_times_with_exact_headers(
    redis_client: redis.Redis,
    store_redis: resp.Redis,
) -> None:
    # GIVEN one instance and a caller with a large quota
    limiter = limiter_for(store_redis, RATE_LIMIT_PUBLIC=100_000, RATE_LIMIT_WINDOW_SECONDS=3600)
    redis_client.config_resetstat()
    # WHEN the caller sends 300 requests back to back
    decisions = [limiter.check(limiter.policies.public, IP) for _ in range(300)]
    # THEN all pass, each saying exactly what is left, and Redis was asked far fewer times
    assert all(decision.allowed for decision in decisions)
    assert [d.remaining for d in decisions] == list(range(100_000 - 1, 100_000 - 301, -1))
    # ...and the same window's end, whether Redis or a lease decided (the hour's windows start
    # at multiples of 3,600 s: the burst takes well under a second of it)
    resets = {d.reset_seconds for d in decisions}
    assert max(resets) - min(resets) <= 1
    assert _script_calls(redis_client) <= 20  # 1, 1, 2, 4, ... then 32 slots per trip
    # AND Redis has counted every admitted request (plus at most the lease in hand)
    counted = int(redis_client.hget(limiter.policies.public.key(IP), "c") or 0)
    assert 300 <= counted <= 300 + limiter.settings.RATE_LIMIT_LEASE_MAX


def test_two_instances_sharing_a_caller_admit_exactly_the_quota(store_redis: resp.Redis) -> None:
    # GIVEN two instances (their own leases) taking turns on one caller with a quota of 1,000
    first, second = (
        limiter_for(store_redis, RATE_LIMIT_PUBLIC=1000, RATE_LIMIT_WINDOW_SECONDS=3600)
        for _ in range(2)
    )
    # WHEN each sends 800 requests, in bursts of 7 and 5
    admitted = 0
    for _ in range(160):
        admitted += _admitted(first, 7) if admitted % 2 else _admitted(second, 5)
    admitted += _admitted(first, 800) + _admitted(second, 800)
    # THEN exactly the quota passed: no slot was spent twice, none was left unspent
    assert admitted == 1000


def test_slots_left_in_a_quiet_instance_refuse_others_early_then_come_back(
    store_redis: resp.Redis,
) -> None:
    quota = 1000
    busy, quiet = _two_instances(store_redis, quota)
    # GIVEN the quiet instance served a burst and holds a lease when its traffic stops
    spent_by_quiet = _admitted(quiet, 40)
    # WHEN another instance spends everything it can
    spent_by_busy = _admitted(busy, 2 * quota)
    # THEN it is refused early, by no more than the stated bound (what the quiet one holds)
    stranded = quota - spent_by_quiet - spent_by_busy
    assert 0 < stranded <= min(busy.settings.RATE_LIMIT_LEASE_MAX, (quota - 1) // LEASE_SHARE)
    # AND once its lease has lapsed, the quiet instance's next round trip gives the unspent
    # slots back to everyone
    time.sleep(LEASE_SECONDS)
    assert _admitted(quiet, 1) == 1
    assert _admitted(busy, quota) == stranded - 1
    assert _admitted(quiet, 1) + _admitted(busy, 1) == 0


def test_near_the_quota_every_request_is_decided_in_redis(
    redis_client: redis.Redis, store_redis: resp.Redis
) -> None:
    # GIVEN a quota so small that 1/32 of it is less than one slot
    limiter = limiter_for(store_redis, RATE_LIMIT_PUBLIC=LEASE_SHARE, RATE_LIMIT_WINDOW_SECONDS=60)
    redis_client.config_resetstat()
    # WHEN the caller spends it THEN each request was one round trip, and the next is refused
    assert _admitted(limiter, LEASE_SHARE) == LEASE_SHARE
    assert _script_calls(redis_client) == LEASE_SHARE
    assert not limiter.check(limiter.policies.public, IP).allowed


def test_lease_max_zero_asks_redis_for_every_request(
    redis_client: redis.Redis, store_redis: resp.Redis
) -> None:
    limiter = limiter_for(store_redis, RATE_LIMIT_PUBLIC=10_000, RATE_LIMIT_LEASE_MAX=0)
    redis_client.config_resetstat()
    assert _admitted(limiter, 50) == 50
    assert _script_calls(redis_client) == 50


def test_a_lease_lapses_after_its_time_and_a_cold_caller_asks_for_none() -> None:
    # GIVEN a lease of 4 slots for a key, on a clock the test moves
    now = [100.0]
    leases = Leases(max_slots=8, clock=lambda: now[0])
    leases.record("k", TripTerms(4, 0, -1), granted=4, remaining=50, reset_us=30_000_000, window=7)
    assert leases.spend("k") is not None
    # WHEN its time has passed THEN it admits nothing more
    now[0] += LEASE_SECONDS
    assert leases.spend("k") is None
    # AND the next round trip gives back the 3 unspent slots and, the caller being cold, asks
    # for no new lease
    terms = leases.terms("k")
    assert (terms.extra, terms.back, terms.back_window) == (0, 3, 7)


def _hot_caller_asking() -> tuple[list[float], Leases, TripTerms]:
    """A caller seen at t = 0 whose next trip, at t = 0.1 s, asks for a lease (of 1 slot)."""
    now = [0.0]
    leases = Leases(max_slots=8, clock=lambda: now[0])
    leases.record("k", NO_LEASE, granted=0, remaining=500, reset_us=30_000_000, window=3)
    now[0] = 0.1
    terms = leases.terms("k")
    assert terms.extra == 1
    return now, leases, terms


def test_one_trip_at_a_time_asks_for_a_lease_and_a_cold_trip_does_not_stop_later_ones() -> None:
    # GIVEN a hot caller's trip asking for a lease is under way
    now, leases, asking = _hot_caller_asking()
    # THEN a trip set out meanwhile (another thread) asks for none: its lease would replace
    # the first one's, and that one's slots would be counted in Redis and never spent
    assert leases.terms("k") == NO_LEASE
    leases.record("k", asking, granted=1, remaining=498, reset_us=30_000_000, window=3)
    # AND after a cold trip (no lease asked), the next hot one asks again
    now[0] = 2.0
    cold = leases.terms("k")
    assert cold.extra == 0
    leases.record("k", cold, granted=0, remaining=497, reset_us=28_000_000, window=3)
    now[0] = 2.1
    assert leases.terms("k").extra == 2  # twice the slot spent of the last lease


def test_leases_are_kept_for_at_most_max_keys_callers_the_oldest_going_first() -> None:
    leases = Leases(max_slots=8, clock=lambda: 0.0, max_keys=3)

    def lease(key: str) -> None:
        leases.record(key, TripTerms(4, 0, -1), granted=4, remaining=50, reset_us=9**9, window=1)

    # GIVEN leases for exactly as many callers as the instance keeps: all are kept
    for key in ("a", "b", "c"):
        lease(key)
    assert all(leases.spend(key) is not None for key in ("a", "b", "c"))
    # WHEN one more caller takes a lease THEN only the oldest's is forgotten
    lease("d")
    assert [leases.spend(key) is not None for key in ("a", "b", "c", "d")] == [
        False,
        True,
        True,
        True,
    ]


def test_a_lease_never_outlives_the_window_it_was_charged_in() -> None:
    now = [0.0]
    leases = Leases(max_slots=8, clock=lambda: now[0])
    # GIVEN a lease taken 0.2 s before its window ends
    leases.record("k", TripTerms(8, 0, -1), granted=8, remaining=500, reset_us=200_000, window=3)
    spent = leases.spend("k")
    assert spent == Spent(remaining=499, reset_seconds=1)
    # WHEN the window has ended THEN the lease is gone, and a hot caller doubles what it spent
    now[0] += 0.2
    assert leases.spend("k") is None
    assert leases.terms("k").extra == 2


def test_a_slow_reply_does_not_carry_a_lease_past_its_window() -> None:
    # GIVEN a hot caller's trip asking for a lease is set out at t = 0.1 s
    now, leases, terms = _hot_caller_asking()
    # WHEN Redis's reply, 0.3 s before the end of the window it was charged in, comes 0.5 s
    # later (Redis read its clock somewhere in between: that window ended by t = 0.4 s)
    now[0] = 0.6
    leases.record("k", terms, granted=1, remaining=499, reset_us=300_000, window=3)
    # THEN the lease is over: its slot is never spent in the next window
    assert leases.spend("k") is None


@pytest.mark.parametrize("loss", ["flushdb", "restart"])
def test_after_redis_lost_its_data_leases_add_at_most_what_they_held(
    own_redis: EmbeddedRedis, loss: str
) -> None:
    quota = 1000
    client, layer = redis.Redis.from_url(own_redis.uri), layer_redis(own_redis.uri)
    holder, other = _two_instances(layer, quota)
    # GIVEN an instance holding a lease for a busy caller
    _admitted(holder, 40)
    held = int(client.hget(holder.policies.public.key(IP), "c") or 0) - 40
    assert 0 < held <= min(holder.settings.RATE_LIMIT_LEASE_MAX, (quota - 1) // LEASE_SHARE)
    with contextlib.ExitStack() as restarted:
        # WHEN Redis loses its data (FLUSHDB, or a restart without persistence, which also
        # drops every connection and the script) and the caller goes on
        if loss == "restart":
            own_redis.stop()
            restarted.enter_context(start_redis(own_redis.port))
        else:
            client.flushdb()
        after = _admitted(other, 2 * quota) + _admitted(holder, 2 * quota)
        client.close()
        layer.close()
    # THEN it gets a whole quota again, as it would without leases, plus only the slots the
    # instance held (stated in lucid.ratelimit.lease)
    assert after == quota + held


class _ReplyLost(resp.Connection):
    """A real connection whose next script reply, once told, is lost after Redis ran the script
    (the connection drops, as in a failover or a network cut): the client dials again."""

    lose_next = False

    def call(self, args: Sequence[object]) -> Any:
        reply = super().call(args)
        if args[0] in ("EVALSHA", "EVAL") and _ReplyLost.lose_next:
            _ReplyLost.lose_next = False
            raise resp.ConnectionError("the connection dropped")
        return reply


def test_a_trip_sent_again_after_its_reply_was_lost_gives_nothing_back_twice(
    redis_server: EmbeddedRedis, store_redis: resp.Redis
) -> None:
    quota = 1000
    lossy = layer_redis(redis_server.uri, connection_class=_ReplyLost)
    holder = limiter_for(lossy, RATE_LIMIT_PUBLIC=quota, RATE_LIMIT_WINDOW_SECONDS=3600)
    other = limiter_for(store_redis, RATE_LIMIT_PUBLIC=quota, RATE_LIMIT_WINDOW_SECONDS=3600)
    try:
        # GIVEN an instance whose lease lapsed with slots unspent
        spent = _admitted(holder, 40)
        time.sleep(LEASE_SECONDS)
        # WHEN its next round trip (which gives those slots back) runs in Redis but the reply
        # is lost, and redis-py sends it again on a new connection
        _ReplyLost.lose_next = True
        spent += _admitted(holder, 1)
        assert not _ReplyLost.lose_next
        # THEN the slots were given back once: the caller gets its quota, the request counted
        # twice at most, never more
        spent += _admitted(other, 2 * quota)
        assert quota - 1 <= spent <= quota
    finally:
        lossy.close()


def test_busy_callers_get_leases_again_once_redis_is_back(own_redis: EmbeddedRedis) -> None:
    client, layer = (
        redis.Redis.from_url(own_redis.uri),
        layer_redis(own_redis.uri, connect_timeout=0.2),
    )
    limiter = limiter_for(
        layer, retry_seconds=0.2, RATE_LIMIT_PUBLIC=100_000, RATE_LIMIT_WINDOW_SECONDS=3600
    )
    public = limiter.policies.public

    def busy(ip: str, requests: int) -> int:
        return sum(limiter.check(public, ip).allowed for _ in range(requests))

    # GIVEN a busy caller served from leases
    assert busy("198.51.100.20", 100) == 100
    # WHEN Redis stops (another caller's round trip fails first and opens the circuit) while the
    # busy caller goes on, from its lease and then from the per-instance fallback
    own_redis.stop()
    assert busy("198.51.100.21", 1) == 1
    assert busy("198.51.100.20", 40) == 40
    # AND Redis is back
    with start_redis(own_redis.port):
        time.sleep(0.3)  # the circuit's pause
        client.config_resetstat()
        # THEN the busy caller is decided in Redis a few times again, not on every request
        assert busy("198.51.100.20", 300) == 300
        assert _script_calls(client) <= 20
    client.close()
    layer.close()


# A redis-server that answers EVALSHA with MGET's reply (a list of nils): a server whose reply to
# the script is not the shape the limiter reads, made by Redis itself (`rename-command`).
OTHER_REPLY = ("--rename-command", "EVALSHA", "", "--rename-command", "MGET", "EVALSHA")


def test_a_reply_the_limiter_cannot_read_is_degraded_as_a_redis_fault_and_leaves_no_one_asking(
    own_redis: EmbeddedRedis,
) -> None:
    client, layer = (
        redis.Redis.from_url(own_redis.uri),
        layer_redis(own_redis.uri, connect_timeout=0.2),
    )
    limiter = limiter_for(
        layer, retry_seconds=0.2, RATE_LIMIT_PUBLIC=100_000, RATE_LIMIT_WINDOW_SECONDS=3600
    )
    public = limiter.policies.public
    ip = "198.51.100.30"

    def busy(requests: int) -> int:
        return sum(limiter.check(public, ip).allowed for _ in range(requests))

    # GIVEN a busy caller served from leases
    assert busy(100) == 100
    # WHEN its next trip asking for a lease gets a reply the limiter cannot read (the server on
    # the port now answers the script with a list of nils): not a redis.RedisError
    own_redis.stop()
    with start_redis(own_redis.port, config=OTHER_REPLY):
        decisions = [limiter.check(public, ip) for _ in range(100)]
    # THEN nothing is raised (no 500): it is limited in memory, as with an unreachable Redis
    assert all(decision.allowed for decision in decisions)
    assert "memory" in {decision.source for decision in decisions}
    # AND once a Redis that runs the script is back (after the circuit's pause)
    with start_redis(own_redis.port):
        time.sleep(0.3)
        client.config_resetstat()
        # THEN the caller is decided in Redis a few times again, not on every request
        assert busy(300) == 300
        assert _script_calls(client) <= 20
    client.close()
    layer.close()


def test_a_reply_the_limiter_cannot_read_fails_closed_when_told_to(
    own_redis: EmbeddedRedis,
) -> None:
    client, layer = (
        redis.Redis.from_url(own_redis.uri),
        layer_redis(own_redis.uri, connect_timeout=0.2),
    )
    limiter = limiter_for(layer, RATE_LIMIT_PUBLIC=10, RATE_LIMIT_FAIL_MODE="closed")
    # GIVEN a Redis whose reply to the script the limiter cannot read
    own_redis.stop()
    # THEN fail-closed refuses with a 503 and a Retry-After, as for an unreachable Redis
    with (
        start_redis(own_redis.port, config=OTHER_REPLY),
        pytest.raises(ServiceUnavailableError) as refused,
    ):
        limiter.check(limiter.policies.public, "198.51.100.31")
    # AND the circuit is opened as for an unreachable Redis: the wait is its whole pause (5 s)
    assert refused.value.headers["Retry-After"] == "5"
    client.close()
    layer.close()


def test_slots_given_back_after_their_window_ended_come_off_the_previous_count_exactly(
    redis_client: redis.Redis,
) -> None:
    # The script as Redis runs it: quota 10 a 2 s window, KEYS[1] the caller's key; trailing
    # arguments: extra slots asked, share, slots given back, the window they were charged in.
    def trip(extra: int, back: int, back_window: int) -> list[int]:
        args = [10, 2_000_000, extra, 1, back, back_window]
        return [int(v) for v in redis_client.eval(LUA_SCRIPT, 1, "lucid:local:rl:back", *args)]

    # GIVEN a request that took a lease of 5 slots in window N (6 counted)
    first = trip(5, 0, -1)
    assert first[:2] == [1, 1]
    granted, window = first[5], first[6]
    assert granted == 5
    # WHEN the next window has begun and the 5 unspent slots are given back
    time.sleep(first[3] / 1_000_000 + 0.05)
    second = trip(0, 5, window)
    assert second[6] == window + 1
    # THEN the previous window counts exactly 1 request: its weight is at most 1, so 8 of the
    # quota of 10 are left after this one (9 would have taken one slot too many off)
    assert second[:2] == [1, 1]
    assert second[2] == 8
