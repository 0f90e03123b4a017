"""The cold-start bench's paired ratio and the interval it quotes around it."""

from __future__ import annotations

import math
import random

import pytest

from bench.coldstart import HELLO, _paired, median_interval


def _coverage(n: int, k: int) -> float:
    """P(the k-th smallest <= true median <= the k-th largest) for n draws of any continuous
    distribution: 1 - 2 P(Binomial(n, 1/2) < k)."""
    return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / (1 << n)


@pytest.mark.parametrize(("n", "k"), [(5, 1), (6, 1), (9, 2), (15, 4), (25, 8)])
def test_the_interval_is_the_widest_order_statistics_of_at_least_95_percent(n: int, k: int) -> None:
    # GIVEN n distinct values in shuffled order
    values = [float(v) for v in range(1, n + 1)]
    random.Random(n).shuffle(values)
    # WHEN the interval is taken
    median, low, high = median_interval(values)
    # THEN it runs from the k-th smallest to the k-th largest, the median is the middle
    assert (median, low, high) == ((n + 1) / 2, k, n + 1 - k)
    # AND k is the largest rank with >= 95 % coverage (n=5 cannot reach 95 %: min to max)
    assert _coverage(n, k) >= 0.95 or k == 1
    assert _coverage(n, k + 1) < 0.95


def test_the_paired_ratio_cancels_the_machine_getting_slower_between_rounds() -> None:
    # GIVEN rounds in which the machine slows down 1.5x half-way, for both functions alike
    hello = [400.0, 410.0, 405.0, 600.0, 615.0, 607.0]
    auth = [h * 1.2 for h in hello]
    figures = {
        ("bytecode", HELLO): {"cpu_rounds": hello},
        ("bytecode", "AuthFunction"): {"cpu_rounds": auth},
    }
    # WHEN the paired ratio is taken
    paired, low, high = _paired(figures, "bytecode", "AuthFunction")
    # THEN it is the function's own 1.2x, with no spread, where drift would widen the interval
    assert (round(paired, 9), round(low, 9), round(high, 9)) == (1.2, 1.2, 1.2)
