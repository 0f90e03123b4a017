"""`Idempotency-Key` for POSTs, kept in Redis: a retried request gets the first answer again.

The first request with a key claims it atomically (`SET NX` with a short lease), runs, and
stores its response under the key for IDEMPOTENCY_TTL_SECONDS. A retry with the same key and the
same body gets that response replayed (`Idempotent-Replayed: true`) and creates nothing; the same
key with another body is a 422; a retry arriving while the first is still running waits for it
(bounded), then replays, so concurrent retries produce one resource. A request that fails
releases its claim, so the client can retry after a 503. Keys are scoped per caller: one
caller's key can never replay another caller's response.

Why not Powertools Idempotency on Redis (read in aws-lambda-powertools 3.37.0, the version the
layer ships; see also /work/notes/aws-facts.md section 10):
- A concurrent retry fails at once instead of waiting: while the first request's record is
  INPROGRESS, `utilities/idempotency/base.py` `_handle_for_status` raises
  `IdempotencyAlreadyInProgressError`. Waiting and replaying (what the tests pin, so that
  concurrent retries create one resource and all get its answer) would mean wrapping it in a
  retry loop of our own, the part of this module that matters.
- `idempotent_function` wraps a synchronous function; our routes are `async def`, and one route
  of a FastAPI app is the unit here, not a whole Lambda event (`idempotent`).
- `import aws_lambda_powertools.utilities.idempotency` imports its DynamoDB layer and so boto3
  (`utilities/idempotency/__init__.py`): +265 ms measured in the development virtualenv, paid
  at every cold start of users and sessions although they never call AWS.
- `RedisCachePersistenceLayer` builds its own client with `ssl=True` by default
  (`persistence/redis.py`), a second pool beside ours with other timeouts and retries.
The rest maps onto Powertools (per-caller keys through `key_prefix` or the JMESPath key, 422
through `payload_validation_jmespath`, the replay header through `response_hook`), so those three
points decide: this module stays, 166 lines on the client the function already has.
"""

# No `from __future__ import annotations` here: FastAPI reads these signatures when it builds
# the routes, and would compile each string annotation anew for every route using it
# (README, "Cold start of the built artifact").

import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from fastapi import Request

from lucid.config import Settings
from lucid.errors import ConflictError, ServiceUnavailableError, ValidationFailedError
from lucid.store import resp
from lucid.store.keys import idempotency_prefix
from lucid.store.redis_client import store_fault
from lucid.web.stores import stores_of

logger = logging.getLogger("lucid.web.idempotency")

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as the IETF draft suggests

# Deletes the claim only while it is still ours (a slow request must not free someone else's).
_RELEASE = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['owner'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class StoredResponse(NamedTuple):
    """A response worth replaying: status, JSON body and the headers that identify the result.

    A NamedTuple, not a slotted frozen dataclass: 0.3-0.5 ms less of the sessions function's cold
    start (the dataclass machinery compiles its methods and builds the class twice)."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def valid_key(key: str) -> str:
    """`key` if it is a usable Idempotency-Key, else a 422 naming the header."""
    if not _KEY.fullmatch(key):
        raise ValidationFailedError(
            f"{HEADER} must be 1-{MAX_KEY_LENGTH} visible ASCII characters",
            extensions={"errors": [{"loc": ["header", HEADER], "msg": "invalid", "type": "key"}]},
        )
    return key


def fingerprint(payload: Mapping[str, Any]) -> str:
    """A digest of a request body that ignores key order and whitespace."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyStore:
    """Claims, records and replays responses by idempotency key in Redis."""

    def __init__(
        self,
        client: resp.Redis,
        *,
        ttl_seconds: int,
        lease_seconds: int = 60,
        wait_seconds: float = 5.0,
        poll_seconds: float = 0.01,
        stage: str | None = None,
    ) -> None:
        """`stage`: whose records these are (the process's STAGE when None)."""
        self._prefix = idempotency_prefix(stage)
        self._redis = client
        self._ttl = ttl_seconds
        self._lease = lease_seconds
        self._wait = wait_seconds
        self._poll = poll_seconds

    def run(
        self, scope: str, key: str, request_fingerprint: str, produce: Callable[[], StoredResponse]
    ) -> tuple[StoredResponse, bool]:
        """The response for `key` in `scope`, and True when it is a replay of an earlier one."""
        name = self._prefix + scope + ":" + hashlib.sha256(valid_key(key).encode()).hexdigest()
        deadline = time.monotonic() + self._wait
        while True:
            owner = secrets.token_hex(8)
            claim = {"state": "running", "fp": request_fingerprint, "owner": owner}
            if self._command(self._redis.set, name, json.dumps(claim), nx=True, ex=self._lease):
                return self._produce(name, owner, request_fingerprint, produce), False
            record = self._command(self._redis.get, name)
            if record is not None:
                stored = _replayable(json.loads(record), request_fingerprint)
                if stored is not None:
                    return stored, True
            if time.monotonic() >= deadline:
                raise ConflictError(
                    f"a request with this {HEADER} is still being processed; retry later",
                    headers={"Retry-After": "1"},
                )
            time.sleep(self._poll)

    def _produce(
        self, name: str, owner: str, request_fingerprint: str, produce: Callable[[], StoredResponse]
    ) -> StoredResponse:
        try:
            response = produce()
        except BaseException:
            self._command(self._redis.eval, _RELEASE, 1, name, owner)
            raise
        done = {
            "state": "done",
            "fp": request_fingerprint,
            "owner": owner,
            "status": response.status,
            "body": response.body,
            "headers": response.headers,
        }
        try:
            self._redis.set(name, json.dumps(done, default=str), ex=self._ttl)
        except resp.RedisError:
            # The resource exists: answering 503 now would invite a retry that creates another
            # once the lease ends. Answer it; only replay is lost for this key.
            logger.warning("could not record an idempotent response; it will not be replayed")
        return response

    @staticmethod
    def _command(command: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except resp.RedisError as error:
            raise ServiceUnavailableError(store_fault("the idempotency store", error)) from error


def _replayable(record: dict[str, Any], request_fingerprint: str) -> StoredResponse | None:
    """The stored response when `record` is finished; 422 when it was for another body."""
    if record.get("fp") != request_fingerprint:
        raise ValidationFailedError(
            f"this {HEADER} was already used with a different request body",
            extensions={"errors": [{"loc": ["header", HEADER], "msg": "reused", "type": "key"}]},
        )
    if record.get("state") != "done":
        return None
    return StoredResponse(int(record["status"]), dict(record["body"]), dict(record["headers"]))


def idempotency_store(request: Request, settings: Settings) -> IdempotencyStore:
    """The store on the app's Redis with the configured replay window (the client found through
    the request, `lucid.web.stores`). Built by a route for a request that sends an
    Idempotency-Key, not as a dependency of every request: POST /sessions without one paid
    for building it, and for its call as a dependency, and never used it."""
    return IdempotencyStore(
        stores_of(request.scope).redis(),
        ttl_seconds=settings.IDEMPOTENCY_TTL_SECONDS,
        stage=settings.STAGE,
    )
