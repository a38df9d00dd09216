"""Clinician bolus lockout: each limit refuses with its name and the next allowed time; a burst
of requests never breaks a limit; the clocks restore from the journaled boluses."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pumpctl.dosing.bolus import (
    BolusLimits,
    BolusLockout,
    BolusRecord,
    BolusRequest,
    decide,
    fallback_rate_ml_per_h,
)

# 70 kg adult: 0.1 mg/kg = 7 mg per bolus, 15 min lockout, 3 per hour, 20 mg per 4 h
LIMITS = BolusLimits(max_dose_mg=7.0, lockout_s=900.0, max_per_hour=3, max_mg_per_4h=20.0)
MIN = 60.0


def ask(t_s: float, dose_mg: float = 7.0, duration_s: float = 60.0) -> BolusRequest:
    return BolusRequest(t_s, dose_mg, "dr-a", "distress", duration_s)


def test_first_bolus_is_accepted_and_journaled() -> None:
    lock = BolusLockout(LIMITS)
    d = lock.request(ask(600.0))
    assert d.accepted and d.limit is None
    # next: the lockout runs from the END of the 60-s bolus: 600 + 60 + 900
    assert d.next_allowed_s == 1560.0
    entry = d.journal()
    assert entry["event"] == "bolus_accepted"
    assert (entry["who"], entry["reason"], entry["dose_mg"]) == ("dr-a", "distress", 7.0)
    assert entry["accepted"] is True
    assert lock.history == (BolusRecord(600.0, 7.0, 60.0, "dr-a", "distress"),)


def test_lockout_refuses_and_says_when() -> None:
    lock = BolusLockout(LIMITS)
    lock.request(ask(0.0))
    d = lock.request(ask(5 * MIN))
    assert not d.accepted and d.limit == "lockout"
    assert d.next_allowed_s == 960.0
    assert "lockout 15 min" in d.message
    assert "next bolus allowed at 0:16:00 (in 0:11:00)" in d.message
    assert d.journal()["event"] == "bolus_refused" and len(lock.history) == 1
    assert lock.request(ask(960.0)).accepted


def test_per_hour_count() -> None:
    limits = BolusLimits(max_dose_mg=5.0, lockout_s=600.0, max_per_hour=2, max_mg_per_4h=100.0)
    lock = BolusLockout(limits)
    assert lock.request(ask(0.0, 1.0, 0.0)).accepted
    assert lock.request(ask(600.0, 1.0, 0.0)).accepted
    d = lock.request(ask(1200.0, 1.0, 0.0))
    assert d.limit == "per_hour" and "at most 2 boluses per hour" in d.message
    assert d.next_allowed_s == 3600.0  # the first one leaves the window
    assert lock.request(ask(3600.0, 1.0, 0.0)).accepted


def test_four_hour_limit_refuses_and_drops_to_basal() -> None:
    lock = BolusLockout(LIMITS)
    assert lock.request(ask(0.0)).accepted  # 7
    assert lock.request(ask(30 * MIN)).accepted  # 14
    d = lock.request(ask(60 * MIN))  # 21 > 20
    assert d.limit == "per_4h" and "4-h limit 20 mg (14 mg given in the last 4 h)" in d.message
    assert not d.four_hour_limit_reached  # 6 mg are still allowed
    assert d.next_allowed_s == 4 * 3600.0  # when the first bolus leaves the 4-h window
    small = lock.request(ask(60 * MIN, 6.0))  # exactly 20: accepted, and now at the limit
    assert small.accepted and small.four_hour_limit_reached
    assert "4-h bolus limit now reached" in small.message
    assert lock.four_hour_limit_reached(60 * MIN + 1)
    assert not lock.four_hour_limit_reached(4 * 3600.0 + 1)
    assert fallback_rate_ml_per_h(7.0, 1.0) == 7.0
    assert fallback_rate_ml_per_h(None, 1.0) == 1.0  # no basal: KVO
    assert fallback_rate_ml_per_h(0.0, None) == 0.0


def test_a_dose_above_the_library_limit_is_never_allowed() -> None:
    d = decide(LIMITS, [], ask(0.0, 7.5))
    assert d.limit == "dose" and d.next_allowed_s is None
    assert "dose 7.5 mg is above the maximum bolus 7 mg" in d.message
    assert "no bolus of this dose is allowed" in d.message


def test_a_bolus_needs_who_and_why_and_a_sane_clock() -> None:
    assert decide(LIMITS, [], BolusRequest(0.0, 1.0, "", "pain")).limit == "request"
    assert decide(LIMITS, [], BolusRequest(0.0, 1.0, "dr-a", " ")).limit == "request"
    assert decide(LIMITS, [], BolusRequest(0.0, 0.0, "dr-a", "pain")).limit == "request"
    past = [BolusRecord(5000.0, 1.0)]
    assert decide(LIMITS, past, ask(4000.0, 1.0)).limit == "request"


def test_restored_from_the_journal_it_decides_the_same() -> None:
    live = BolusLockout(LIMITS)
    requests = [ask(t * MIN, dose) for t, dose in ((0, 5), (10, 5), (16, 5), (40, 6), (80, 6))]
    for r in requests:
        live.request(r)
    accepted = list(live.history)
    restored = BolusLockout(LIMITS, reversed(accepted))  # order in the journal does not matter
    for t in (81, 100, 130, 200, 241, 300):
        a, b = live.request(ask(t * MIN, 4.0)), restored.request(ask(t * MIN, 4.0))
        assert (a.accepted, a.limit, a.next_allowed_s) == (b.accepted, b.limit, b.next_allowed_s)


LIMIT_WORDS = {
    "request": "refused",
    "dose": "above the maximum bolus",
    "lockout": "lockout",
    "per_hour": "boluses per hour",
    "per_4h": "4-h limit",
}

requests = st.lists(
    st.tuples(
        st.floats(0.0, 1800.0),  # gap to the previous request, s
        st.floats(0.1, 9.0),  # dose mg
        st.floats(0.0, 300.0),  # delivery time s
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(requests, st.floats(0.0, 1800.0), st.integers(1, 5), st.floats(5.0, 40.0))
def test_a_burst_of_requests_never_exceeds_any_limit(
    burst: list[tuple[float, float, float]], lockout_s: float, per_hour: int, per_4h: float
) -> None:
    limits = BolusLimits(7.0, lockout_s, per_hour, per_4h)
    lock = BolusLockout(limits)
    t = 0.0
    for gap, dose, duration in burst:
        t += gap
        d = lock.request(BolusRequest(t, dose, "nurse", "burst", duration))
        if not d.accepted:
            assert d.limit is not None and LIMIT_WORDS[d.limit] in d.message
            assert d.next_allowed_s is None or d.next_allowed_s > t
    given_ = lock.history
    eps = 1e-6
    for b in given_:
        assert b.dose_mg <= limits.max_dose_mg
    for a, b in itertools.pairwise(given_):
        assert b.t_s >= a.end_s + lockout_s - eps
    for b in given_:
        hour = [x for x in given_ if b.t_s - 3600 + eps < x.t_s <= b.t_s]
        four = [x for x in given_ if b.t_s - 14400 + eps < x.t_s <= b.t_s]
        assert len(hour) <= per_hour
        assert sum(x.dose_mg for x in four) <= per_4h * (1 + 1e-9)


@settings(max_examples=100, deadline=None)
@given(requests, st.floats(1.0, 600.0))
def test_the_next_allowed_time_is_really_the_first_allowed(
    burst: list[tuple[float, float, float]], probe_dose: float
) -> None:
    """Refused now, accepted at next_allowed_s, refused a second before it."""
    limits = BolusLimits(9.0, 900.0, 2, 20.0)
    lock = BolusLockout(limits)
    t = 0.0
    for gap, dose, duration in burst:
        t += gap
        lock.request(BolusRequest(t, dose, "nurse", "burst", duration))
    dose = min(probe_dose / 60, 9.0)
    nxt = lock.next_allowed_s(t, dose)
    assert nxt is not None
    assert decide(limits, list(lock.history), BolusRequest(nxt, dose, "n", "r")).accepted
    if nxt - 1.0 >= t:
        assert not decide(
            limits, list(lock.history), BolusRequest(nxt - 1.0, dose, "n", "r")
        ).accepted


def test_limits_must_make_sense() -> None:
    with pytest.raises(ValueError):
        BolusLimits(0.0, 900.0, 3, 20.0)
    with pytest.raises(ValueError):
        BolusLimits(7.0, -1.0, 3, 20.0)
    with pytest.raises(ValueError):
        BolusLimits(7.0, 900.0, 0, 20.0)
