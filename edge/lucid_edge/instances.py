"""Lambda's scaling, per worker process: each function has its own warm instances.

An instance is a thread with its own event loop (a Mangum handler calls
`loop.run_until_complete`, so it cannot run on the server's loop), serving one invocation at a
time, like one Lambda execution environment. A function's instances grow on demand (see
EAGER_INSTANCES) and retire after `IDLE_SECONDS` without work, so a slow function queues only
its own requests.

How many invocations run at once:
- a function with ReservedConcurrentExecutions runs at most that many across the whole edge
  (every worker: `ReservedSlots`); one more is throttled at once, as Lambda throttles it;
- the other functions share the worker's `Account`, the local stand-in for the account's
  unreserved concurrency. Past its cap an invocation waits in the account's queue (AWS would
  have started another execution environment; this machine has only so many cores).

Deadlines (the caller passes both, counted from when it invokes): the function's own Timeout,
time spent waiting for room included, and the route's integration timeout. Whichever passes
first answers the caller. A queued invocation past it, or whose caller is gone (`cancel`),
never runs; a running one past the function's Timeout is abandoned: its thread stops counting
and retires when the handler returns, and the next invocation gets a new instance.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any

from lucid_edge.concurrency import ReservedSlots

# An idle instance retires after this long (Lambda keeps environments warm for minutes; here a
# new instance costs a thread start, so they need not linger).
IDLE_SECONDS = 60.0
# Up to this many instances of a function start at once, as Lambda starts one per concurrent
# request. Beyond it an invocation waits for a busy instance, and gets a new one only if it has
# waited GROW_AFTER_SECONDS and no invocation of its function finished for as long: the
# instances are stuck (a slow backend, a hung call), not busy. Instances are threads sharing one
# GIL: for /health at 64 connections on one worker, 32 instances cost 20-35 % more CPU per
# request than 4, and served nobody sooner. The delay is long enough that a worker descheduled
# on a loaded machine is not taken for a stuck one (10 ms was not), and short against a stuck
# call; Lambda's own cold starts take longer.
EAGER_INSTANCES = 4
GROW_AFTER_SECONDS = 0.1


class InvocationError(Exception):
    """Base of why an invocation produced no result."""


class FunctionTimeoutError(InvocationError):
    """Past the function's own Timeout (queued or running)."""


class IntegrationTimeoutError(InvocationError):
    """Past the route's integration timeout while the function had not answered."""


class ThrottledError(InvocationError):
    """The function's ReservedConcurrentExecutions are all in use."""


class ClientGoneError(Exception):
    """The client hung up before its answer was ready: nothing is sent."""


class _State(Enum):
    QUEUED = 1  # waiting for the account to have room
    READY = 2  # counted as running; handed to an instance, or waiting for one
    RUNNING = 3
    DONE = 4
    DROPPED = 5  # never ran: past its deadline or its caller left


class Invocation:
    """One call of a handler and what the edge knows about it."""

    __slots__ = (
        "abandoned", "args", "fn", "function_deadline", "future", "instances",
        "integration_deadline", "integration_passed", "loop", "ready_at", "slot", "state", "thread",
        "timer",
    )  # fmt: skip

    def __init__(
        self,
        instances: FunctionInstances,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        *,
        function_deadline: float,
        integration_deadline: float,
    ) -> None:
        self.instances, self.fn, self.args = instances, fn, args
        self.function_deadline = function_deadline
        self.integration_deadline = integration_deadline
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[Any] = self.loop.create_future()
        self.state = _State.QUEUED
        self.ready_at = 0.0
        self.slot: int | None = None
        self.abandoned = False
        self.integration_passed = False
        self.thread: threading.Thread | None = None
        self.timer: asyncio.TimerHandle | None = None

    @property
    def queued(self) -> bool:
        """True while it waits for the account to have room (it may wait long)."""
        return self.state is _State.QUEUED


def _settle(invocation: Invocation, result: Any, error: BaseException | None) -> None:
    # On the server's loop: the answer, and the end of the deadline timer, which would
    # otherwise keep the invocation (and its event, body included) alive until it fires.
    if invocation.timer is not None:
        invocation.timer.cancel()
        invocation.timer = None
    future = invocation.future
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Account:
    """The unreserved concurrency of one worker process, shared by its functions."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the account's concurrency must be at least 1")
        self.limit = limit
        self.lock = threading.Lock()
        self.running = 0
        self.waiting: collections.deque[Invocation] = collections.deque()
        self.closed = False

    @property
    def queued(self) -> int:
        """Invocations waiting for room now."""
        with self.lock:
            return sum(1 for invocation in self.waiting if invocation.state is _State.QUEUED)

    def admit_waiting_locked(self) -> None:
        """Move queued invocations to their functions while there is room (lock held)."""
        while self.waiting and self.running < self.limit:
            invocation = self.waiting.popleft()
            if invocation.state is _State.QUEUED:
                self.running += 1
                invocation.instances.make_ready_locked(invocation)


class _Instance:
    """An idle instance's mailbox: the invocation it is handed (None: retire)."""

    __slots__ = ("mailbox",)

    def __init__(self) -> None:
        self.mailbox: queue.SimpleQueue[Invocation | None] = queue.SimpleQueue()


