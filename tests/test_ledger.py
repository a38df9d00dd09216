"""The pure books of one segment (infusion/ledger.py), without a pump or a clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pumpctl.dosing.plan import SegmentPhase
from pumpctl.drivers.base import AlarmReason, DeliveredVolume, PumpState, PumpStatus
from pumpctl.infusion.ledger import _READING_FIELDS as READING_FIELDS
from pumpctl.infusion.ledger import Alarm, LegState, SegmentLedger, Tolerances, Verdict

from .conftest import segment

TOL = Tolerances(
    floor_ml=0.05, accuracy=0.01, resolution_ml=0.001, rate_step_ml_per_h=0.001, poll_interval_s=1.0
)
RUNNING = PumpStatus(state=PumpState.RUNNING)
STOPPED = PumpStatus(state=PumpState.STOPPED)


def ledger(rate: float = 36.0, volume: float | None = 1.0) -> SegmentLedger:
    led = SegmentLedger(
        segment=segment(SegmentPhase.LOADING, rate, volume),
        rate_ml_per_h=rate,
        started_s=0.0,
        last_accrual_s=0.0,
    )
    led.new_leg()
    led.stop_at_ml = volume
    led.enter(LegState.RUNNING, 0.0)
    return led


def reading(led: SegmentLedger, ml: float, at_s: float) -> None:
    led.take_reading(RUNNING, DeliveredVolume(infused_ml=ml), at_s, TOL)


def test_expected_volume_accrues_only_while_running() -> None:
    led = ledger()
    led.accrue(10.0)  # 36 mL/h = 0.01 mL/s
    led.enter(LegState.PAUSED, 10.0)
    led.accrue(100.0)
    led.enter(LegState.RUNNING, 100.0)
    led.accrue(110.0)
    assert led.expected_ml == pytest.approx(0.2)
    assert led.held_since_s is None


def test_a_titration_accrues_at_the_old_rate_up_to_the_change() -> None:
    led = ledger(volume=None)
    led.change_rate(72.0, 10.0)
    led.accrue(20.0)
    assert led.expected_ml == pytest.approx(0.1 + 0.2)
    assert led.last_increase_s == 10.0


def test_SR22_a_counter_off_rate_times_time_is_an_alarm() -> None:
    led = ledger()
    reading(led, 0.1, 10.0)
    with pytest.raises(Alarm, match="volume_deviation"):
        reading(led, 0.5, 20.0)  # 0.4 mL in 10 s at 0.01 mL/s


def test_SR23_the_counter_may_not_pass_the_plan() -> None:
    led = ledger(rate=3600.0)
    with pytest.raises(Alarm, match="over_delivery"):
        reading(led, 1.002, 1.0)


@given(expected=st.floats(0, 100), rate=st.floats(0.01, 1000), jitter=st.floats(0, 600))
def test_tolerance_grows_with_volume_rate_and_clock_jitter(
    expected: float, rate: float, jitter: float
) -> None:
    base = TOL.deviation_ml(expected, rate)
    assert base >= TOL.floor_ml
    wider = Tolerances(**{**TOL.__dict__, "clock_jitter_s": jitter})
    assert wider.deviation_ml(expected, rate) == pytest.approx(base + rate * jitter / 3600)
    assert TOL.deviation_ml(expected + 1, rate) > base


def test_worst_case_while_unreadable_gives_way_to_the_counter() -> None:
    led = ledger()
    reading(led, 0.1, 10.0)
    assert led.book_worst_case(30.0, for_s=0.0) == pytest.approx(0.2)  # 20 s at 0.01 mL/s
    assert led.delivered_ml == pytest.approx(0.3)
    reading(led, 0.28, 30.0)  # readable again: the counter is the record
    assert (led.delivered_ml, led.estimated_ml) == (pytest.approx(0.28), 0.0)


def test_an_unconfirmed_stop_books_the_pumps_own_target() -> None:
    led = ledger()
    reading(led, 0.1, 10.0)
    led.book_worst_case(12.0)  # until the pump's own target stops it
    assert led.delivered_ml == pytest.approx(1.0)
    led2 = ledger()
    reading(led2, 0.1, 10.0)
    led2.book_worst_case(12.0, for_s=10.0)  # a link watchdog stops it 10 s later
    assert led2.delivered_ml == pytest.approx(0.1 + 0.01 * 12)


def test_SR28_a_counter_that_goes_back_is_a_reset_and_its_gap_is_booked_for_good() -> None:
    led = ledger()
    reading(led, 0.3, 30.0)
    with pytest.raises(Alarm, match="reset") as info:
        reading(led, 0.0, 40.0)
    assert info.value.reason == "reset"
    assert led.lost_ml == pytest.approx(0.1)  # 10 s at the commanded rate
    assert led.delivered_ml == pytest.approx(0.4)
    led.counter_reading(0.05, 45.0, 0.001)  # counting again, on top of what was booked
    assert led.delivered_ml == pytest.approx(0.45) and led.estimated_ml == pytest.approx(0.1)


def test_verdicts() -> None:
    led = ledger()
    reading(led, 1.0, 100.0)
    assert led.verdict(STOPPED, 100.0, resolution_ml=0.001, max_pause_s=900) is Verdict.DONE
    short = ledger()
    short.stop_at_ml, short.final_leg = 0.5, False  # the container ran out first
    reading(short, 0.5, 50.0)
    assert (
        short.verdict(STOPPED, 50.0, resolution_ml=0.001, max_pause_s=900)
        is Verdict.CONTAINER_EMPTY
    )
    unknown = ledger()
    unknown.enter(LegState.STARTING, 0.0)
    reading(unknown, 0.0, 1.0)
    assert unknown.verdict(STOPPED, 1.0, resolution_ml=0.001, max_pause_s=900) is Verdict.RESTART
    odd = ledger()
    reading(odd, 0.2, 20.0)
    with pytest.raises(Alarm, match="unexpected_stop"):
        odd.verdict(STOPPED, 20.0, resolution_ml=0.001, max_pause_s=900)


def test_SR15_held_too_long() -> None:
    led = ledger()
    led.enter(LegState.PAUSED, 10.0)
    assert led.verdict(STOPPED, 900.0, resolution_ml=0.001, max_pause_s=900) is Verdict.CONTINUE
    with pytest.raises(Alarm, match="paused_too_long"):
        led.verdict(STOPPED, 910.0, resolution_ml=0.001, max_pause_s=900)


def test_a_pump_alarm_is_never_booked_as_a_reading() -> None:
    led = ledger()
    stall = PumpStatus(state=PumpState.ALARM, alarm=AlarmReason.STALL, raw="A?S")
    with pytest.raises(Alarm, match="stall"):
        led.take_reading(stall, DeliveredVolume(infused_ml=0.9), 10.0, TOL)
    assert led.delivered_ml == 0.0


def test_a_suspect_reading_is_undone_in_every_field_it_changed() -> None:
    """`reading_state` is spelled out for speed: it must save every field a reading changes,
    or the re-read after a suspect reading starts from the wrong books."""
    led = ledger()
    reading(led, 0.010, 1.0)
    reading(led, 0.020, 2.0)
    saved = led.reading_state()
    before = {name: getattr(led, name) for name in READING_FIELDS}
    led.counter_reading(0.015, 3.0, TOL.resolution_ml)  # replaces the 0.020 reading
    assert led.replaced_ml == 0.020
    led.counter_reading(0.0, 4.0, TOL.resolution_ml)  # and a reset after it
    led.restore_reading(saved)
    assert {name: getattr(led, name) for name in READING_FIELDS} == before
