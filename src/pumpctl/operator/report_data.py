"""What a report shows, as data: the series, the phase table and the events of one run.

`pumpctl.operator.report` builds it from a journal; `pumpctl.operator.report_draw` draws it.
Times are the supervisor's clock seconds since the run's first event.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "ROLLING_WINDOWS_S",
    "Alarm",
    "ContainerChange",
    "Pause",
    "PhaseRow",
    "ReportData",
    "RollingTotal",
    "Stop",
    "Titration",
]

#: rolling windows of SR08: label -> seconds
ROLLING_WINDOWS_S: dict[str, float] = {"1h": 3600.0, "4h": 4 * 3600.0, "24h": 24 * 3600.0}


@dataclass(frozen=True)
class PhaseRow:
    """One plan segment as planned and as run. `started_s` None: it never ran; `ended_s` None:
    still running when the journal ends (a stop or an alarm ends the segment)."""

    phase: str
    planned_ml: float | None
    delivered_ml: float
    planned_rate_ml_per_h: float
    dose_rate: float | None
    dose_rate_unit: str | None
    started_s: float | None
    ended_s: float | None

    @property
    def difference_ml(self) -> float | None:
        return None if self.planned_ml is None else self.delivered_ml - self.planned_ml


@dataclass(frozen=True)
class Titration:
    t_s: float
    old_ml_per_h: float
    new_ml_per_h: float
    accepted: bool
    who: str
    reason: str


@dataclass(frozen=True)
class Pause:
    started_s: float
    ended_s: float | None  # None: never resumed (stopped, alarm or the run died paused)
    who: str
    reason: str


@dataclass(frozen=True)
class Alarm:
    t_s: float
    reason: str
    detail: str


@dataclass(frozen=True)
class Stop:
    """A stop someone asked for (`ctl stop`, Ctrl-C), as opposed to an alarm's."""

    t_s: float
    who: str
    reason: str


@dataclass(frozen=True)
class ContainerChange:
    """The pump stood at the end of its syringe (or reservoir) from `needed_s` until the
    operator confirmed a new one at `changed_s` (None: never confirmed)."""

    needed_s: float
    changed_s: float | None
    kind: str
    who: str


@dataclass(frozen=True)
class RollingTotal:
    """Largest volume delivered in any window of this length, and in the last one (SR08)."""

    window: str
    window_s: float
    max_ml: float
    max_window_end_s: float
    last_ml: float
    limit_ml: float | None

    @property
    def within_limit(self) -> bool | None:
        return None if self.limit_ml is None else self.max_ml <= self.limit_ml + 1e-9


@dataclass(frozen=True)
class ReportData:
    """Everything drawn and tabulated; times in clock seconds since the run's first event."""

    run_id: str
    program: str
    pump_model: str
    port: str
    status: str
    started_wall: float
    duration_s: float
    drug: str | None
    concentration_mg_per_ml: float | None
    weight_kg: float | None
    #: unit of `dose_per_ml` x mL/h (e.g. "mg/kg/h"); None when the plan has no concentration
    dose_rate_unit: str | None
    #: mL/h -> dose rate factor (dose_rate = rate_ml_per_h x dose_per_ml)
    dose_per_ml: float | None
    #: step function: rate from each point on, until the next (last point: end of the run)
    rate_steps: tuple[tuple[float, float], ...]
    #: cumulative delivered volume (pump counters, summed over phases), piecewise linear
    delivered: tuple[tuple[float, float], ...]
    #: cumulative volume of the plan run back to back at planned rates from the first segment
    planned: tuple[tuple[float, float], ...]
    phases: tuple[PhaseRow, ...]
    pauses: tuple[Pause, ...]
    titrations: tuple[Titration, ...]
    alarms: tuple[Alarm, ...]
    rolling: tuple[RollingTotal, ...]
    warnings: tuple[str, ...] = field(default=())
    stops: tuple[Stop, ...] = field(default=())
    container_changes: tuple[ContainerChange, ...] = field(default=())
    #: journal events that match no model of this version, left out of the series (why, each)
    skipped_events: tuple[str, ...] = field(default=())
    #: (t, plasma, effect site) µg/mL as the supervisor predicted them from the pump's reported
    #: volumes (population model, not measured); empty when the run had no PK model
    predicted: tuple[tuple[float, float, float], ...] = field(default=())
    pk_model: str | None = None

    @property
    def delivered_ml(self) -> float:
        return self.delivered[-1][1] if self.delivered else 0.0

    @property
    def planned_ml(self) -> float | None:
        vols = [p.planned_ml for p in self.phases]
        return None if any(v is None for v in vols) else sum(v for v in vols if v is not None)

    def dose_rate(self, rate_ml_per_h: float) -> float | None:
        return None if self.dose_per_ml is None else rate_ml_per_h * self.dose_per_ml
