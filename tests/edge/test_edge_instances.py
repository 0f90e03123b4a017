"""Per-function instances: own threads and loops, growth, the account's queue, deadlines."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from lucid_edge import instances as instances_module
from lucid_edge.concurrency import SlotFile
from lucid_edge.instances import (
    Account,
    FunctionInstances,
    FunctionTimeoutError,
    IntegrationTimeoutError,
    ThrottledError,
    close_all,
)

T = TypeVar("T")
LONG = 30.0


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on a private loop: asyncio.run would unset the main thread's current loop, which
    module-level Mangum handlers created and would then leak."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def run_released(
    main: Coroutine[Any, Any, T], account: Account, functions: list[FunctionInstances], *gates: Gate
) -> T:
    """`run(main)`, then (even when it failed) release every gate and close the functions'
    instances, so no instance thread outlives the test."""
    try:
        return run(main)
    finally:
        for gate in gates:
            gate.release.set()
        close_all(account, functions)


def deadlines(function: float = LONG, integration: float = LONG) -> dict[str, float]:
    now = time.monotonic()
    return {"function_deadline": now + function, "integration_deadline": now + integration}


class Gate:
    """A handler that records each call, and the instance thread it ran on, and blocks until
    released."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.threads: list[threading.Thread] = []
        self.release = threading.Event()

    def __call__(self, name: str) -> str:
        self.calls.append(name)
        self.threads.append(threading.current_thread())
        self.release.wait(10)
        return name


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def _loop_of_thread() -> tuple[str, bool]:
    loop = asyncio.get_event_loop_policy().get_event_loop()
    return threading.current_thread().name, not loop.is_running()


def test_a_handler_runs_on_an_instance_thread_with_its_own_loop() -> None:
    account = Account(4)
    meta = FunctionInstances("Meta", account)

    async def main() -> tuple[str, bool]:
        result: tuple[str, bool] = await meta.invoke(_loop_of_thread, **deadlines())
        # AND the instance stays warm: the next invocation runs on the same thread
        first = await meta.invoke(threading.current_thread, **deadlines())
        assert await meta.invoke(threading.current_thread, **deadlines()) is first
        return result

    assert run_released(main(), account, [meta]) == ("lucid-Meta", True)


_STUCK_AT_EXIT = textwrap.dedent(
    """
    import asyncio
    import threading
    import time

    from lucid_edge.instances import Account, FunctionInstances

    async def main() -> None:
        meta = FunctionInstances("Meta", Account(1))
        now = time.monotonic()
        meta.submit(threading.Event().wait, (), function_deadline=now + 60,
                    integration_deadline=now + 60)
        while meta.instance_count != 1:
            await asyncio.sleep(0.01)

    asyncio.run(main())
    print("exiting", flush=True)
    """
)


def test_a_handler_that_never_returns_does_not_keep_its_worker_from_exiting() -> None:
    # GIVEN a worker process whose function is stuck in its handler (a hung backend call)
    # WHEN the process ends (lucid serve stopping) THEN it exits at once: it is not left waiting
    # for the handler's thread
    ended = subprocess.run(
        [sys.executable, "-c", _STUCK_AT_EXIT], capture_output=True, text=True, timeout=15
    )
    assert (ended.returncode, ended.stdout) == (0, "exiting\n")


def test_a_blocked_function_grows_its_own_instances_and_never_delays_another() -> None:
    # GIVEN two functions sharing one account
    account = Account(8)
    proxy, meta = FunctionInstances("Proxy", account), FunctionInstances("Meta", account)
    gate = Gate()

    async def main() -> None:
        # WHEN three invocations of Proxy block
        stuck = [
            asyncio.ensure_future(proxy.invoke(gate, f"p{i}", **deadlines())) for i in range(3)
        ]
        await until(lambda: len(gate.calls) == 3)
        # THEN each got an instance of its own, and Meta still answers at once
        assert proxy.instance_count == 3
        assert await meta.invoke(lambda: "ok", **deadlines()) == "ok"
        assert not any(task.done() for task in stuck)
        gate.release.set()
        assert sorted(await asyncio.gather(*stuck)) == ["p0", "p1", "p2"]

    run_released(main(), account, [proxy, meta], gate)


