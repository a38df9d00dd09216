"""Refills in the polled status become one journal event each (`infusion.refills`)."""

from __future__ import annotations

import pytest

from pumpctl.drivers.base import AlarmReason, PumpState, PumpStatus
from pumpctl.infusion.events import SyringeRefilled, parse_record
from pumpctl.infusion.journal import EventKind
from pumpctl.infusion.refills import RefillWatch

RUN = PumpStatus(state=PumpState.RUNNING)
REFILL = PumpStatus(state=PumpState.RUNNING, refilling=True)


def test_each_refill_is_one_event_from_its_first_poll_to_the_first_poll_after_it() -> None:
    watch = RefillWatch()
    polls = [RUN, REFILL, REFILL, RUN, RUN, REFILL, RUN]
    events = [watch.observe(s, float(t)) for t, s in enumerate(polls)]
    ended = [e for e in events if e is not None]
    assert [(e.started_s, e.duration_s) for e in ended] == [(1.0, 2.0), (5.0, 1.0)]
    assert watch.count == 2 and not watch.refilling


def test_an_alarm_during_a_refill_ends_it() -> None:
    watch = RefillWatch()
    assert watch.observe(REFILL, 0.0) is None and watch.refilling
    alarm = PumpStatus(state=PumpState.ALARM, alarm=AlarmReason.STALL, refilling=True)
    event = watch.observe(alarm, 0.5)
    assert event is not None and event.duration_s == pytest.approx(0.5)


def test_the_event_round_trips_through_the_journal_payload() -> None:
    event = SyringeRefilled(started_s=10.0, duration_s=2.5, volume_ml=1.0, port="i")
    assert parse_record(EventKind.NOTE, event.payload()) == event
