"""Taper: step-down segments at the end of a maintenance, quantized down, never above it."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pumpctl.dosing.pk.taper import TaperError, taper_segments
from pumpctl.dosing.plan import Segment, SegmentPhase
from pumpctl.families.quantize import FixedStepQuantizer


def maintenance(rate_ml_per_h: float = 14.0, hours: float = 4.0, conc: float = 1.0) -> Segment:
    volume = rate_ml_per_h * hours
    return Segment(
        phase=SegmentPhase.MAINTENANCE,
        rate_ml_per_h=rate_ml_per_h,
        volume_ml=volume,
        duration_s=hours * 3600,
        dose_rate=rate_ml_per_h * conc / 70,
        dose_rate_unit="mg/kg/h",
        drug_mg=volume * conc,
    )


def test_three_steps_over_30_min() -> None:
    """14 mL/h for 4 h (0.2 mg/kg/h, 70 kg, 1 mg/mL) ending with 3 steps over 30 min:
    3 h 30 min at 14, then 10 min each at 10.5, 7 and 3.5 mL/h."""
    segs = taper_segments(maintenance(), steps=3, over_s=1800, quantizer=FixedStepQuantizer())
    assert [s.rate_ml_per_h for s in segs] == [14.0, 10.5, 7.0, 3.5]
    # volumes are rounded down to the pump's 0.001 mL, so a step is at most one volume step short
    assert [s.volume_ml for s in segs] == [49.0, 1.75, 1.166, 0.583]
    for s, nominal in zip(segs, (12600, 600, 600, 600), strict=True):
        assert nominal - 0.001 / s.rate_ml_per_h * 3600 < s.duration_s <= nominal
    assert [s.dose_rate for s in segs] == pytest.approx([0.2, 0.15, 0.1, 0.05])
    assert all(s.phase is SegmentPhase.MAINTENANCE for s in segs)
    for s in segs:
        assert s.drug_mg == pytest.approx(s.volume_ml)  # 1 mg/mL


def test_rates_are_rounded_down_by_the_pump_quantizer() -> None:
    q = FixedStepQuantizer(volume_ml=0.01, rate_ml_per_h=1.0)
    segs = taper_segments(maintenance(), steps=3, over_s=1800, quantizer=q)
    assert [s.rate_ml_per_h for s in segs] == [14.0, 10.0, 7.0, 3.0]  # 10.5 -> 10, 3.5 -> 3


def test_steps_too_small_for_the_pump_end_the_taper_and_equal_steps_merge() -> None:
    q = FixedStepQuantizer(volume_ml=0.001, rate_ml_per_h=1.0)
    # 2 mL/h in 4 steps: 1.6, 1.2, 0.8, 0.4 -> 1, 1, (none), (none)
    segs = taper_segments(maintenance(2.0), steps=4, over_s=2400, quantizer=q)
    assert [s.rate_ml_per_h for s in segs] == [2.0, 1.0]
    assert segs[1].duration_s == pytest.approx(1200, abs=3.6)  # one 0.001-mL volume step


def test_impossible_tapers_are_refused() -> None:
    q = FixedStepQuantizer()
    with pytest.raises(TaperError, match="until stopped"):
        open_ended = maintenance().model_copy(update={"volume_ml": None, "duration_s": None})
        taper_segments(open_ended, steps=3, over_s=1800, quantizer=q)
    with pytest.raises(TaperError, match="shorter than the maintenance"):
        taper_segments(maintenance(hours=0.5), steps=3, over_s=1800, quantizer=q)
    with pytest.raises(TaperError, match="steps must be >= 1"):
        taper_segments(maintenance(), steps=0, over_s=1800, quantizer=q)
    prime = Segment(phase=SegmentPhase.PRIME, rate_ml_per_h=60, volume_ml=0.5, duration_s=30)
    with pytest.raises(TaperError, match="only a maintenance"):
        taper_segments(prime, steps=3, over_s=10, quantizer=q)


@given(
    rate=st.floats(0.05, 500),
    hours=st.floats(0.2, 100),
    steps=st.integers(1, 10),
    over_fraction=st.floats(0.01, 0.99),
    rate_step=st.sampled_from([0.001, 0.01, 0.1, 1.0]),
)
# less than one volume step of maintenance before the taper begins (found in the suite)
@example(rate=0.25, hours=0.25, steps=1, over_fraction=0.984375, rate_step=0.001)
# nothing left at all: it used to come back as no segment, dropping the maintenance unsaid
@example(rate=0.0625, hours=0.25, steps=1, over_fraction=0.9375, rate_step=0.1)
def test_a_taper_never_gives_more_than_the_maintenance(
    rate: float, hours: float, steps: int, over_fraction: float, rate_step: float
) -> None:
    q = FixedStepQuantizer(volume_ml=0.001, rate_ml_per_h=rate_step)
    base = maintenance(rate, hours)
    assert base.duration_s is not None and base.volume_ml is not None
    over_s = base.duration_s * over_fraction
    main_ml = base.rate_ml_per_h * base.duration_s * (1 - over_fraction) / 3600
    try:
        segs = taper_segments(base, steps=steps, over_s=over_s, quantizer=q)
    except TaperError as exc:
        # refused only when nothing is left: under a volume step before the taper, and a first
        # step with no rate the pump has or under a volume step
        assert "leaves nothing" in str(exc) and "taper.over" in str(exc)
        assert main_ml < 0.001 + 1e-12
        first = rate * steps / (steps + 1)
        if first >= rate_step:
            first_rate = q.floor_rate_ml_per_h(first)
            assert first_rate * over_s / steps / 3600 < 0.001 + 1e-12
        return
    rates = [s.rate_ml_per_h for s in segs]
    # the maintenance goes first, at its rate, unless less than one pump step of it is left
    assert rates[0] == base.rate_ml_per_h or main_ml < 0.001 + 1e-12
    assert all(b < a for a, b in itertools.pairwise(rates))  # strictly down
    assert sum(s.volume_ml or 0 for s in segs) <= base.volume_ml + 1e-9
    assert sum(s.duration_s or 0 for s in segs) <= base.duration_s + 1e-6
    assert len(segs) <= steps + 1
