"""lucid.coldstart: a function's imports run without the cyclic collector, then stay frozen."""

from __future__ import annotations

import gc
import importlib
import pkgutil
import threading
from collections.abc import Iterator
from typing import ForwardRef

import pytest

import lucid
from lucid.coldstart import cold_start


class Node:
    """An object the collector tracks, able to join a reference cycle."""

    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def collector() -> Iterator[None]:
    """The collector as the test process had it, restored afterwards (frozen objects too)."""
    enabled = gc.isenabled()
    gc.enable()
    yield
    gc.unfreeze()
    if not enabled:
        gc.disable()


@pytest.mark.usefixtures("collector")
def test_the_collector_is_off_while_importing_and_on_again_with_the_imports_frozen() -> None:
    # GIVEN the collector on, as Lambda's runtime starts Python
    frozen_before = gc.get_freeze_count()
    # WHEN a function's start builds its long-lived objects inside the block
    with cold_start():
        during = gc.isenabled()
        kept = [Node() for _ in range(1000)]
    # THEN no collection could run meanwhile, and afterwards the collector runs again for what
    # requests create, without walking what the start built: it is in the permanent generation
    assert during is False
    assert gc.isenabled() is True
    assert gc.get_freeze_count() >= frozen_before + len(kept)


@pytest.mark.usefixtures("collector")
def test_a_start_that_fails_leaves_the_collector_on() -> None:
    # GIVEN a start that raises (unusable keys, a bad setting)
    # WHEN the block exits with it THEN the error propagates and the collector is on again
    with pytest.raises(RuntimeError, match="bad key"), cold_start():
        raise RuntimeError("bad key")
    assert gc.isenabled() is True


@pytest.mark.usefixtures("collector")
def test_a_collector_turned_off_before_stays_off() -> None:
    # GIVEN a process that turned the collector off itself
    gc.disable()
    # WHEN a function starts in it THEN the collector is not turned on behind its back
    with cold_start():
        pass
    assert gc.isenabled() is False


@pytest.mark.usefixtures("collector")
def test_what_requests_create_is_still_collected() -> None:
    # GIVEN a started function
    with cold_start():
        pass
    # WHEN a request leaves a reference cycle behind
    first, second = Node(), Node()
    first.other, second.other = second, first
    del first, second
    # THEN the collector frees it (only the start's objects are frozen)
    assert gc.collect() >= 2


@pytest.mark.usefixtures("collector")
def test_a_re_import_off_the_main_thread_leaves_the_collector_and_freeze_alone() -> None:
    # GIVEN a process whose other threads serve requests (the local edge's `--reload` thread)
    frozen_before = gc.get_freeze_count()
    seen: list[bool] = []

    def reload() -> None:
        with cold_start():
            seen.append(gc.isenabled())
            Node()

    # WHEN a function is imported again in a thread
    worker = threading.Thread(target=reload)
    worker.start()
    worker.join()
    # THEN the collector stayed on for everyone, and nothing (the code it replaces) was frozen
    assert seen == [True]
    assert gc.isenabled() is True
    assert gc.get_freeze_count() == frozen_before


# Their fields name types imported for typing only (`if TYPE_CHECKING:`), which the module keeps
# as strings: the Redis client and pymongo (lucid.web.stores, lucid.store.health) or the settings
# (lucid.secret_store, imported by lucid.config).
FORWARD_REFERENCES_KEPT = {"lucid.web.stores", "lucid.secret_store", "lucid.store.health"}


def test_the_layers_named_tuples_have_their_field_types_evaluated() -> None:
    # GIVEN every NamedTuple the layer defines
    found = []
    for info in pkgutil.walk_packages(lucid.__path__, "lucid."):
        module = importlib.import_module(info.name)
        if info.name in FORWARD_REFERENCES_KEPT:
            continue
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, tuple) and hasattr(value, "_fields"):
                if value.__module__ != info.name:
                    continue
                # THEN no field's type is a string annotation, which typing.NamedTuple compiles
                # into a ForwardRef when the module is imported: at every cold start
                found += [
                    f"{info.name}.{value.__qualname__}.{name}"
                    for name, annotation in value.__annotations__.items()
                    if isinstance(annotation, ForwardRef)
                ]
    assert not found, f"postponed annotations (`from __future__ import annotations`?): {found}"
