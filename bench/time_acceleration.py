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
from pumpctl.infusion.supervisor import SupervisorConfig

NAME = "time_acceleration"
TARGET_SPEEDUP = 86_400.0
TARGET_WALL_S = 5.0
DAY_S = 86_400.0

#: the last full run, reused by the dose-accuracy benchmark (same program, same process)
last_run: FiveDayRun | None = None


def run(*, quick: bool = False) -> dict[str, Any]:
    """One run of the whole program (about a minute today); the judged speed-up is the median
    over its five simulated days, each timed on its own, so a burst of load from other
    processes on a shared machine moves one sample, not the result. CPU time is reported too."""
    global last_run
    plan = five_day_plan(maintenance_ml=0.4 if quick else 50.5)
    r = run_five_day(plan)
    if not quick:
        last_run = r
    per_day = [DAY_S / w for w in r.wall_s_per_day]
    whole = r.simulated_s / r.wall_s
    speedup = median(per_day) if per_day else whole
    return {
        "what": "5-day program (prime, loading, maintenance titrated every 12 h, daily 10-min "
        "pause) through Supervisor + NE1000Driver + NE1000Emulation, InMemoryTransport, "
        "virtual clock, INFO logging without console",
        "judged_by": "speedup = simulated s / wall s, median over the simulated days of one run",
        "quick": quick,
        "poll_interval_s": SupervisorConfig().poll_interval_s,
        "outcome": r.result.outcome.value,
        "simulated_s": r.simulated_s,
        "simulated_h": r.simulated_s / 3600.0,
        "wall_s": r.wall_s,
        "cpu_s": r.cpu_used_s,
        "speedup": speedup,
        "speedup_per_day": per_day,
        "speedup_whole_run": whole,
        "speedup_cpu": r.simulated_s / r.cpu_used_s if r.cpu_used_s > 0 else None,
        "status_polls": r.polls,
        "wall_us_per_poll": r.simulated_s / speedup / r.polls * 1e6 if r.polls else None,
        "cpu_us_per_poll": r.cpu_used_s / r.polls * 1e6 if r.polls else None,
        "titrations": r.operator.titrations,
        "pauses": r.operator.pauses,
        "target_speedup": TARGET_SPEEDUP,
        "target_wall_s": TARGET_WALL_S,
        "met": speedup >= TARGET_SPEEDUP,
        "wall_for_5_days_s": 5 * DAY_S / speedup,
    }


def rows(res: dict[str, Any]) -> list[Row]:
    days = len(res["speedup_per_day"])
    return [
        Row(
            NAME,
            f"speed-up, {res['simulated_h']:.1f} h simulated (median of {days} days)",
            f"{res['speedup']:,.0f}x (5 days in {res['wall_for_5_days_s']:.1f} s)",
            f">= {TARGET_SPEEDUP:,.0f}x (<= {TARGET_WALL_S:g} s)",
            res["met"],
        ),
        Row(
            NAME,
            "per status+volume poll: wall / CPU",
            f"{res['wall_us_per_poll']:.1f} / {res['cpu_us_per_poll']:.1f} µs",
            "",
            None,
        ),
    ]