def test_stuck_instances_get_company_and_busy_ones_do_not() -> None:
    # GIVEN a function whose eager instances are all stuck
    account = Account(64)
    proxy, meta = FunctionInstances("Proxy", account), FunctionInstances("Meta", account)
    gate = Gate()
    eager = instances_module.EAGER_INSTANCES

    async def main() -> None:
        stuck = [proxy.submit(gate, (f"p{i}",), **deadlines()).future for i in range(eager + 3)]
        # THEN the README's "up to 4 start on demand at once"
        assert proxy.instance_count == 4
        # AND the invocations beyond them get instances of their own once they have waited
        await until(lambda: len(gate.calls) == eager + 3)
        assert proxy.instance_count == eager + 3
        # AND one arriving while they are all stuck waits its 100 ms too before it gets one,
        # as does one arriving 50 ms after it (when the first is given its instance, this one
        # has waited only half of its time, and still gets one at the end of it)
        stuck.append(proxy.submit(gate, ("late",), **deadlines()).future)
        assert proxy.instance_count == eager + 3
        await asyncio.sleep(0.05)
        stuck.append(proxy.submit(gate, ("later",), **deadlines()).future)
        await until(lambda: len(gate.calls) == eager + 5)
        # WHEN another function is kept busy by many quick invocations at once
        quick = [meta.invoke(sum, range(2000), **deadlines()) for _ in range(300)]
        assert await asyncio.gather(*quick) == [sum(range(2000))] * 300
        # THEN its instances, which keep finishing, are not multiplied
        assert meta.instance_count <= eager + 2
        # AND neither are they when each of its invocations waits longer than 100 ms for one
        # (40 of 50 ms on 4 instances): one of them finishes every ~12 ms
        slow = [meta.invoke(time.sleep, 0.05, **deadlines()) for _ in range(40)]
        await asyncio.gather(*slow)
        assert meta.instance_count <= eager + 2
        gate.release.set()
        await asyncio.gather(*stuck)

    run_released(main(), account, [proxy, meta], gate)


