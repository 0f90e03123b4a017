"""The exchange deadline every socket operation of a forwarded request is bounded by (unit)."""

from __future__ import annotations

import time

import httpcore
import pytest

from lucid.proxy.deadline import bounded, exchange_deadline


def test_outside_an_exchange_a_timeout_is_left_as_it_is() -> None:
    assert bounded(2.5, httpcore.ReadTimeout) == 2.5
    assert bounded(None, httpcore.ReadTimeout) is None


def test_inside_one_it_is_cut_to_what_is_left_and_refused_once_past() -> None:
    with exchange_deadline(time.monotonic() + 1.0):
        assert bounded(10.0, httpcore.ReadTimeout) == pytest.approx(1.0, abs=0.1)
        assert bounded(None, httpcore.ReadTimeout) == pytest.approx(1.0, abs=0.1)
        assert bounded(0.2, httpcore.ReadTimeout) == 0.2
    with exchange_deadline(time.monotonic() - 0.001), pytest.raises(httpcore.WriteTimeout):
        bounded(10.0, httpcore.WriteTimeout)
    # AND the deadline ends with its block
    assert bounded(3.0, httpcore.ReadTimeout) == 3.0
