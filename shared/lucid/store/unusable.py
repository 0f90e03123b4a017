"""A store whose URI cannot make a client: the 503 that names the store, and one log line.

A URI its driver refuses (the Redis client's ValueError for a bad scheme or a port that is not a
number, pymongo's InvalidURI for an unescaped password, its ValueError for a port out of range)
or no URI at all is a configuration fault of a dependency, not a bug of the request: every
route that needs that store answers 503 problem+json naming the store (`store` extension:
"redis" or "mongodb"), never the URI, and the function's log says once, at ERROR, which
variable to fix. Nothing is cached: the next request builds the client again (no network
involved, microseconds), so a URI fixed where it is kept (Secrets Manager, SSM) heals a warm
function without a redeploy.

The client is still built on first use, not at cold start: a function whose store URI is bad
starts, its routes that need no store (GET /health) answer, and /meta/health names the store.
Failing the cold start instead would not tell the caller more: Lambda logs the INIT failure and
tries the Init phase again at the next invocation, and API Gateway answers each of them with
its bare 500 `{"message":"Internal Server Error"}` (a function error; notes/aws-facts.md
section 2 (a); Lambda Developer Guide, "Understanding the Lambda execution environment
lifecycle", failures during the Init phase). It would also make every cold start pay for
importing both drivers and reading both URIs from AWS (`make bench coldstart`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Literal

from lucid.config import UriNotSetError
from lucid.errors import LucidError, ServiceUnavailableError

logger = logging.getLogger("lucid.store")

Setting = Literal["REDIS_URI", "MONGODB_URI"]
_STORES: dict[Setting, str] = {"REDIS_URI": "redis", "MONGODB_URI": "mongodb"}
_NAMES = {"redis": "Redis", "mongodb": "MongoDB"}


class StoreUnusableError(ServiceUnavailableError):
    """503: the function cannot build its client for a store from the URI it was given."""

    slug = "store-unavailable"

    def __init__(self, setting: Setting, cause: Exception) -> None:
        store = _STORES[setting]
        super().__init__(
            f"{_NAMES[store]} is unavailable to this function: its connection settings are not "
            "usable (the function's log says which)",
            extensions={"store": store},
        )
        self.cause = cause


class _Reported:
    """The settings whose fault this process has logged since they last worked."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settings: set[str] = set()

    def first(self, setting: str) -> bool:
        with self._lock:
            new = setting not in self._settings
            self._settings.add(setting)
            return new

    def clear(self, setting: str) -> None:
        with self._lock:
            self._settings.discard(setting)


_reported = _Reported()


def _reason(setting: Setting, error: Exception) -> str:
    if isinstance(error, UriNotSetError):
        return str(error)  # our own text: names the variable and how to set it, no value
    # The class only: a driver's message can quote part of the URI (urllib's quotes a port
    # that is not a number, which a URI missing its "@" makes the password).
    return (
        f"{setting} is not usable: its driver refuses it ({type(error).__name__}): check the "
        "scheme, host and port, and that the user name and password are percent-escaped"
    )


@contextlib.contextmanager
def building_client(setting: Setting, refused: tuple[type[Exception], ...]) -> Iterator[None]:
    """Turn an exception of `refused` raised while building `setting`'s client into a
    StoreUnusableError (logged at ERROR the first time since the setting last worked). Our own
    errors (a secret AWS would not give: `lucid.secret_store`) pass through unchanged."""
    try:
        yield
    except LucidError:
        raise
    except (UriNotSetError, *refused) as error:  # type: ignore[misc]  # mypy: a starred tuple
        if _reported.first(setting):
            error_class = type(error).__name__
            logger.error(
                "%s",
                _reason(setting, error),
                extra={"setting": setting, "store": _STORES[setting], "error": error_class},
            )
        # Not chained: a traceback of this error (the authorizer's, escaping to the runtime)
        # would print the driver's message.
        raise StoreUnusableError(setting, error) from None
    _reported.clear(setting)
