"""Rolling-window totals (SR08) on exact sample sequences."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pumpctl.dosing.rolling import RollingTotals


def test_SR08_window_total_trips_only_past_the_maximum() -> None:
    totals = RollingTotals({3600.0: 5.0}, tolerance_ml=0.001)
    # 6 mL/h, sampled every 10 min: 5 mL after 50 min, 6 mL after 60 min
    for minute in range(0, 60, 10):
        assert totals.add(minute * 60.0, minute / 10.0) is None
    assert totals.in_window_ml(3600.0) == pytest.approx(5.0)
    assert totals.add(3600.0, 6.0) == (3600.0, 6.0, 5.0)


def test_old_volume_leaves_the_window() -> None:
    totals = RollingTotals({3600.0: 5.0}, tolerance_ml=0.001)
    totals.add(0.0, 0.0)
    totals.add(600.0, 4.9)  # a fast 4.9 mL early on...
    assert totals.add(4200.0, 4.9 + 0.5) is None  # ...is outside the last hour by t = 70 min
    assert totals.in_window_ml(3600.0) == pytest.approx(0.5)


@given(st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=200))
def test_window_total_never_under_estimates(increments: list[float]) -> None:
    totals = RollingTotals({3600.0: 1e9}, tolerance_ml=0.0)
    times, cumulative, total = [], [], 0.0
    for i, inc in enumerate(increments):
        total += inc
        times.append(i * 300.0)
        cumulative.append(total)
        totals.add(i * 300.0, total)
        now = times[-1]
        exact = total - max(
            [c for t, c in zip(times, cumulative, strict=True) if t <= now - 3600.0], default=0.0
        )
        assert totals.in_window_ml(3600.0) >= exact - 1e-9
