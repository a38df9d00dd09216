"""SR32: the IEC 60601-2-24 style accuracy protocol, run against the simulator.

The standard weighs what a pump delivers at one constant rate for 2 hours (sample interval S =
0.5 min) and reports:

- the flow-rate curve: the mean rate over each sample interval, mL/h, over the 120 min;
- the overall error A over the 2nd hour: 100 × (mean rate over 60..120 min − r) / r, in %;
- the trumpet curve: for observation windows of P = 2, 5, 11, 19 and 31 min sliding in steps of
  S over the 2nd hour, the largest and the smallest mean-rate error, in %.

Rate: the standard's intermediate rate, 5 mL/h for a syringe pump and 25 mL/h for a volumetric
(peristaltic) pump, unless the caller sets one. The syringe is a BD 60 mL (26.59 mm), the bore
the simulator loads by default, full, so 2 h at the chosen rate never reaches end of travel.
Tubing is Masterflex L/S 14 (0.21 mL/rev nominal, so 25 mL/h is about 2 rpm, inside the drive's
range), calibrated: the emulated tubing is set to the same displacement, so what remains is the
drive's own behaviour (the rollers' ripple shows in the short windows).

Here the "balance" is twofold: the emulation's ground truth (what the plunger pushed) and the
pump's own counter as the real driver reads it over the wire. The simulator's mechanics are
ideal, so on it the protocol checks the chain (driver units, rate encoding, counter resolution,
timing on the clock) rather than a mechanism; the computation functions are the same for a real
pump's balance readings (`AccuracyTrace` from any equally spaced cumulative volumes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pumpctl.clock import Clock, run_with_clock

__all__ = [
    "DEFAULT_RATES_ML_PER_H",
    "TRUMPET_WINDOWS_MIN",
    "AccuracyResult",
    "AccuracyTrace",
    "TrumpetPoint",
    "flow_rate_curve",
    "measure_accuracy",
    "overall_error_pct",
    "render_accuracy",
    "run_accuracy",
    "trumpet_curve",
    "window_errors_pct",
]

#: IEC 60601-2-24 observation windows, minutes
TRUMPET_WINDOWS_MIN: tuple[int, ...] = (2, 5, 11, 19, 31)
#: the standard's intermediate rates by container (syringe pump, volumetric pump), mL/h
DEFAULT_RATES_ML_PER_H = {"syringe": 5.0, "tubing": 25.0}
SAMPLE_INTERVAL_S = 30.0
DURATION_MIN = 120
#: the 2nd hour, where the errors are evaluated (the 1st is start-up)
ANALYSIS_MIN = (60, 120)
#: BD 60 mL plastic syringe bore, the simulator's default syringe
DEFAULT_SYRINGE_MM = 26.59
#: Masterflex L/S 14 tubing, mL per revolution (nominal; the emulated tubing is set to match)
DEFAULT_TUBING_ML_PER_REV = 0.21


@dataclass(frozen=True)
class AccuracyTrace:
    """Cumulative volumes sampled every `interval_s`: `volumes_ml[i]` at i × interval_s."""

    interval_s: float
    volumes_ml: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise ValueError(f"sample interval must be > 0 s, got {self.interval_s}")
        if len(self.volumes_ml) < 2:
            raise ValueError("an accuracy trace needs at least two samples")

    def index(self, minutes: float) -> int:
        """Sample index at `minutes` (must fall on a sample)."""
        i = minutes * 60.0 / self.interval_s
        if abs(i - round(i)) > 1e-9 or not 0 <= round(i) < len(self.volumes_ml):
            raise ValueError(f"{minutes} min is not a sample time of this trace")
        return round(i)


@dataclass(frozen=True)
class TrumpetPoint:
    window_min: float
    max_error_pct: float
    min_error_pct: float
    windows: int


def _mean_rate_ml_per_h(trace: AccuracyTrace, i: int, j: int) -> float:
    return (trace.volumes_ml[j] - trace.volumes_ml[i]) / ((j - i) * trace.interval_s / 3600.0)


def _error_pct(rate_ml_per_h: float, set_rate_ml_per_h: float) -> float:
    return 100.0 * (rate_ml_per_h - set_rate_ml_per_h) / set_rate_ml_per_h


def flow_rate_curve(trace: AccuracyTrace) -> list[tuple[float, float]]:
    """(end of interval, min; mean rate over the interval, mL/h) for every sample interval."""
    return [
        ((i + 1) * trace.interval_s / 60.0, _mean_rate_ml_per_h(trace, i, i + 1))
        for i in range(len(trace.volumes_ml) - 1)
    ]


def overall_error_pct(
    trace: AccuracyTrace, set_rate_ml_per_h: float, analysis_min: tuple[float, float] = ANALYSIS_MIN
) -> float:
    """A: error of the mean rate over the analysis period (the 2nd hour), %."""
    i, j = trace.index(analysis_min[0]), trace.index(analysis_min[1])
    return _error_pct(_mean_rate_ml_per_h(trace, i, j), set_rate_ml_per_h)


def window_errors_pct(
    trace: AccuracyTrace,
    set_rate_ml_per_h: float,
    window_min: float,
    analysis_min: tuple[float, float] = ANALYSIS_MIN,
) -> list[float]:
    """Mean-rate error of every `window_min` window sliding by one sample in the analysis period.

    There are (analysis length − P) / S + 1 of them (e.g. 117 for P = 2 min, S = 0.5 min)."""
    first, last = trace.index(analysis_min[0]), trace.index(analysis_min[1])
    width = window_min * 60.0 / trace.interval_s
    if abs(width - round(width)) > 1e-9 or round(width) < 1:
        raise ValueError(f"window {window_min} min is not a multiple of the sample interval")
    n = round(width)
    if first + n > last:
        raise ValueError(f"window {window_min} min is longer than the analysis period")
    return [
        _error_pct(_mean_rate_ml_per_h(trace, i, i + n), set_rate_ml_per_h)
        for i in range(first, last - n + 1)
    ]


def trumpet_curve(
    trace: AccuracyTrace,
    set_rate_ml_per_h: float,
    windows_min: Sequence[float] = TRUMPET_WINDOWS_MIN,
    analysis_min: tuple[float, float] = ANALYSIS_MIN,
) -> list[TrumpetPoint]:
    """Largest and smallest mean-rate error per observation window (the trumpet), %."""
    points = []
    for p in windows_min:
        errors = window_errors_pct(trace, set_rate_ml_per_h, p, analysis_min)
        points.append(TrumpetPoint(p, max(errors), min(errors), len(errors)))
    return points


@dataclass(frozen=True)
class AccuracyResult:
    """One protocol run: both traces and the verdict against the pump's stated accuracy."""

    model: str
    set_rate_ml_per_h: float
    stated_accuracy_pct: float
    container: str
    inner_diameter_mm: float | None
    truth: AccuracyTrace
    counter: AccuracyTrace

    @property
    def truth_error_pct(self) -> float:
        return overall_error_pct(self.truth, self.set_rate_ml_per_h)

    @property
    def counter_error_pct(self) -> float:
        return overall_error_pct(self.counter, self.set_rate_ml_per_h)

    @property
    def passed(self) -> bool:
        """SR32: the 2nd-hour rate error of both traces within ± the stated accuracy."""
        limit = self.stated_accuracy_pct + 1e-9
        return abs(self.truth_error_pct) <= limit and abs(self.counter_error_pct) <= limit

    def summary_lines(self) -> list[str]:
        lines = [
            f"{self.model}: {self.set_rate_ml_per_h:g} mL/h for {DURATION_MIN} min, "
            f"sampled every {self.truth.interval_s:g} s (IEC 60601-2-24 style, simulator)",
            f"2nd-hour rate error: plunger {_pct(self.truth_error_pct)} %, "
            f"pump counter {_pct(self.counter_error_pct)} % "
            f"(stated accuracy ±{self.stated_accuracy_pct:g} %): "
            + ("PASS" if self.passed else "FAIL"),
            f"{'window':>8}  {'plunger max/min %':>20}  {'counter max/min %':>20}",
        ]
        truth = trumpet_curve(self.truth, self.set_rate_ml_per_h)
        counter = trumpet_curve(self.counter, self.set_rate_ml_per_h)
        for t, c in zip(truth, counter, strict=True):
            lines.append(
                f"{t.window_min:>6g} min  {_pct(t.max_error_pct):>9} / {_pct(t.min_error_pct):<9}"
                f"  {_pct(c.max_error_pct):>9} / {_pct(c.min_error_pct)}"
            )
        return lines


