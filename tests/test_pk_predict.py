"""Predicting a compiled plan (and a reported-volume history) against closed-form superposition."""

from __future__ import annotations

import itertools

import pytest

from pumpctl.dosing.check import check_program
from pumpctl.dosing.pk.history import DeliveryTracker, Infusion, infusions_from_volumes
from pumpctl.dosing.pk.models import UnknownModel, get_model
from pumpctl.dosing.pk.predict import infusions_from_plan, predict_infusions, predict_plan
from pumpctl.dosing.pk.solver import Kinetics
from pumpctl.dosing.plan import Plan, SegmentPhase
from pumpctl.dosing.program import example_path

from .conftest import make_plan, segment
from .test_pk_solver import closed_form


def acute_plan() -> Plan:
    plan = check_program(example_path("acute-pain.yaml")).plan
    assert plan is not None
    return plan


def reference(k: Kinetics, pieces: list[Infusion], t_s: float) -> tuple[float, float]:
    """Superposition of closed forms: each piece = an infusion from its start minus the same
    infusion from its end (the model is linear and time-invariant)."""
    cp = ce = 0.0
    for p in pieces:
        r = p.rate_mg_per_h / 60.0
        for start, sign in ((p.start_s, 1.0), (p.end_s, -1.0)):
            if t_s > start:
                c = closed_form(k, 0.0, r, (t_s - start) / 60.0)
                cp, ce = cp + sign * c[0], ce + sign * c[1]
    return cp, ce


def test_acute_pain_schedule_excludes_the_prime() -> None:
    """Prime 0.5 mL at 60 mL/h takes 30 s and gives no drug; loading 73.5 mL/h × 2 mg/mL for
    10 min; maintenance 7 mL/h × 2 mg/mL for 4 h."""
    pieces, end_s, notes = infusions_from_plan(acute_plan())
    assert pieces == [Infusion(30.0, 600.0, 147.0), Infusion(630.0, 14400.0, 14.0)]
    assert end_s == 15030.0 and notes == []
    assert sum(p.drug_mg for p in pieces) == pytest.approx(24.5 + 56.0)


def test_acute_pain_timeline_matches_the_closed_form() -> None:
    plan = acute_plan()
    pred = predict_plan(plan)
    assert pred.pk_model == "domino"
    k = pred.kinetics
    assert pred.t_s[0] == 0.0 and pred.t_s[-1] == 15030.0
    assert all(b - a == 10.0 for a, b in zip(pred.t_s, pred.t_s[1:], strict=False))
    assert max(pred.plasma_ug_per_ml[:4]) == 0.0  # nothing before the loading starts at 30 s
    pieces = list(pred.infusions)
    for i in range(0, len(pred.t_s), 37):
        ref_cp, ref_ce = reference(k, pieces, pred.t_s[i])
        assert pred.plasma_ug_per_ml[i] == pytest.approx(ref_cp, rel=1e-8, abs=1e-12)
        assert pred.effect_ug_per_ml[i] == pytest.approx(ref_ce, rel=1e-8, abs=1e-12)
    end_cp, end_ce = reference(k, pieces, 15030.0)
    assert pred.end_plasma_ug_per_ml == pytest.approx(end_cp, rel=1e-8)
    assert pred.end_effect_ug_per_ml == pytest.approx(end_ce, rel=1e-8)


def test_peaks_are_found_between_samples() -> None:
    pred = predict_plan(acute_plan())
    k = pred.kinetics
    pieces = list(pred.infusions)
    # plasma peaks when the fast loading stops (t = 630 s); the effect site a little later
    assert pred.peak_plasma.t_s == 630.0
    assert pred.peak_plasma.value_ug_per_ml == pytest.approx(reference(k, pieces, 630.0)[0])
    assert 630.0 < pred.peak_effect.t_s < 660.0
    t = pred.peak_effect.t_s
    peak = reference(k, pieces, t)[1]
    assert pred.peak_effect.value_ug_per_ml == pytest.approx(peak, rel=1e-9)
    assert peak >= max(reference(k, pieces, t + d)[1] for d in (-1.0, -0.5, 0.5, 1.0))
    assert peak >= max(pred.effect_ug_per_ml)


def test_a_bolus_shows_its_plasma_peak_and_a_delayed_effect_peak() -> None:
    k = get_model("domino").kinetics(70.0, t_peak_s=60.0)
    pred = predict_infusions([Infusion(0.0, 5.0, 0.35 * 70 / 5 * 3600)], k, t_end_s=600.0)
    assert pred.peak_plasma.t_s == 5.0
    assert pred.peak_effect.t_s == pytest.approx(60.0 + 2.5, abs=3.0)  # about t_peak after
    assert pred.peak_effect.value_ug_per_ml < pred.peak_plasma.value_ug_per_ml


def test_overlapping_pieces_add() -> None:
    """A clinician bolus on top of a running infusion is one more piece (superposition)."""
    k = get_model("domino").kinetics(70.0)
    base = [Infusion(0.0, 3600.0, 14.0)]
    bolus = [Infusion(1200.0, 60.0, 7.0 * 60)]
    both = predict_infusions(base + bolus, k, t_end_s=3600.0)
    a = predict_infusions(base, k, t_end_s=3600.0)
    b = predict_infusions(bolus, k, t_end_s=3600.0)
    for i in range(len(both.t_s)):
        assert both.plasma_ug_per_ml[i] == pytest.approx(
            a.plasma_ug_per_ml[i] + b.plasma_ug_per_ml[i], rel=1e-9, abs=1e-15
        )


