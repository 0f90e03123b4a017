"""Invocation threads: run synchronous Lambda handlers outside the server's event loop.

A Mangum handler calls `loop.run_until_complete`, so it cannot run inside the server's running
loop. Each invocation thread owns its own event loop (like one Lambda execution environment).
An invocation past its timeout is answered by the edge at once; if it is still running, its
thread is abandoned (it retires when the handler finally returns) and a new thread takes its
place so the edge keeps serving.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from typing import Any


class InvocationTimeoutError(Exception):
    """The function ran past its timeout."""


class _Job:
    __slots__ = ("abandoned", "args", "finished", "fn", "future", "loop", "started_at", "thread")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
    ) -> None:
        self.fn, self.args, self.loop, self.future = fn, args, loop, future
        self.started_at: float | None = None
        self.thread: threading.Thread | None = None
        self.abandoned = False
        self.finished = False


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class InvocationPool:
    """`size` threads, each with its own event loop, running handlers one at a time."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("concurrency must be at least 1")
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._closed = False
        for _ in range(size):
            self._spawn()

    @property
    def thread_count(self) -> int:
        """Threads currently serving (abandoned ones excluded)."""
        with self._lock:
            return len(self._threads)

    def _spawn(self) -> None:
        thread = threading.Thread(target=self._work, name="lucid-invoke", daemon=True)
        self._threads.add(thread)
        thread.start()

    def _work(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        me = threading.current_thread()
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                with self._lock:
                    if job.abandoned:  # timed out while queued: never run it
                        continue
                    job.started_at = time.monotonic()
                    job.thread = me
                result: Any = None
                error: BaseException | None = None
                try:
                    result = job.fn(*job.args)
                except BaseException as err:  # a handler may raise anything; it is reported
                    error = err
                with self._lock:
                    job.finished = True
                    retire = job.abandoned
                if retire:
                    return  # replaced while stuck: leave the pool
                try:
                    job.loop.call_soon_threadsafe(_settle, job.future, result, error)
                except RuntimeError:
                    return  # the server's loop is gone: nobody waits for this answer
        finally:
            with self._lock:
                self._threads.discard(me)
            loop.close()

    def _check(self, job: _Job, timeout: float) -> None:
        with self._lock:
            if job.future.done() or job.finished:
                return
            if job.started_at is None:
                # still queued behind other invocations: the timeout counts from the start
                job.loop.call_later(timeout, self._check, job, timeout)
                return
            remaining = job.started_at + timeout - time.monotonic()
            if remaining > 0:
                job.loop.call_later(remaining, self._check, job, timeout)
                return
            job.abandoned = True
            # The stuck thread stops counting as the pool's and retires when it returns.
            self._threads.discard(job.thread)
            if not self._closed:
                self._spawn()
        job.future.set_exception(InvocationTimeoutError())

    async def run(self, fn: Callable[..., Any], *args: Any, limit: float) -> Any:
        """Run `fn(*args)` in an invocation thread; `InvocationTimeoutError` past `limit` s."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        job = _Job(fn, args, loop, future)
        timer = loop.call_later(limit, self._check, job, limit)
        self._jobs.put(job)
        try:
            return await future
        finally:
            timer.cancel()

    def close(self) -> None:
        """Ask every thread to stop after its current invocation (does not wait)."""
        with self._lock:
            self._closed = True
            count = len(self._threads)
        for _ in range(count):
            self._jobs.put(None)