class FunctionInstances:
    """The warm instances of one function in this worker."""

    def __init__(self, name: str, account: Account, reserved: ReservedSlots | None = None) -> None:
        self.name = name
        self._account = account
        self._lock = account.lock
        self._reserved = reserved
        self._idle: list[_Instance] = []  # most recently idle last: it is handed work first
        self._backlog: collections.deque[Invocation] = collections.deque()  # READY, no instance
        self._threads: set[threading.Thread] = set()
        self._grow_armed = False
        self._last_finish = 0.0  # when an invocation last ran to its end: busy, or stuck?

    @property
    def instance_count(self) -> int:
        """Instances serving this function now (abandoned ones excluded)."""
        with self._lock:
            return len(self._threads)

    @property
    def queued(self) -> int:
        """Invocations of this function waiting now: for the account to have room, or for an
        instance (the local edge's `lucid_function_queue_depth`)."""
        with self._lock:
            waiting = sum(
                1
                for invocation in self._account.waiting
                if invocation.instances is self and invocation.state is _State.QUEUED
            )
            return waiting + sum(1 for i in self._backlog if i.state is _State.READY)

    async def invoke(
        self,
        fn: Callable[..., Any],
        *args: Any,
        function_deadline: float,
        integration_deadline: float,
    ) -> Any:
        """`fn(*args)` on an instance; its result, or the exception it raised, or an
        `InvocationError`. Cancelling the caller drops the invocation if it has not started."""
        invocation = self.submit(
            fn,
            args,
            function_deadline=function_deadline,
            integration_deadline=integration_deadline,
        )
        try:
            return await invocation.future
        finally:
            if invocation.future.cancelled():  # the caller was cancelled (client gone)
                self.cancel(invocation)

    def submit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        *,
        function_deadline: float,
        integration_deadline: float,
    ) -> Invocation:
        """Start (or queue) an invocation; its `future` gives the answer. `ThrottledError` when
        the function's reserved concurrency is all in use."""
        invocation = Invocation(
            self,
            fn,
            args,
            function_deadline=function_deadline,
            integration_deadline=integration_deadline,
        )
        with self._lock:
            if self._account.closed:
                raise RuntimeError("the edge is shutting down")
            if self._reserved is not None:
                invocation.slot = self._reserved.take()
                if invocation.slot is None:
                    raise ThrottledError(self.name)
                self.make_ready_locked(invocation)
            elif self._account.running < self._account.limit and not self._account.waiting:
                self._account.running += 1
                self.make_ready_locked(invocation)
            else:
                self._account.waiting.append(invocation)
        deadline = min(function_deadline, integration_deadline)
        invocation.timer = invocation.loop.call_later(
            deadline - time.monotonic(), self._deadline_passed, invocation
        )
        return invocation

    def cancel(self, invocation: Invocation) -> None:
        """The caller is gone: an invocation that has not started never will. One that runs
        keeps its deadline timer: Lambda ends it at its Timeout whether or not anyone waits, and
        until then (or until it returns) it holds its concurrency."""
        with self._lock:
            if invocation.state not in (_State.QUEUED, _State.READY):
                return
            self._drop_locked(invocation)
        if invocation.timer is not None:  # on this loop, as every change of it
            invocation.timer.cancel()
            invocation.timer = None

    def make_ready_locked(self, invocation: Invocation) -> None:
        """Hand a counted invocation to an idle instance, or start one (lock held)."""
        invocation.state = _State.READY
        invocation.ready_at = now = time.monotonic()
        if self._idle:
            self._idle.pop().mailbox.put(invocation)
        elif len(self._threads) < EAGER_INSTANCES:
            self._spawn_locked(invocation)
        else:  # every instance is busy: the first to finish takes it, or a new one if stuck
            self._backlog.append(invocation)
            self._grow_locked(now)
            if self._backlog and not self._grow_armed:
                self._arm_grow_timer_locked(invocation.loop)

    def _spawn_locked(self, first: Invocation) -> None:
        thread = threading.Thread(
            target=self._serve, args=(first,), name=f"lucid-{self.name}", daemon=True
        )
        self._threads.add(thread)
        thread.start()

    def _grow_locked(self, now: float) -> None:
        # A new instance for each invocation that has waited GROW_AFTER_SECONDS while none of
        # its function's finished (oldest first: later ones have waited less).
        backlog = self._backlog
        stuck = now - self._last_finish >= GROW_AFTER_SECONDS
        while backlog:
            invocation = backlog[0]
            if invocation.state is _State.READY:
                if not stuck or now - invocation.ready_at < GROW_AFTER_SECONDS:
                    return
                self._spawn_locked(invocation)
            backlog.popleft()

    def _arm_grow_timer_locked(self, loop: asyncio.AbstractEventLoop) -> None:
        # Grow even if no other request arrives and no instance finishes (all of them stuck).
        self._grow_armed = True
        due = max(self._backlog[0].ready_at, self._last_finish) + GROW_AFTER_SECONDS
        loop.call_soon_threadsafe(
            loop.call_later, max(0.0, due - time.monotonic()), self._grow_when_due, loop
        )

    def _grow_when_due(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._grow_armed = False
            self._grow_locked(time.monotonic())
            if self._backlog:
                self._arm_grow_timer_locked(loop)

    def _take_backlog_locked(self) -> Invocation | None:
        while self._backlog:
            invocation = self._backlog.popleft()
            if invocation.state is _State.READY:
                return invocation
        return None

    def _release_locked(self, invocation: Invocation) -> None:
        # The invocation stops counting toward its function's or the account's concurrency.
        if invocation.slot is not None:
            assert self._reserved is not None
            self._reserved.release(invocation.slot)
            invocation.slot = None
        elif invocation.state is not _State.QUEUED:
            self._account.running -= 1
            self._account.admit_waiting_locked()

    def _drop_locked(self, invocation: Invocation) -> None:
        self._release_locked(invocation)
        invocation.state = _State.DROPPED  # its instance, if handed one, skips it
        invocation.args = ()

    def _deadline_passed(self, invocation: Invocation) -> None:
        invocation.timer = None
        with self._lock:
            if invocation.state in (_State.DONE, _State.DROPPED):
                return
            # The earlier deadline fired first; a function deadline after the integration's
            # fires only to end the function.
            function_expired = invocation.function_deadline <= invocation.integration_deadline
            function_expired = function_expired or invocation.integration_passed
            if invocation.state is not _State.RUNNING:
                self._drop_locked(invocation)
            elif function_expired:
                # Stuck past its Timeout: Lambda would have ended it. Its thread stops being
                # one of this function's instances and retires when the handler returns.
                invocation.abandoned = True
                if invocation.thread is not None:
                    self._threads.discard(invocation.thread)
                self._release_locked(invocation)
            else:
                # The integration gave up first; the function runs on until its own Timeout.
                invocation.integration_passed = True
                invocation.timer = invocation.loop.call_later(
                    invocation.function_deadline - time.monotonic(),
                    self._deadline_passed,
                    invocation,
                )
        error = FunctionTimeoutError if function_expired else IntegrationTimeoutError
        if not invocation.future.done():
            invocation.future.set_exception(error(self.name))

    def _serve(self, first: Invocation) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        me = threading.current_thread()
        instance = _Instance()
        invocation: Invocation | None = first
        try:
            while invocation is not None:
                if self._start(invocation, me):
                    serving = self._run(invocation, instance)
                else:
                    with self._lock:
                        serving = self._idle_locked(instance)
                if not serving:
                    return  # abandoned while stuck, or the edge is closing
                invocation = self._next(instance, me)
        finally:
            with self._lock:
                self._threads.discard(me)
            loop.close()

    def _idle_locked(self, instance: _Instance) -> bool:
        # Available for the next invocation (False: the edge is closing, retire).
        if self._account.closed:
            return False
        self._idle.append(instance)
        return True

    def _start(self, invocation: Invocation, me: threading.Thread) -> bool:
        with self._lock:
            if invocation.state is not _State.READY:
                return False  # dropped after it was handed over
            invocation.state = _State.RUNNING
            invocation.thread = me
            return True

    def _run(self, invocation: Invocation, instance: _Instance) -> bool:
        result: Any = None
        error: BaseException | None = None
        try:
            result = invocation.fn(*invocation.args)
        except BaseException as err:  # a handler may raise anything; it is reported
            # Its traceback stays for the log; its frames' variables (the event) go.
            traceback.clear_frames(err.__traceback__)
            error = err
        invocation.args = ()
        with self._lock:
            invocation.state = _State.DONE
            if invocation.abandoned:
                return False  # replaced while stuck: leave the pool
            self._last_finish = time.monotonic()
            # Idle before the concurrency is released: an invocation of this function waiting
            # for room is handed to this warm instance rather than to a new one.
            following = self._take_backlog_locked()
            if following is not None:
                instance.mailbox.put(following)
                self._grow_locked(time.monotonic())
                serving = True
            else:
                serving = self._idle_locked(instance)
            self._release_locked(invocation)
        with contextlib.suppress(RuntimeError):  # the server's loop is gone: nobody waits
            invocation.loop.call_soon_threadsafe(_settle, invocation, result, error)
        result = error = None  # this frame outlives the call in the error's traceback
        return serving

    def _next(self, instance: _Instance, me: threading.Thread) -> Invocation | None:
        # The next invocation this idle instance is handed; None when it retires.
        try:
            return instance.mailbox.get(timeout=IDLE_SECONDS)
        except queue.Empty:
            with self._lock:
                if instance in self._idle:  # idle long enough: retire
                    self._idle.remove(instance)
                    self._threads.discard(me)
                    return None
            return instance.mailbox.get()  # handed one just as it timed out: it is there

    def close(self) -> None:
        """Wake idle instances so they retire (running ones finish their invocation)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for instance in idle:
            instance.mailbox.put(None)


def close_all(account: Account, functions: Iterable[FunctionInstances]) -> None:
    """Stop admitting invocations and let every instance retire."""
    with account.lock:
        account.closed = True
    for instances in functions:
        instances.close()
