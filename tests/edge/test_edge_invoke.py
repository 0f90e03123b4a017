"""Invocation threads: own event loops, timeouts, stuck threads replaced."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from lucid_edge.invoke import InvocationPool, InvocationTimeoutError

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on a private loop: asyncio.run would unset the main thread's current loop, which
    module-level Mangum handlers created and would then leak."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def _loop_of_thread() -> tuple[str, bool]:
    loop = asyncio.get_event_loop_policy().get_event_loop()
    return threading.current_thread().name, not loop.is_running()


def test_handlers_run_in_threads_with_their_own_loop() -> None:
    pool = InvocationPool(2)

    async def main() -> tuple[str, bool]:
        result: tuple[str, bool] = await pool.run(_loop_of_thread, limit=1)
        return result

    try:
        assert run(main()) == ("lucid-invoke", True)
    finally:
        pool.close()


def test_a_stuck_invocation_times_out_and_its_thread_is_replaced() -> None:
    pool = InvocationPool(1)
    release = threading.Event()

    async def main() -> str:
        with pytest.raises(InvocationTimeoutError):
            await pool.run(release.wait, 5, limit=0.2)
        # The only thread is stuck, yet the next invocation is served by its replacement.
        answer: str = await pool.run(lambda: "served", limit=1)
        return answer

    try:
        assert run(main()) == "served"
        assert pool.thread_count == 1
    finally:
        release.set()
        pool.close()


def test_queued_time_does_not_count_against_the_timeout() -> None:
    pool = InvocationPool(1)

    async def main() -> list[object]:
        slow = pool.run(time.sleep, 0.3, limit=0.5)
        quick = pool.run(lambda: "quick", limit=0.2)  # waits 0.3 s in the queue, runs instantly
        return list(await asyncio.gather(slow, quick))

    try:
        assert run(main()) == [None, "quick"]
    finally:
        pool.close()


def test_exceptions_reach_the_caller_and_size_is_checked() -> None:
    pool = InvocationPool(1)

    async def main() -> None:
        with pytest.raises(ZeroDivisionError):
            await pool.run(lambda: 1 / 0, limit=1)

    try:
        run(main())
    finally:
        pool.close()
    with pytest.raises(ValueError, match="at least 1"):
        InvocationPool(0)
