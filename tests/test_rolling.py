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


def _naive(limits: dict[float, float], tol: float, samples: list[tuple[float, float]]) -> list:
    """Every sample kept, each window measured from the last one at or before its start."""
    results, kept = [], []
    for now, total in samples:
        kept.append((now, total))
        found = None
        for w, max_ml in limits.items():
            before = [c for t, c in kept if t <= now - w]
            in_window = total - (before[-1] if before else 0.0)
            if in_window > max_ml + tol:
                found = (w, in_window, max_ml)
                break
        results.append(
            (found, [total - ([c for t, c in kept if t <= now - w] or [0.0])[-1] for w in limits])
        )
    return results


@given(
    st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.1, 1.0, 1.0, 1.0, 7.3, 300.0, 600.0, 900.0]),
            st.sampled_from([0.0, 0.0, 0.0, 0.5, 0.1, -0.25]),
        ),
        min_size=1,
        max_size=300,
    )
)
def test_SR08_repeated_totals_are_not_stored_and_change_no_answer(
    steps: list[tuple[float, float]],
) -> None:
    """A drip's counter stays put for most polls; those samples are not stored (`add`), and
    every answer is the one with every sample kept, totals that go back included."""
    limits = {600.0: 1.2, 1800.0: 2.0, 3600.0: 3.0}
    samples, now, total = [], 0.0, 0.0
    for dt, inc in steps:
        now, total = now + dt, total + inc
        samples.append((now, total))
    totals = RollingTotals(limits, tolerance_ml=0.001)
    for (now, total), (found, in_windows) in zip(
        samples, _naive(limits, 0.001, samples), strict=True
    ):
        assert totals.add(now, total) == found
        assert [totals.in_window_ml(w) for w in limits] == in_windows


def test_SR08_a_tolerance_set_later_is_the_one_judged() -> None:
    """The supervisor sets the tolerance again once the pump's container is set up."""
    totals = RollingTotals({3600.0: 5.0}, tolerance_ml=0.0)
    totals.tolerance_ml = 0.01
    totals.add(0.0, 0.0)
    assert totals.add(60.0, 5.005) is None  # within the tolerance set last
    assert totals.add(120.0, 5.02) == (3600.0, 5.02, 5.0)
