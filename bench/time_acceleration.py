"""Benchmark 1, time acceleration: a 5-day program on the virtual clock, wall time vs simulated.

Runs `bench.fiveday` (prime, loading, maintenance titrated every 12 h, a 10-minute pause a day)
through the real supervisor and NE-1000 driver against the NE-1000 emulation over the in-memory
transport, polling at the production interval (`SupervisorConfig().poll_interval_s`), logging
configured like the CLI (INFO, no console). Judged by speed-up = simulated s / wall s (median
over runs); target >= 86,400x (5 days in <= 5 s).
"""

from __future__ import annotations

from typing import Any

from bench import Row, median
from bench.fiveday import FiveDayRun, five_day_plan, run_five_day
from pumpctl.supervisor import SupervisorConfig

NAME = "time_acceleration"
TARGET_SPEEDUP = 86_400.0
TARGET_WALL_S = 5.0
#: stop repeating once this much wall time was spent (the full program is slow today)
BUDGET_WALL_S = 60.0

#: the last full run, reused by the dose-accuracy benchmark (same program, same process)
last_run: FiveDayRun | None = None


def run(*, quick: bool = False, repeats: int = 3) -> dict[str, Any]:
    global last_run
    plan = five_day_plan(maintenance_ml=0.4 if quick else 50.5)
    runs: list[FiveDayRun] = []
    spent = 0.0
    for _ in range(1 if quick else repeats):
        r = run_five_day(plan)
        runs.append(r)
        spent += r.wall_s
        if spent > BUDGET_WALL_S:
            break
    if not quick:
        last_run = runs[-1]
    walls = [r.wall_s for r in runs]
    simulated_s = runs[-1].simulated_s
    wall_s = median(walls)
    speedup = simulated_s / wall_s
    polls = runs[-1].polls
    return {
        "what": "5-day program (prime, loading, maintenance titrated every 12 h, daily 10-min "
        "pause) through Supervisor + NE1000Driver + NE1000Emulation, InMemoryTransport, "
        "virtual clock, INFO logging without console",
        "judged_by": "speedup = simulated seconds / median wall seconds",
        "quick": quick,
        "poll_interval_s": SupervisorConfig().poll_interval_s,
        "outcome": runs[-1].result.outcome.value,
        "simulated_s": simulated_s,
        "simulated_h": simulated_s / 3600.0,
        "runs": len(runs),
        "wall_s_each": walls,
        "wall_s_median": wall_s,
        "speedup": speedup,
        "status_polls": polls,
        "wall_us_per_poll": wall_s / polls * 1e6 if polls else None,
        "titrations": runs[-1].operator.titrations,
        "pauses": runs[-1].operator.pauses,
        "target_speedup": TARGET_SPEEDUP,
        "target_wall_s": TARGET_WALL_S,
        "met": speedup >= TARGET_SPEEDUP,
        "wall_for_5_days_s": 5 * 86400.0 / speedup,
    }


def rows(res: dict[str, Any]) -> list[Row]:
    return [
        Row(
            NAME,
            f"speed-up ({res['simulated_h']:.1f} h simulated, median of {res['runs']})",
            f"{res['speedup']:,.0f}x ({res['wall_s_median']:.2f} s wall)",
            f">= {TARGET_SPEEDUP:,.0f}x (<= {TARGET_WALL_S:g} s)",
            res["met"],
        ),
        Row(NAME, "wall per status+volume poll", f"{res['wall_us_per_poll']:.1f} µs", "", None),
    ]
