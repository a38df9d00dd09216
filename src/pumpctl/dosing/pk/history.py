"""Infusion histories: what reached the patient, as constant-rate pieces, and the state it leaves.

A prediction needs only the drug schedule, not where it came from: the compiled plan (what the
pump will run) or the pump's own delivered-volume counter (what it did run). The supervisor
builds the second with `DeliveryTracker` from each poll's reported volume, so the predicted
state, and the TCI rate computed from it, follow the drug actually given (STANPUMP reconciles
against the pump's reported volume the same way), not the drug commanded.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from pumpctl.dosing.pk.solver import Kinetics, Matrix, PkState, Propagator

__all__ = ["DeliveryTracker", "Infusion", "infusions_from_volumes", "states_at"]


@dataclass(frozen=True)
class Infusion:
    """Drug to the patient at a constant rate from `start_s` for `duration_s` (s from run start)."""

    start_s: float
    duration_s: float
    rate_mg_per_h: float

    def __post_init__(self) -> None:
        if self.duration_s < 0 or self.rate_mg_per_h < 0:
            raise ValueError(f"duration and rate must be >= 0: {self}")

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    @property
    def drug_mg(self) -> float:
        return self.rate_mg_per_h * self.duration_s / 3600.0

    def to_json(self) -> dict[str, float]:
        return {
            "start_s": self.start_s,
            "duration_s": self.duration_s,
            "rate_mg_per_h": self.rate_mg_per_h,
        }


def infusions_from_volumes(
    readings: Sequence[tuple[float, float]], concentration_mg_per_ml: float
) -> list[Infusion]:
    """Pieces from cumulative delivered-volume readings `(t_s, delivered_ml)`, in time order.

    Between two readings the volume is taken as delivered evenly (the pump ran at one rate or
    the poll interval is short). A counter that goes back (a pump reset, a cleared counter) is
    refused: the caller splices the legs, because guessing here could hide a lost volume.
    """
    pieces: list[Infusion] = []
    for (t0, v0), (t1, v1) in itertools.pairwise(readings):
        dv, dt = v1 - v0, t1 - t0
        if dv < 0:
            raise ValueError(f"delivered volume went back from {v0} to {v1} mL at {t1} s")
        if dt <= 0:
            if dv > 0 or dt < 0:
                raise ValueError(f"readings out of order or simultaneous at {t1} s")
            continue
        pieces.append(Infusion(t0, dt, dv / dt * 3600.0 * concentration_mg_per_ml))
    return pieces


def _rate_steps(infusions: Iterable[Infusion]) -> tuple[list[float], list[float]]:
    """Breakpoints and the summed rate (mg/h) from each breakpoint to the next (superposition)."""
    events: dict[float, float] = {}
    for inf in infusions:
        if inf.duration_s <= 0 or inf.rate_mg_per_h <= 0:
            continue
        events[inf.start_s] = events.get(inf.start_s, 0.0) + inf.rate_mg_per_h
        events[inf.end_s] = events.get(inf.end_s, 0.0) - inf.rate_mg_per_h
    times = sorted(events)
    rates: list[float] = []
    total, peak = 0.0, 0.0
    for t in times:
        total += events[t]
        peak = max(peak, total)
        rates.append(total if total > 1e-12 * max(peak, 1.0) else 0.0)  # drift of the sum
    return times, rates


def states_at(
    propagator: Propagator,
    infusions: Iterable[Infusion],
    query_s: Sequence[float],
    *,
    x0: Matrix | None = None,
    t0_s: float = 0.0,
) -> list[Matrix]:
    """Exact states at the (sorted, >= t0) query times, stepping through every rate change."""
    times, rates = _rate_steps(infusions)
    x = np.zeros(4) if x0 is None else np.array(x0, dtype=float)
    t = t0_s
    out: list[Matrix] = []
    j = bisect.bisect_right(times, t) - 1  # rate in force from times[j]
    for q in query_s:
        if q < t - 1e-9:
            raise ValueError(f"query times must be sorted and >= {t0_s} s")
        while j + 1 < len(times) and times[j + 1] < q:
            nxt = times[j + 1]
            if nxt > t:
                x = propagator.step(x, rates[j] if j >= 0 else 0.0, nxt - t)
                t = nxt
            j += 1
        if q > t:
            x = propagator.step(x, rates[j] if j >= 0 else 0.0, q - t)
            t = q
        out.append(x)
    return out


class DeliveryTracker:
    """The patient's predicted state from the volumes the pump reports delivered.

    Call `add_delivered` after every poll with the volume delivered since the previous one
    (the supervisor's counter deltas, across segment and container changes). Pure: no clock,
    no I/O; restorable by replaying the journaled deltas.
    """

    def __init__(
        self,
        kinetics: Kinetics,
        concentration_mg_per_ml: float,
        *,
        t0_s: float = 0.0,
        state: PkState | None = None,
    ) -> None:
        if concentration_mg_per_ml <= 0:
            raise ValueError("concentration must be > 0 mg/mL")
        self.kinetics = kinetics
        self.concentration_mg_per_ml = concentration_mg_per_ml
        self.propagator = Propagator(kinetics)
        self.t_s = t0_s
        self.state = state or PkState()
        self.history: list[Infusion] = []

    def add_delivered(self, t_s: float, volume_ml: float) -> PkState:
        """`volume_ml` reached the patient evenly between the previous call and `t_s`."""
        dt = t_s - self.t_s
        if dt < 0 or volume_ml < 0:
            raise ValueError(f"time and volume must not go back (dt {dt} s, {volume_ml} mL)")
        if dt == 0:
            if volume_ml > 0:
                self.state = self.state.with_bolus(volume_ml * self.concentration_mg_per_ml)
            return self.state
        rate = volume_ml * self.concentration_mg_per_ml / dt * 3600.0
        self.state = self.propagator.advance(self.state, rate, dt)
        self.history.append(Infusion(self.t_s, dt, rate))
        self.t_s = t_s
        return self.state

    @property
    def plasma_ug_per_ml(self) -> float:
        return self.state.plasma_ug_per_ml(self.kinetics)

    @property
    def effect_ug_per_ml(self) -> float:
        return self.state.ce_ug_per_ml
