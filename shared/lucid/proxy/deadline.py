"""Every socket operation of a forwarded request bounded by the exchange's deadline.

httpcore's timeouts apply to each socket operation alone: a backend that sends its status line
and headers one byte at a time, each byte inside the read timeout, holds the call for as long
as it likes (measured: 8.5 s with a 0.3 s read timeout and 1.5 s of invocation time left), until
Lambda ends the invocation and API Gateway answers a bare 500/503 for it, the breaker never
hearing of it.

So the HTTP client's connections are made through `lucid.proxy.transport.DeadlineBackend`
(httpcore's public `network_backend` hook): while `exchange_deadline(t)` is active in the
calling thread, each connect, read and write may wait at most until `t`, and one that would
start after it fails as that operation's timeout (`httpcore.ConnectTimeout` / `ReadTimeout` /
`WriteTimeout`, which the forwarder answers 504).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_DEADLINE: ContextVar[float | None] = ContextVar("lucid_proxy_deadline", default=None)


@contextmanager
def exchange_deadline(deadline: float) -> Iterator[None]:
    """Bound every socket operation in this block by `deadline` (`time.monotonic()` clock)."""
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def bounded(timeout: float | None, error: type[Exception]) -> float | None:
    """`timeout`, shortened to what is left of the active deadline; `error` once it passed."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the exchange's deadline has passed")
    return left if timeout is None else min(timeout, left)
