"""Benchmark 7, the 5-day demo: `pumpctl demo --program examples/crps-inpatient.yaml`, wall time.

The command as a user types it, in its own process, output piped (plain progress lines): 5 days
of ketamine titrated by the program, 20 syringe changes confirmed by the simulated nurse, one
scripted pause, through the real supervisor, NE-1000 driver and emulation on the in-memory
transport and the virtual clock, polling once a simulated second. Judged by the demo's own
`wall time` line (the run, without interpreter start-up and imports), the minimum over rounds:
on a shared machine other processes only ever add time. Target <= 10 s. The whole command's
wall time and its CPU time are reported beside it.
"""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import Row, median
from pumpctl.clock import wall_monotonic

NAME = "demo_5day"
TARGET_WALL_S = 10.0
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PROGRAM = "crps-inpatient.yaml"
_WALL = re.compile(r"wall time ([\d.]+) s for ([\d.]+) h simulated")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _short_copy(folder: Path, hours: float) -> Path:
    """The same program cut to `hours` of maintenance (the smoke test's size), with its library."""
    shutil.copytree(EXAMPLES / "library", folder / "library")
    text = (EXAMPLES / PROGRAM).read_text(encoding="utf-8")
    if "duration: 5 d" not in text:
        raise RuntimeError(f"{PROGRAM} no longer runs 5 days: update the benchmark")
    path = folder / PROGRAM
    path.write_text(text.replace("duration: 5 d", f"duration: {hours:g} h"), encoding="utf-8")
    return path


def _one(program: Path) -> dict[str, float]:
    argv = [sys.executable, "-m", "pumpctl", "demo", "--program", str(program)]
    cpu0, t0 = _children_cpu_s(), wall_monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall, cpu = wall_monotonic() - t0, _children_cpu_s() - cpu0
    m = _WALL.search(proc.stdout)
    if proc.returncode != 0 or m is None:
        raise RuntimeError(f"demo exited {proc.returncode}: {proc.stdout[-400:]}{proc.stderr}")
    return {
        "demo_wall_s": float(m[1]),
        "simulated_h": float(m[2]),
        "process_wall_s": wall,
        "process_cpu_s": cpu,
    }


def run(*, quick: bool = False) -> dict[str, Any]:
    rounds = 1 if quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        program = _short_copy(Path(tmp), 2.0) if quick else EXAMPLES / PROGRAM
        runs = [_one(program) for _ in range(rounds)]
    walls = [r["demo_wall_s"] for r in runs]
    best = min(walls)
    return {
        "what": f"`pumpctl demo --program examples/{PROGRAM}` (5 days, titrated, 20 syringe "
        "changes, one pause; NE-1000 emulation in memory, virtual clock, 1 s polls), own "
        "process, output piped",
        "judged_by": "the demo's own wall time line, minimum over rounds",
        "quick": quick,
        "rounds": rounds,
        "runs": runs,
        "simulated_h": runs[0]["simulated_h"],
        "demo_wall_s": best,
        "demo_wall_s_median": median(walls),
        "process_wall_s": min(r["process_wall_s"] for r in runs),
        "process_cpu_s": min(r["process_cpu_s"] for r in runs),
        "speedup": runs[0]["simulated_h"] * 3600.0 / best if best > 0 else None,
        "target_wall_s": TARGET_WALL_S,
        "met": None if quick else best <= TARGET_WALL_S,  # 2 h say nothing of 5 days
    }


def rows(res: dict[str, Any]) -> list[Row]:
    return [
        Row(
            NAME,
            f"wall time, {res['simulated_h']:.1f} h simulated (min of {res['rounds']})",
            f"{res['demo_wall_s']:.1f} s (median {res['demo_wall_s_median']:.1f} s; whole "
            f"command {res['process_wall_s']:.1f} s, {res['process_cpu_s']:.1f} s CPU)",
            f"<= {TARGET_WALL_S:g} s",
            res["met"],
        )
    ]