def test_pediatric_plans_use_herd_and_population_warnings() -> None:
    plan = make_plan(segment(SegmentPhase.MAINTENANCE, 4.0, 8.0)).model_copy(
        update={
            "drug": "ketamine",
            "concentration_mg_per_ml": 1.0,
            "weight_kg": 20.0,
            "care_area": "pediatric",
        }
    )
    pred = predict_plan(plan)
    assert pred.pk_model == "herd2007" and pred.warnings == ()
    assert any("published T½keo 11 s" in n for n in pred.notes)
    explicit = predict_plan(plan, "domino")
    assert explicit.pk_model == "domino"
    assert any("fitted on adult patients" in w for w in explicit.warnings)
    canine = plan.model_copy(update={"care_area": "canine"})
    with pytest.raises(UnknownModel, match="canine"):
        predict_plan(canine)
    with pytest.raises(ValueError, match="no patient weight"):
        predict_plan(plan.model_copy(update={"weight_kg": None}))


def test_open_ended_segments_are_cut_and_said_so() -> None:
    plan = make_plan(
        segment(SegmentPhase.PRIME, 60.0, 0.5), segment(SegmentPhase.MAINTENANCE, 7.0, None)
    ).model_copy(update={"drug": "ketamine", "concentration_mg_per_ml": 2.0, "weight_kg": 70.0})
    pred = predict_plan(plan, open_ended_s=7200.0)
    assert pred.infusions == (Infusion(30.0, 7200.0, 14.0),)
    assert pred.end_t_s == 7230.0
    assert any("until stopped: predicted for its first 2 h" in n for n in pred.notes)


def test_after_extends_with_the_pump_stopped() -> None:
    pred = predict_plan(acute_plan(), after_s=3600.0)
    assert pred.end_t_s == 15030.0 + 3600.0
    k, pieces = pred.kinetics, list(pred.infusions)
    assert pred.end_plasma_ug_per_ml == pytest.approx(reference(k, pieces, pred.end_t_s)[0])
    assert pred.end_plasma_ug_per_ml < pred.plasma_ug_per_ml[1503]


def test_summary_line_for_check() -> None:
    pred = predict_plan(acute_plan())
    line = pred.summary()
    plasma, effect = pred.peak_plasma.value_ug_per_ml, pred.peak_effect.value_ug_per_ml
    assert line.startswith(f"predicted  peak plasma {plasma:.3g} µg/mL at 0:10:30, effect site")
    assert f"effect site {effect:.3g} µg/mL at 0:10:3" in line
    assert "(domino; population prediction, not a measured concentration)" in line


def test_json_has_exactly_the_documented_keys() -> None:
    out = predict_plan(acute_plan()).to_json()
    assert list(out) == ["pk_model", "t_s", "plasma_ug_per_ml", "effect_ug_per_ml", "infusions"]
    assert len(out["t_s"]) == len(out["plasma_ug_per_ml"]) == len(out["effect_ug_per_ml"])
    assert out["infusions"][0] == {"start_s": 30.0, "duration_s": 600.0, "rate_mg_per_h": 147.0}


# -- from what the pump reports ------------------------------------------------------------------


def test_reported_volumes_give_the_same_prediction_as_the_plan() -> None:
    """Readings every 10 s of a pump that ran the plan exactly rebuild the same curve."""
    plan = acute_plan()
    pred = predict_plan(plan)
    pieces = list(pred.infusions)
    readings, delivered_ml = [], 0.0
    for t in range(0, 2000, 10):
        readings.append((float(t), delivered_ml))
        lo, hi = float(t), float(t + 10)
        delivered_ml += sum(
            p.rate_mg_per_h / 2.0 * max(0.0, min(hi, p.end_s) - max(lo, p.start_s)) / 3600
            for p in pieces
        )
    history = infusions_from_volumes(readings, 2.0)
    rebuilt = predict_infusions(history, pred.kinetics, t_end_s=1990.0)
    n = len(rebuilt.t_s)
    assert rebuilt.plasma_ug_per_ml == pytest.approx(pred.plasma_ug_per_ml[:n], rel=1e-9)
    tracker = DeliveryTracker(pred.kinetics, 2.0)
    for (_t0, v0), (t1, v1) in itertools.pairwise(readings):
        tracker.add_delivered(t1, v1 - v0)
    assert tracker.plasma_ug_per_ml == pytest.approx(rebuilt.end_plasma_ug_per_ml, rel=1e-12)


def test_a_counter_that_goes_back_is_refused() -> None:
    with pytest.raises(ValueError, match="went back"):
        infusions_from_volumes([(0.0, 1.0), (10.0, 0.5)], 2.0)
    with pytest.raises(ValueError, match="out of order"):
        infusions_from_volumes([(10.0, 1.0), (5.0, 1.5)], 2.0)
    k = get_model("domino").kinetics(70.0)
    tracker = DeliveryTracker(k, 2.0)
    tracker.add_delivered(10.0, 0.1)
    with pytest.raises(ValueError, match="must not go back"):
        tracker.add_delivered(5.0, 0.1)
    # a volume reported with no time passing is a bolus: drug arrives, Ce does not jump
    before = tracker.state
    tracker.add_delivered(10.0, 0.5)
    assert tracker.state.a1_mg == pytest.approx(before.a1_mg + 1.0)
    assert tracker.state.ce_ug_per_ml == before.ce_ug_per_ml
