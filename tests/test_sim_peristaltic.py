"""Peristaltic physics: exact revolutions and volume, roller ripple, revolutions to go,
occlusion (no flow, pressure to the slip limit, bolus on release) and an empty reservoir."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pumpctl.simulator.peristaltic import (
    DEFAULT_COMPLIANCE_ML_PER_KPA,
    DEFAULT_MAX_PRESSURE_KPA,
    DEFAULT_RIPPLE,
    DEFAULT_ROLLERS,
    DEFAULT_SUCTION_LIMIT_KPA,
    PeristalticPhysics,
)

MAX_LINE_ML = DEFAULT_MAX_PRESSURE_KPA * DEFAULT_COMPLIANCE_ML_PER_KPA  # 0.86 mL


def head(
    ml_per_rev: float = 0.8,
    *,
    rollers: int = DEFAULT_ROLLERS,
    ripple: float = DEFAULT_RIPPLE,
    reservoir_ml: float | None = None,
) -> PeristalticPhysics:
    return PeristalticPhysics(ml_per_rev, rollers=rollers, ripple=ripple, reservoir_ml=reservoir_ml)


# --------------------------------------------------------------------------- exact integration


def test_constant_speed_is_exact() -> None:
    p = head()
    p.start(60.0, clockwise=True)
    assert p.advance(600.0) is False
    assert p.turned_revs == 600.0
    assert p.position_revs == 600.0
    assert p.outflow_ml == pytest.approx(480.0, abs=1e-12)
    assert p.pumped_ml == pytest.approx(480.0, abs=1e-12)
    assert p.speed_rpm == 60.0
    assert p.mean_flow_ml_per_min == pytest.approx(48.0)


def test_many_small_steps_do_not_drift_over_five_days() -> None:
    one, many = head(), head()
    for p in (one, many):
        p.start(100.0, clockwise=True)
    one.advance(5 * 86400.0)
    for _ in range(43200):
        many.advance(10.0)
    assert one.turned_revs == pytest.approx(720000.0, rel=1e-15)
    assert one.outflow_ml == pytest.approx(576000.0, rel=1e-12)
    assert many.outflow_ml == pytest.approx(one.outflow_ml, rel=1e-12)
    assert many.elapsed_s == pytest.approx(432000.0, abs=1e-9)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=500.0), min_size=1, max_size=200))
def test_any_partition_of_time_gives_the_same_volume(steps: list[float]) -> None:
    one, many = head(), head()
    for p in (one, many):
        p.start(37.5, clockwise=True)
    for dt in steps:
        many.advance(dt)
    one.advance(math.fsum(steps))
    assert many.outflow_ml == pytest.approx(one.outflow_ml, abs=1e-9)
    assert many.turned_revs == pytest.approx(one.turned_revs, abs=1e-9)


def test_speed_changes_are_piecewise_exact() -> None:
    p = head(0.5)
    p.start(30.0, clockwise=True)
    p.advance(60.0)  # 30 revs
    p.set_speed(90.0)
    p.advance(20.0)  # 30 revs
    assert p.turned_revs == pytest.approx(60.0, abs=1e-12)
    assert p.outflow_ml == pytest.approx(30.0, abs=1e-12)


def test_counter_clockwise_pumps_back_and_counts_revolutions_both_ways() -> None:
    p = head(reservoir_ml=100.0)
    p.start(60.0, clockwise=True)
    p.advance(60.0)  # +60 revs, 48 mL out
    p.set_direction(clockwise=False)
    assert not p.clockwise
    p.advance(15.0)  # -15 revs, 12 mL back
    assert p.position_revs == pytest.approx(45.0, abs=1e-12)
    assert p.turned_revs == pytest.approx(75.0, abs=1e-12)
    assert p.outflow_ml == pytest.approx(36.0, abs=1e-12)
    assert p.pumped_ml == pytest.approx(36.0, abs=1e-12)
    assert p.reservoir_ml == pytest.approx(64.0, abs=1e-12)
    assert p.mean_flow_ml_per_min == pytest.approx(-48.0)


def test_changing_tubing_keeps_what_was_delivered() -> None:
    p = head(0.8)
    p.start(60.0, clockwise=True)
    p.advance(60.0)
    p.set_ml_per_rev(1.6)
    p.advance(60.0)
    assert p.outflow_ml == pytest.approx(48.0 + 96.0, abs=1e-12)


# --------------------------------------------------------------------------- pulsatility


def test_every_whole_roller_pass_delivers_exactly_its_share() -> None:
    p = head(0.9, rollers=3, ripple=0.6)
    p.start(20.0, clockwise=True)  # a roller pass (1/3 rev) every second
    for k in range(1, 31):
        p.advance(1.0)
        assert p.outflow_ml == pytest.approx(0.3 * k, abs=1e-12)


def test_within_a_pass_the_flow_ripples_around_the_exact_mean() -> None:
    p = head(0.9, rollers=3, ripple=0.6)
    p.start(20.0, clockwise=True)
    mean = 18.0  # mL/min
    assert p.flow_ml_per_min == pytest.approx(mean * 1.6)  # roller fully engaged at phase 0
    p.advance(0.5)  # half a pass
    assert p.flow_ml_per_min == pytest.approx(mean * 0.4)
    assert p.outflow_ml == pytest.approx(0.15, abs=1e-12)  # sin(pi) = 0: on the mean line
    p.advance(0.25)  # three quarters of a pass: D = v (p + a/(2 pi N) sin(3 pi / 2))
    expected = 0.9 * (0.25 + 0.6 / (2 * math.pi * 3) * -1.0)
    assert p.outflow_ml == pytest.approx(expected, abs=1e-12)
    assert p.outflow_ml != pytest.approx(0.225, abs=1e-3)  # visibly off the linear volume


def test_sampled_flow_averages_to_the_mean_over_a_pass() -> None:
    p = head(0.8, rollers=4, ripple=0.3)
    p.start(15.0, clockwise=True)  # one pass = 1/4 rev = 1 s
    n = 1000
    total = 0.0
    p.advance(0.5 / n)  # midpoint rule
    for _ in range(n):
        total += p.flow_ml_per_min
        p.advance(1.0 / n)
    assert total / n == pytest.approx(12.0, rel=1e-9)
    samples = []
    for _ in range(100):
        samples.append(p.flow_ml_per_min)
        p.advance(0.01)
    assert max(samples) == pytest.approx(12.0 * 1.3, rel=1e-3)
    assert min(samples) == pytest.approx(12.0 * 0.7, rel=1e-3)


def test_no_ripple_means_linear_volume() -> None:
    p = head(1.0, ripple=0.0)
    p.start(60.0, clockwise=True)
    p.advance(0.123)
    assert p.outflow_ml == pytest.approx(0.123, abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.floats(min_value=0.0, max_value=1.0), st.integers(min_value=1, max_value=8))
def test_displacement_never_goes_backwards(ripple: float, rollers: int) -> None:
    p = head(1.0, rollers=rollers, ripple=ripple)
    previous = p.displacement_ml(0.0)
    for i in range(1, 400):
        now = p.displacement_ml(i / 397.0)
        assert now >= previous - 1e-12
        previous = now


# --------------------------------------------------------------------------- revolutions to go


def test_revolution_limit_stops_exactly() -> None:
    p = head()
    p.start(100.0, clockwise=True, revs=10.0)
    assert p.advance(5.9) is False
    assert p.remaining_revs == pytest.approx(10.0 - 100.0 / 60.0 * 5.9)
    assert p.advance(0.2) is True
    assert not p.turning
    assert p.turned_revs == 10.0
    assert p.outflow_ml == pytest.approx(8.0, abs=1e-12)
    assert p.remaining_revs is None
    assert p.advance(100.0) is False
    assert p.turned_revs == 10.0


def test_limit_keeps_counting_across_speed_and_direction_changes() -> None:
    p = head()
    p.start(60.0, clockwise=True, revs=10.0)
    p.advance(4.0)  # 4 revs
    p.set_speed(120.0)
    assert p.remaining_revs == pytest.approx(6.0)
    p.advance(2.0)  # 4 revs
    p.set_direction(clockwise=False)
    assert p.advance(1.0) is True  # 2 revs back
    assert p.turned_revs == pytest.approx(10.0, abs=1e-12)
    assert p.position_revs == pytest.approx(6.0, abs=1e-12)


def test_stop_forgets_the_limit() -> None:
    p = head()
    p.start(60.0, clockwise=True, revs=10.0)
    p.advance(3.0)
    p.stop()
    assert p.remaining_revs is None
    assert p.speed_rpm == 0.0
    assert p.flow_ml_per_min == 0.0


# --------------------------------------------------------------------------- occlusion


def test_occlusion_keeps_the_rotor_turning_but_stops_the_flow() -> None:
    p = head(0.8, ripple=0.0)
    p.start(6.0, clockwise=True)  # 0.08 mL/s
    p.set_occluded(True)
    p.advance(5.0)  # 0.4 mL into the line
    assert p.turning
    assert p.turned_revs == pytest.approx(0.5)
    assert p.outflow_ml == 0.0
    assert p.flow_ml_per_min == 0.0
    assert p.line_ml == pytest.approx(0.4, abs=1e-12)
    assert p.pressure_kpa == pytest.approx(80.0)
    p.advance(60.0)  # far past the slip pressure: it stays there
    assert p.pressure_kpa == pytest.approx(DEFAULT_MAX_PRESSURE_KPA)
    assert p.pumped_ml == pytest.approx(MAX_LINE_ML, abs=1e-12)
    assert p.turned_revs == pytest.approx(6.5)
    p.set_occluded(False)  # the stored bolus leaves at once
    assert p.outflow_ml == pytest.approx(MAX_LINE_ML, abs=1e-12)
    assert p.line_ml == 0.0
    p.advance(10.0)
    assert p.outflow_ml == pytest.approx(MAX_LINE_ML + 0.8, abs=1e-12)


def test_occluded_reservoir_only_loses_what_reached_the_line() -> None:
    p = head(0.8, ripple=0.0, reservoir_ml=10.0)
    p.set_occluded(True)
    p.start(60.0, clockwise=True)
    p.advance(60.0)
    assert p.reservoir_ml == pytest.approx(10.0 - MAX_LINE_ML, abs=1e-12)


def test_reversing_against_an_occlusion_pulls_suction_to_its_limit() -> None:
    p = head(0.8, ripple=0.0)
    p.set_occluded(True)
    p.start(60.0, clockwise=False)
    p.advance(60.0)
    assert p.pressure_kpa == pytest.approx(-DEFAULT_SUCTION_LIMIT_KPA)
    p.set_occluded(False)
    assert p.outflow_ml == pytest.approx(-DEFAULT_SUCTION_LIMIT_KPA * 0.005, abs=1e-12)


# --------------------------------------------------------------------------- reservoir


def test_empty_reservoir_pumps_air() -> None:
    p = head(0.8, ripple=0.0, reservoir_ml=2.0)
    p.start(60.0, clockwise=True)
    p.advance(2.0)  # 1.6 mL
    assert not p.pumping_air
    p.advance(2.0)  # would be 3.2 mL: only 2 mL of liquid existed
    assert p.pumping_air
    assert p.turning
    assert p.turned_revs == pytest.approx(4.0)
    assert p.outflow_ml == pytest.approx(2.0, abs=1e-12)
    assert p.flow_ml_per_min == 0.0
    assert p.reservoir_ml == 0.0
    p.set_reservoir_ml(1.0)  # refilled
    assert not p.pumping_air
    p.advance(1.0)
    assert p.outflow_ml == pytest.approx(2.8, abs=1e-12)


# --------------------------------------------------------------------------- validation


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        PeristalticPhysics(0.0)
    with pytest.raises(ValueError):
        PeristalticPhysics(0.8, rollers=0)
    for ripple in (1.5, -0.1):
        with pytest.raises(ValueError):
            PeristalticPhysics(0.8, ripple=ripple)
    with pytest.raises(ValueError):
        PeristalticPhysics(0.8, reservoir_ml=-1.0)
    with pytest.raises(ValueError):
        PeristalticPhysics(0.8, compliance_ml_per_kpa=0.0)


def test_bad_commands_are_refused() -> None:
    p = head()
    with pytest.raises(ValueError):
        p.start(0.0, clockwise=True)
    with pytest.raises(ValueError):
        p.start(10.0, clockwise=True, revs=-1.0)
    with pytest.raises(ValueError):
        p.set_speed(-5.0)
    with pytest.raises(ValueError):
        p.advance(-1.0)
    with pytest.raises(ValueError):
        p.set_reservoir_ml(-2.0)
    with pytest.raises(ValueError):
        p.set_ml_per_rev(0.0)
