"""Syringe physics: exact analytic volumes, end of travel, occlusion, stall and bolus (SR27)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pumpctl.simulator.physics import (
    DEFAULT_COMPLIANCE_ML_PER_KPA,
    DEFAULT_STALL_PRESSURE_KPA,
    StopReason,
    SyringePhysics,
)

THRESHOLD_ML = DEFAULT_COMPLIANCE_ML_PER_KPA * DEFAULT_STALL_PRESSURE_KPA  # 0.32 mL


def bd60(contents_ml: float | None = None) -> SyringePhysics:
    return SyringePhysics(26.59, 60.0, contents_ml)


def test_constant_rate_is_exact() -> None:
    s = bd60()
    s.start(14.0, infuse=True)
    assert s.advance(4 * 3600.0) is None
    assert s.pushed_net_ml == pytest.approx(56.0, abs=1e-12)
    assert s.infused_ml == pytest.approx(56.0, abs=1e-12)
    assert s.withdrawn_ml == 0.0
    assert s.remaining_ml == pytest.approx(4.0, abs=1e-12)
    assert s.outflow_ml == pytest.approx(56.0, abs=1e-12)
    assert s.rate_ml_per_h == 14.0


def test_many_small_steps_do_not_drift_over_five_days() -> None:
    one, many = SyringePhysics(26.59, 2000.0), SyringePhysics(26.59, 2000.0)
    for s in (one, many):
        s.start(3.5, infuse=True)
    one.advance(5 * 86400.0)
    for _ in range(43200):
        many.advance(10.0)
    assert one.pushed_net_ml == pytest.approx(420.0, abs=1e-9)
    assert many.pushed_net_ml == pytest.approx(one.pushed_net_ml, abs=1e-9)
    assert many.elapsed_s == pytest.approx(432000.0, abs=1e-9)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=500.0), min_size=1, max_size=200))
def test_any_partition_of_time_gives_the_same_volume(steps: list[float]) -> None:
    one, many = bd60(), bd60()
    for s in (one, many):
        s.start(14.0, infuse=True)
    for dt in steps:
        many.advance(dt)
    one.advance(math.fsum(steps))
    assert many.pushed_net_ml == pytest.approx(one.pushed_net_ml, abs=1e-9)


def test_infusing_stops_at_empty_exactly() -> None:
    s = bd60(contents_ml=10.0)
    s.start(60.0, infuse=True)
    assert s.time_to_empty_s() == pytest.approx(600.0)
    assert s.advance(599.0) is None
    assert s.advance(5.0) is StopReason.EMPTY
    assert not s.moving
    assert s.contents_ml == 0.0
    assert s.pushed_net_ml == 10.0
    assert s.advance(100.0) is None  # stays stopped


def test_withdrawing_stops_at_full_capacity() -> None:
    s = bd60(contents_ml=59.0)
    s.start(60.0, infuse=False)
    assert s.advance(3600.0) is StopReason.FULL
    assert s.contents_ml == 60.0
    assert s.pushed_net_ml == -1.0
    assert s.withdrawn_ml == 1.0


def test_travel_limit_stops_exactly_and_survives_rate_change() -> None:
    s = bd60()
    s.start(14.0, infuse=True, limit_ml=3.5)
    s.advance(450.0)  # 1.75 mL at 14 mL/h
    s.set_rate(28.0)  # 1.75 mL left: 225 s at 28 mL/h
    assert s.advance(224.0) is None
    assert s.advance(10.0) is StopReason.LIMIT
    assert s.pushed_net_ml == 3.5


def test_occlusion_stores_volume_then_stalls_at_threshold() -> None:
    s = bd60()
    s.set_occluded(True)
    s.start(60.0, infuse=True)  # 1 mL/min: threshold 0.32 mL after 19.2 s
    assert s.advance(10.0) is None
    assert s.pressure_kpa == pytest.approx(1 / 6 / DEFAULT_COMPLIANCE_ML_PER_KPA)
    assert s.outflow_ml == 0.0
    assert s.advance(10.0) is StopReason.STALL
    assert s.line_ml == pytest.approx(THRESHOLD_ML)
    assert s.pressure_kpa == pytest.approx(DEFAULT_STALL_PRESSURE_KPA)
    assert s.pushed_net_ml == pytest.approx(THRESHOLD_ML)
    assert s.outflow_ml == 0.0


def test_SR27_releasing_occlusion_delivers_the_stored_bolus() -> None:
    """SR27: the bolus a released occlusion pushes is delivered volume."""
    s = bd60()
    s.start(60.0, infuse=True)
    s.advance(60.0)  # 1 mL delivered freely
    s.set_occluded(True)
    s.advance(6.0)  # 0.1 mL into the line
    s.stop()
    assert s.outflow_ml == pytest.approx(1.0)
    assert s.line_ml == pytest.approx(0.1)
    s.set_occluded(False)
    assert s.outflow_ml == pytest.approx(1.1)
    assert s.line_ml == 0.0
    assert s.pressure_kpa == 0.0
    assert s.pushed_net_ml == pytest.approx(1.1)


def test_load_replaces_syringe_and_keeps_travel_counters() -> None:
    s = bd60()
    s.start(60.0, infuse=True)
    s.advance(60.0)
    s.load(14.43, 10.0, 10.0)
    assert not s.moving
    assert s.remaining_ml == 10.0
    assert s.pushed_net_ml == pytest.approx(1.0)
    assert s.area_mm2 == pytest.approx(math.pi * 14.43**2 / 4)


def test_invalid_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        SyringePhysics(0.0, 10.0)
    with pytest.raises(ValueError):
        SyringePhysics(10.0, 10.0, contents_ml=11.0)
    s = bd60()
    with pytest.raises(ValueError):
        s.start(0.0, infuse=True)
    with pytest.raises(ValueError):
        s.advance(-1.0)
