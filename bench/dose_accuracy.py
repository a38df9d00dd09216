"""Benchmark 5, dose accuracy: delivered vs prescribed volume per phase of the 5-day program.

"Delivered" is the emulation's ground truth (net plunger travel), read at each segment boundary;
the pump's own counter (what the supervisor reconciles against) is reported alongside. Judged by
the largest |delivered - prescribed| over the phases; target: no error beyond the pump's volume
resolution (0.001 mL for a 26.7 mm syringe), i.e. none attributable to the controller.
Reuses the run of the time-acceleration benchmark when it ran in the same process.
"""

from __future__ import annotations

from typing import Any

from bench import Row, time_acceleration
from bench.fiveday import FiveDayRun, five_day_plan, run_five_day
from pumpctl.families.newera import SPEC

NAME = "dose_accuracy"


def run(*, quick: bool = False) -> dict[str, Any]:
    plan = five_day_plan(maintenance_ml=0.4 if quick else 50.5)
    r: FiveDayRun | None = None if quick else time_acceleration.last_run
    if r is None:
        r = run_five_day(plan)
    quantizer = SPEC.quantizer(inner_diameter_mm=plan.container.inner_diameter_mm)
    resolution_ml = getattr(quantizer, "counter_resolution_ml", 0.001)
    phases: dict[str, Any] = {}
    for seg, res in zip(plan.segments, r.result.phases, strict=True):
        prescribed = seg.volume_ml or 0.0
        truth = r.truth_by_phase_ml[seg.phase.value]
        phases[seg.phase.value] = {
            "prescribed_ml": prescribed,
            "delivered_ml": round(truth, 9),
            "pump_counter_ml": res.delivered_ml,
            "error_ml": round(truth - prescribed, 9),
            "rate_at_end_ml_per_h": res.rate_ml_per_h,
        }
    max_error = max(abs(p["error_ml"]) for p in phases.values())
    total_prescribed = sum(s.volume_ml or 0.0 for s in plan.segments)
    return {
        "what": "per-phase ground-truth volume of the 5-day program (same run as "
        "time_acceleration unless quick)",
        "judged_by": "max |delivered - prescribed| over phases vs the pump's volume resolution",
        "quick": quick,
        "outcome": r.result.outcome.value,
        "phases": phases,
        "total_prescribed_ml": total_prescribed,
        "total_delivered_ml": round(r.truth_ml, 9),
        "volume_resolution_ml": resolution_ml,
        "max_error_ml": max_error,
        "max_error_beyond_resolution_ml": max(0.0, round(max_error - resolution_ml, 9)),
        "met": max_error <= resolution_ml + 1e-12 and r.result.outcome.value == "completed",
    }


def rows(res: dict[str, Any]) -> list[Row]:
    return [
        Row(
            NAME,
            f"max error per phase, delivered vs prescribed ({res['total_delivered_ml']:.3f} of "
            f"{res['total_prescribed_ml']:.3f} mL)",
            f"{res['max_error_ml']:.6f} mL",
            f"<= {res['volume_resolution_ml']:g} mL (pump resolution)",
            res["met"],
        )
    ]