def _pct(value: float) -> str:
    """`+0.200`; float noise below the printed precision shows as +0.000, never -0.000."""
    return f"{value + 0.0 if abs(value) >= 5e-4 else 0.0:+.3f}"


# ----------------------------------------------------------------------------- the run


async def run_accuracy(
    clock: Clock,
    model: str = "ne1000",
    rate_ml_per_h: float | None = None,
    *,
    inner_diameter_mm: float = DEFAULT_SYRINGE_MM,
    ml_per_rev: float = DEFAULT_TUBING_ML_PER_REV,
    interval_s: float = SAMPLE_INTERVAL_S,
    duration_min: float = DURATION_MIN,
) -> AccuracyResult:
    """Run the real driver of `model` against its in-memory emulation at a constant rate and
    sample both volumes every `interval_s` clock seconds from the start."""
    from pumpctl.drivers.base import Direction
    from pumpctl.drivers.registry import default_address, driver_class
    from pumpctl.families import family
    from pumpctl.simulator.endpoints import InMemoryTransport
    from pumpctl.simulator.server import build_emulation

    address = default_address(model)
    emulation = build_emulation(model, [address])
    transport = InMemoryTransport(emulation, clock, name=f"sim://{model}")
    driver = driver_class(model)(transport, address=address)
    async with driver:
        await driver.identify()
        await driver.stop()
        container = family(model).container
        if container == "syringe":
            await driver.configure_syringe(inner_diameter_mm)
        else:
            # calibrated tubing: the true displacement is the declared one
            emulation.set_ml_per_rev(address, ml_per_rev)
            await driver.configure_tubing(ml_per_rev)
        rate = rate_ml_per_h if rate_ml_per_h is not None else DEFAULT_RATES_ML_PER_H[container]
        await driver.clear_counters()
        await driver.set_rate(rate, Direction.INFUSE)
        await driver.set_target_volume(None)
        await driver.start()
        start = clock.now()
        base_truth = emulation.snapshot()[address].delivered_ml
        truth: list[float] = []
        counter: list[float] = []
        samples = round(duration_min * 60.0 / interval_s)
        for k in range(samples + 1):
            await clock.sleep(max(0.0, start + k * interval_s - clock.now()))
            counted = await driver.read_delivered()  # syncs the emulation to now
            truth.append(emulation.snapshot()[address].delivered_ml - base_truth)
            counter.append(counted.net_ml)
        await driver.stop()
        accuracy = driver.capabilities.accuracy_percent
    return AccuracyResult(
        model=model,
        set_rate_ml_per_h=rate,
        stated_accuracy_pct=accuracy,
        container=container,
        inner_diameter_mm=inner_diameter_mm if container == "syringe" else None,
        truth=AccuracyTrace(interval_s, tuple(truth)),
        counter=AccuracyTrace(interval_s, tuple(counter)),
    )


