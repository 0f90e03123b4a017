"""Two stages on one real Redis database keep apart: every key the gateway writes starts with
`lucid:<STAGE>:` (lucid.store.keys), so one stage's revocation copy and its sync mark, sign-in
nonces, rate budgets, breakers and idempotency records never answer for the other."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
import redis
from pymongo.database import Database

from lucid.auth.keys import KeyRing
from lucid.auth.refresh import RefreshTokenStore
from lucid.auth.revocation import RevocationList, synced_field
from lucid.auth.revocation_record import MongoRevocationRecord
from lucid.auth.signin import SignInService
from lucid.auth.tokens import TokenService
from lucid.config import Settings
from lucid.proxy.breaker_store import BreakerState, RedisBreakerStore
from lucid.ratelimit.limiter import RateLimiter
from lucid.store import resp
from lucid.store.documents import new_id
from lucid.store.keys import nonce_key, revocations_key
from lucid.users.repository import UserRepository
from lucid.web.idempotency import IdempotencyStore, StoredResponse
from lucid_edge.local import in_memory_database
from tests.utils.datastore import atomic_writes
from tests.utils.wallets import Wallet

STAGES = ("dev", "prod")
KEY = "k" * 32


@pytest.fixture
def databases() -> Iterator[dict[str, Database[dict[str, Any]]]]:
    """Each stage's own MongoDB database (as each stack has its own)."""
    with atomic_writes():
        yield {stage: in_memory_database() for stage in STAGES}


def _revocations(
    client: resp.Redis, database: Database[dict[str, Any]], stage: str
) -> RevocationList:
    return RevocationList(
        client, lambda: MongoRevocationRecord(database), token_lifetime_seconds=900, stage=stage
    )


def test_one_stages_reload_does_not_vouch_for_the_others_revocations(
    redis_client: redis.Redis,
    store_redis: resp.Redis,
    databases: dict[str, Database[dict[str, Any]]],
) -> None:
    # GIVEN prod revoked a sign-in (in its record) and the shared Redis lost its data
    sid = new_id()
    revoked_at = datetime.now(UTC) - timedelta(minutes=1)
    databases["prod"]["tokens"].insert_one(
        {"_id": new_id(), "family_id": sid, "revoked_at": revoked_at}
    )
    dev, prod = (_revocations(store_redis, databases[stage], stage) for stage in STAGES)
    # WHEN dev checks first, reloading its own copy and marking it complete
    assert dev.is_revoked(sid) is False
    mark = synced_field(redis_client.info("server")["run_id"])
    assert redis_client.hexists(revocations_key("dev"), mark)
    # THEN prod does not take dev's mark for its own: its copy reloads, the sign-in is revoked
    assert redis_client.exists(revocations_key("prod")) == 0
    assert prod.is_revoked(sid) is True
    # AND dev's copy never learns of prod's revocation
    assert dev.is_revoked(sid) is False


def test_one_stages_rate_budget_is_not_the_others(store_redis: resp.Redis) -> None:
    # GIVEN both stages allow one public request per minute and per IP, counted in Redis only
    limiters = {
        stage: RateLimiter(
            store_redis,
            Settings(STAGE=stage, JWT_SECRET_KEY=KEY, RATE_LIMIT_PUBLIC=1, RATE_LIMIT_LEASE_MAX=0),
        )
        for stage in STAGES
    }
    dev, prod = limiters["dev"], limiters["prod"]
    # WHEN one IP spends dev's budget
    assert dev.check(dev.policies.public, "198.51.100.9").allowed is True
    assert dev.check(dev.policies.public, "198.51.100.9").allowed is False
    # THEN prod still has its whole budget for that IP
    assert prod.check(prod.policies.public, "198.51.100.9").allowed is True


def test_one_stages_breaker_and_idempotency_records_are_not_the_others(
    store_redis: resp.Redis,
) -> None:
    # GIVEN dev's breaker for the blockchain backend is open
    RedisBreakerStore(store_redis, "dev").trip("blockchain", 10_000, force=True)
    # THEN prod's breaker of the same name is closed
    assert RedisBreakerStore(store_redis, "dev").read("blockchain").state is BreakerState.OPEN
    assert RedisBreakerStore(store_redis, "prod").read("blockchain").state is BreakerState.CLOSED
    # AND an idempotency key recorded on dev replays nothing on prod
    made: list[str] = []

    def produce(stage: str) -> StoredResponse:
        made.append(stage)
        return StoredResponse(201, {"stage": stage}, {})

    for stage in STAGES:
        store = IdempotencyStore(store_redis, ttl_seconds=60, stage=stage)
        response, replayed = store.run("sessions:u", "key-1", "fp", partial(produce, stage))
        assert (response.body, replayed) == ({"stage": stage}, False)
    assert made == ["dev", "prod"]


def test_a_nonce_is_kept_under_the_stage_that_issued_it(
    redis_client: redis.Redis,
    store_redis: resp.Redis,
    databases: dict[str, Database[dict[str, Any]]],
) -> None:
    # GIVEN dev's sign-in service on the shared Redis
    settings = Settings(STAGE="dev", JWT_SECRET_KEY=KEY, AUTH_SERVICE_URL="https://dev.example")
    database = databases["dev"]
    revocations = _revocations(store_redis, database, "dev")
    service = SignInService(
        settings,
        store_redis,
        UserRepository(database),
        RefreshTokenStore(database, timedelta(days=14), revocations),
        TokenService(settings, KeyRing(settings)),
    )
    # WHEN it issues a challenge
    challenge = service.challenge(Wallet().address)
    # THEN the nonce lives under dev's keys only
    assert redis_client.exists(nonce_key(challenge.nonce, "dev")) == 1
    assert redis_client.exists(nonce_key(challenge.nonce, "prod")) == 0
    # AND every key either stage wrote names its stage
    names = [key.decode() if isinstance(key, bytes) else key for key in redis_client.keys("*")]
    assert names
    assert all(name.startswith("lucid:dev:") for name in names)