def test_idle_instances_retire(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(instances_module, "IDLE_SECONDS", 0.05)
    account = Account(4)
    meta = FunctionInstances("Meta", account)

    async def main() -> None:
        first = await meta.invoke(threading.current_thread, **deadlines())
        assert meta.instance_count == 1
        await until(lambda: meta.instance_count == 0)
        await until(lambda: not first.is_alive())  # its thread ends
        # A new instance on demand, whose thread closing the edge ends at once
        monkeypatch.setattr(instances_module, "IDLE_SECONDS", LONG)
        second = await meta.invoke(threading.current_thread, **deadlines())
        close_all(account, [meta])
        await until(lambda: not second.is_alive())

    run_released(main(), account, [meta])


def test_past_the_account_cap_invocations_queue_and_queue_time_counts_toward_the_timeout() -> None:
    # GIVEN an account of one running invocation, held by a blocked function
    account = Account(1)
    proxy, meta = FunctionInstances("Proxy", account), FunctionInstances("Meta", account)
    gate, late = Gate(), Gate()

    async def main() -> None:
        assert await meta.invoke(lambda: "earlier", **deadlines()) == "earlier"  # came and went
        blocked = asyncio.ensure_future(proxy.invoke(gate, "held", **deadlines()))
        await until(lambda: gate.calls == ["held"])
        # WHEN another invocation with a 0.1 s Timeout has to wait for room, behind one without
        following = meta.submit(lambda: "next", (), **deadlines())
        invocation = meta.submit(late, ("late",), **deadlines(function=0.1))
        assert invocation.queued
        # THEN it answers as a function timeout, and never runs once room appears
        with pytest.raises(FunctionTimeoutError):
            await invocation.future
        # AND the room is still the blocked one's: the one queued before it still waits
        assert following.queued
        gate.release.set()
        assert await blocked == "held"
        assert await following.future == "next"
        assert late.calls == []

    run_released(main(), account, [proxy, meta], gate)


def test_an_invocation_past_its_timeout_while_waiting_for_an_instance_never_runs() -> None:
    # GIVEN an account with room for 5, and a function whose 4 instances are stuck
    account = Account(5)
    proxy, meta = FunctionInstances("Proxy", account), FunctionInstances("Meta", account)
    gate, ran = Gate(), threading.Event()

    async def main() -> None:
        stuck = [proxy.submit(gate, (f"p{i}",), **deadlines()).future for i in range(4)]
        await until(lambda: len(gate.calls) == 4)
        # WHEN a fifth, counted but with no instance yet, passes its 50 ms Timeout (before the
        # 100 ms after which it would have had an instance of its own)
        with pytest.raises(FunctionTimeoutError):
            await proxy.invoke(ran.set, **deadlines(function=0.05))
        # THEN its room is given back (another function runs at once) and it never runs
        assert await asyncio.wait_for(meta.invoke(lambda: "ok", **deadlines()), 3) == "ok"
        await asyncio.sleep(0.2)
        assert not ran.is_set()
        gate.release.set()
        await asyncio.gather(*stuck)

    run_released(main(), account, [proxy, meta], gate)


def test_a_queued_invocation_whose_caller_left_never_runs() -> None:
    account = Account(1)
    proxy = FunctionInstances("Proxy", account)
    gate, dropped = Gate(), Gate()

    async def main() -> None:
        blocked = asyncio.ensure_future(proxy.invoke(gate, "held", **deadlines()))
        await until(lambda: gate.calls == ["held"])
        waiting = asyncio.ensure_future(proxy.invoke(dropped, "gone", **deadlines()))
        await asyncio.sleep(0.02)
        # WHEN the caller of the queued invocation is cancelled (its client hung up)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        gate.release.set()
        await blocked
        # THEN the room it would have taken serves the next caller, and it never ran
        assert await proxy.invoke(lambda: "next", **deadlines()) == "next"
        assert dropped.calls == []

    run_released(main(), account, [proxy], gate)


def test_a_stuck_invocation_is_abandoned_at_its_timeout_and_replaced() -> None:
    account = Account(1)
    meta = FunctionInstances("Meta", account)
    gate = Gate()

    async def main() -> str:
        with pytest.raises(FunctionTimeoutError):
            await meta.invoke(gate, "stuck", **deadlines(function=0.2))
        assert meta.instance_count == 0  # the stuck thread no longer counts
        # The only slot of the account is free again: the next invocation is served.
        answer: str = await meta.invoke(lambda: "served", **deadlines())
        assert meta.instance_count == 1
        # WHEN the abandoned handler returns at last THEN it gives back nothing more: the
        # account still runs one invocation at a time
        gate.release.set()
        await until(lambda: not gate.threads[0].is_alive())  # and its thread retires
        held = Gate()
        blocked = asyncio.ensure_future(meta.invoke(held, "held", **deadlines()))
        await until(lambda: held.calls == ["held"])
        assert meta.submit(lambda: "next", (), **deadlines()).queued
        held.release.set()
        await blocked
        return answer

    assert run_released(main(), account, [meta], gate) == "served"


def test_the_integration_timeout_answers_while_the_function_runs_on() -> None:
    account = Account(1)
    proxy = FunctionInstances("Proxy", account)
    gate = Gate()

    async def main() -> None:
        invocation = proxy.submit(gate, ("slow",), **deadlines(integration=0.1))
        with pytest.raises(IntegrationTimeoutError):
            await invocation.future
        # It still runs (and counts toward the account) until it returns.
        queued = proxy.submit(lambda: "after", (), **deadlines())
        assert queued.queued
        gate.release.set()
        assert await queued.future == "after"

    run_released(main(), account, [proxy], gate)


def test_a_stuck_function_whose_integration_gave_up_first_still_ends_at_its_own_timeout() -> None:
    # GIVEN an account of one, and a stuck function with a 0.3 s Timeout behind a route whose
    # integration gives up after 0.1 s
    account = Account(1)
    proxy = FunctionInstances("Proxy", account)
    gate = Gate()

    async def main() -> str:
        invocation = proxy.submit(gate, ("stuck",), **deadlines(function=0.3, integration=0.1))
        with pytest.raises(IntegrationTimeoutError):
            await invocation.future
        # THEN at its own Timeout Lambda ends it: its room serves the next invocation
        answer: str = await asyncio.wait_for(proxy.invoke(lambda: "served", **deadlines()), 3)
        return answer

    assert run_released(main(), account, [proxy], gate) == "served"


def test_reserved_concurrency_throttles_past_its_reservation() -> None:
    account = Account(1)  # unreserved capacity does not matter to a reserved function
    slots = SlotFile(None, {"Users": 2})
    users = FunctionInstances("Users", account, slots.slots["Users"])
    gate = Gate()

    async def main() -> None:
        held = [asyncio.ensure_future(users.invoke(gate, f"u{i}", **deadlines())) for i in (0, 1)]
        await until(lambda: len(gate.calls) == 2)
        with pytest.raises(ThrottledError):
            await users.invoke(lambda: "third", **deadlines())
        gate.release.set()
        await asyncio.gather(*held)
        assert await users.invoke(lambda: "again", **deadlines()) == "again"

    try:
        run(main())
    finally:
        gate.release.set()
        close_all(account, [users])
        slots.close()


def test_exceptions_reach_the_caller_and_limits_are_checked() -> None:
    account = Account(1)
    meta = FunctionInstances("Meta", account)

    async def main() -> None:
        with pytest.raises(ZeroDivisionError):
            await meta.invoke(lambda: 1 / 0, **deadlines())

    run_released(main(), account, [meta])
    with pytest.raises(ValueError, match="at least 1"):
        Account(0)


def test_after_close_all_nothing_is_admitted_and_no_handler_runs() -> None:
    # GIVEN an account whose instances were all closed (the edge shutting down or reloading)
    account = Account(4)
    meta = FunctionInstances("Meta", account)
    gate = Gate()
    gate.release.set()
    close_all(account, [meta])

    # WHEN an invocation still arrives THEN it is refused at once and the handler never runs
    async def main() -> None:
        with pytest.raises(RuntimeError, match="shutting down"):
            await meta.invoke(gate, "late", **deadlines())

    run(main())
    assert gate.calls == []
    assert account.running == 0


def test_an_instance_busy_as_the_edge_closes_retires_when_its_handler_returns() -> None:
    account = Account(4)
    meta = FunctionInstances("Meta", account)
    gate = Gate()

    async def main() -> None:
        running = asyncio.ensure_future(meta.invoke(gate, "busy", **deadlines()))
        await until(lambda: gate.calls == ["busy"])
        # WHEN the edge closes while the handler runs THEN its caller still gets the answer
        close_all(account, [meta])
        gate.release.set()
        assert await running == "busy"
        # AND the instance retires at once instead of waiting idle for work that cannot come
        await until(lambda: not gate.threads[0].is_alive())
        assert meta.instance_count == 0

    try:
        run(main())
    finally:
        gate.release.set()


def test_a_stuck_invocation_whose_caller_left_is_still_ended_at_its_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN an account of one running invocation, held by a function stuck past its Timeout
    account = Account(1)
    meta = FunctionInstances("Meta", account)
    gate = Gate()

    async def main() -> str:
        stuck = asyncio.ensure_future(meta.invoke(gate, "stuck", **deadlines(function=0.3)))
        await until(lambda: gate.calls == ["stuck"])
        # WHEN its caller is cancelled (the client hung up) before the Timeout
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        # THEN Lambda still ends it at its Timeout: the account's slot is free again soon after,
        # not when the handler returns (here: never, within the test)
        answer: str = await asyncio.wait_for(meta.invoke(lambda: "served", **deadlines()), 3)
        return answer

    assert run_released(main(), account, [meta], gate) == "served"
    # AND ending it logged no error: nobody was waiting for its answer
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_running_invocation_whose_caller_left_still_holds_its_room() -> None:
    # GIVEN an account of one running invocation, held by a blocked function
    account = Account(1)
    proxy = FunctionInstances("Proxy", account)
    gate, later = Gate(), Gate()

    async def main() -> None:
        blocked = asyncio.ensure_future(proxy.invoke(gate, "held", **deadlines()))
        await until(lambda: gate.calls == ["held"])
        # WHEN its caller is cancelled (the client hung up) while the function runs on
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
        # THEN the function still counts: the next invocation waits for it, as on Lambda
        queued = proxy.submit(later, ("next",), **deadlines())
        await asyncio.sleep(0.05)
        assert queued.queued
        assert later.calls == []
        later.release.set()
        gate.release.set()
        assert await queued.future == "next"

    run_released(main(), account, [proxy], gate, later)
