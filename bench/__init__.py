"""pumpctl benchmarks: `python -m bench` (or `make bench`) runs them all.

Speed is measured here, never by timed assertions in tests. Each benchmark module exposes
`NAME`, `run(quick=False) -> dict` (what it ran, on what, the ratio it is judged by, the target
and whether it was met) and `rows(result) -> list[Row]` for the Markdown table. Absolute times on
a shared machine are noisy: results are medians over repeated runs, and ratios are taken between
quantities measured in the same run.
"""

from __future__ import annotations

import math
import os
import platform
import resource
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = ["Row", "cpu_s", "machine_info", "median", "percentile"]


@dataclass(frozen=True)
class Row:
    """One line of the summary table."""

    benchmark: str
    metric: str
    value: str
    target: str
    met: bool | None  # None: not judged (informational or not measured)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0..100), nearest-rank: a value that was actually observed."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return float(ordered[rank - 1])


def cpu_s() -> float:
    """CPU seconds (user + system) used by this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    cpu_model = ""
    try:
        with Path("/proc/cpuinfo").open(encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "loadavg_at_start": load,
        "pumpctl": _version("pumpctl"),
        "nesp_lib": _version("nesp-lib"),
    }