def measure_accuracy(model: str = "ne1000", rate_ml_per_h: float | None = None) -> AccuracyResult:
    """`run_accuracy` on a virtual clock: two simulated hours take well under a second."""

    async def main(clock: Clock) -> AccuracyResult:
        return await run_accuracy(clock, model, rate_ml_per_h)

    return run_with_clock(main, virtual=True)


# ----------------------------------------------------------------------------- drawing


def render_accuracy(result: AccuracyResult, out: Path) -> Path:
    """Trumpet curve and flow-rate curve, both traces, as one PNG (or SVG by suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise ValueError(f"accuracy plot format {out.suffix!r} not supported: use .png or .svg")
    plt.rcParams["svg.hashsalt"] = "pumpctl"
    fig, (ax_flow, ax_trumpet) = plt.subplots(2, 1, figsize=(10, 8.5))
    rate = result.set_rate_ml_per_h
    sources = (
        ("plunger (simulator)", result.truth, "#08519c"),
        ("pump counter", result.counter, "#e6550d"),
    )
    _draw_flow(ax_flow, rate, sources)
    _draw_trumpet(ax_trumpet, result, sources)
    fig.suptitle(
        f"{result.model} at {rate:g} mL/h"
        + (f", {result.inner_diameter_mm:g} mm syringe" if result.inner_diameter_mm else "")
        + f" — SR32 {'PASS' if result.passed else 'FAIL'}"
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata: dict[str, Any] = {"Date": None} if fmt == "svg" else {"Software": "pumpctl"}
    try:
        fig.savefig(out, format=fmt, dpi=110, metadata=metadata)
    finally:
        plt.close(fig)
    return out


_Sources = tuple[tuple[str, AccuracyTrace, str], ...]  # (label, trace, colour)


def _draw_flow(ax: Any, rate: float, sources: _Sources) -> None:
    """The flow-rate curve of every trace around the set rate, the analysis period shaded."""
    for label, trace, colour in sources:
        curve = flow_rate_curve(trace)
        ax.plot([t for t, _ in curve], [q for _, q in curve], color=colour, lw=1, label=label)
    ax.axhline(rate, color="#636363", ls=":", label=f"set rate {rate:g} mL/h")
    ax.axvspan(*ANALYSIS_MIN, color="#eeeeee", zorder=0, label="analysis period (2nd hour)")
    ax.set_xlabel("time (min)")
    ax.set_ylabel("flow rate over each 30 s interval (mL/h)")
    ax.set_xlim(0, DURATION_MIN)
    spread = max(abs(q - rate) for _, tr, _ in sources for _, q in flow_rate_curve(tr))
    ax.set_ylim(rate - max(spread, rate * 0.05) * 1.3, rate + max(spread, rate * 0.05) * 1.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    ax.set_title("flow-rate curve")


def _draw_trumpet(ax: Any, result: AccuracyResult, sources: _Sources) -> None:
    """Ep(max) and Ep(min) per observation window for every trace, and the stated accuracy."""
    for label, trace, colour in sources:
        points = trumpet_curve(trace, result.set_rate_ml_per_h)
        windows = [p.window_min for p in points]
        ax.plot(
            windows, [p.max_error_pct for p in points], "o-", color=colour, label=f"{label} Ep(max)"
        )
        ax.plot(
            windows,
            [p.min_error_pct for p in points],
            "s--",
            color=colour,
            label=f"{label} Ep(min)",
        )
    limit = result.stated_accuracy_pct
    ax.axhline(0, color="#636363", lw=0.8)
    ax.axhline(limit, color="#d62728", ls=":", lw=1, label=f"stated accuracy ±{limit:g} %")
    ax.axhline(-limit, color="#d62728", ls=":", lw=1)
    ax.axhline(result.truth_error_pct, color="#08519c", lw=0.8, alpha=0.5)
    ax.set_xticks(list(TRUMPET_WINDOWS_MIN))
    ax.set_xlabel("observation window P (min), 2nd hour")
    ax.set_ylabel("mean-rate error (%)")
    ax.legend(fontsize=8, loc="upper right", ncol=2)
    ax.grid(alpha=0.3)
    ax.set_title(
        f"trumpet curve — A = {_pct(result.truth_error_pct)} % (plunger), "
        f"{_pct(result.counter_error_pct)} % (counter)"
    )
