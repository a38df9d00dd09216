"""Clinician bolus with lockout: pure decisions, restorable clocks, journal-ready records.

PCA-style safety features (USP Quality Review 81, ISMP PCA guidance): a library-limited dose, a
lockout interval, a maximum number of boluses per hour and a maximum bolus dose per 4 h. Windows
slide on the run's clock (seconds since start; never wall-clock hour buckets): a bolus at t_k
counts in the window (t − W, t]. The lockout runs from the END of the previous bolus (its
delivery time counts), the conservative reading. A refusal is never queued: it says which limit
and when the next bolus would be allowed.

The 4-h limit counts bolus drug; the infusion's own drug is bounded by the plan's rolling limits
(SR08). Once the 4-h bolus limit is reached, no more boluses are given and the infusion drops to
its basal rate, or to KVO when there is no basal (`fallback_rate_ml_per_h`).

Nothing here reads a clock or writes a journal: the supervisor passes the time, journals
`BolusDecision.journal()` and, after a crash, restores the lockout from the journaled accepted
boluses (`BolusLockout(limits, history)`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "BolusDecision",
    "BolusLimits",
    "BolusLockout",
    "BolusRecord",
    "BolusRequest",
    "decide",
    "fallback_rate_ml_per_h",
    "next_allowed_s",
]

HOUR_S = 3600.0
FOUR_HOURS_S = 4 * 3600.0
#: float slack on time and dose comparisons (far below a second or a microgram)
_EPS = 1e-9

LimitName = Literal["request", "dose", "lockout", "per_hour", "per_4h"]


@dataclass(frozen=True)
class BolusLimits:
    """From the drug library (dose) and the program (lockout, counts), in mg and s."""

    max_dose_mg: float
    lockout_s: float
    max_per_hour: int
    max_mg_per_4h: float

    def __post_init__(self) -> None:
        if not (self.max_dose_mg > 0 and self.max_mg_per_4h > 0 and self.max_per_hour >= 1):
            raise ValueError("bolus limits must be > 0 (and at least one bolus per hour)")
        if self.lockout_s < 0:
            raise ValueError("lockout must be >= 0 s")


@dataclass(frozen=True)
class BolusRequest:
    t_s: float
    dose_mg: float
    who: str
    reason: str
    #: delivery time at the bolus rate (the lockout starts when it ends)
    duration_s: float = 0.0


@dataclass(frozen=True)
class BolusRecord:
    """An accepted bolus, as journaled (restoring the lockout needs only these)."""

    t_s: float
    dose_mg: float
    duration_s: float = 0.0
    who: str = ""
    reason: str = ""

    @property
    def end_s(self) -> float:
        return self.t_s + self.duration_s


@dataclass(frozen=True)
class BolusDecision:
    accepted: bool
    request: BolusRequest
    limit: LimitName | None
    message: str
    #: earliest time a bolus of this dose is allowed (None: never, at this dose)
    next_allowed_s: float | None
    #: the 4-h bolus limit is reached: no more boluses; the infusion drops to basal (or KVO)
    four_hour_limit_reached: bool

    def journal(self) -> dict[str, Any]:
        """The journal entry: who, why, dose, accepted or refused, which limit, what next."""
        r = self.request
        return {
            "event": "bolus_accepted" if self.accepted else "bolus_refused",
            "t_s": r.t_s,
            "dose_mg": r.dose_mg,
            "duration_s": r.duration_s,
            "who": r.who,
            "reason": r.reason,
            "accepted": self.accepted,
            "limit": self.limit,
            "message": self.message,
            "next_allowed_s": self.next_allowed_s,
            "four_hour_limit_reached": self.four_hour_limit_reached,
        }


def _hms(t_s: float) -> str:
    total = round(t_s)
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"


def _in_window(history: Iterable[BolusRecord], t_s: float, window_s: float) -> list[BolusRecord]:
    """Boluses started in (t − W, t]; 1 ns of slack so a bolus leaves exactly at t_k + W."""
    return [b for b in history if t_s - window_s + _EPS < b.t_s <= t_s + _EPS]


def _broken(
    limits: BolusLimits, history: Sequence[BolusRecord], t_s: float, dose_mg: float
) -> tuple[LimitName, str] | None:
    """The first limit a bolus of `dose_mg` at `t_s` would break, with its description."""
    if dose_mg > limits.max_dose_mg * (1 + _EPS):
        return "dose", f"dose {dose_mg:g} mg is above the maximum bolus {limits.max_dose_mg:g} mg"
    if history:
        last_end = max(b.end_s for b in history)
        if t_s < last_end + limits.lockout_s - _EPS:
            return "lockout", f"lockout {limits.lockout_s / 60:g} min after the last bolus"
    if len(_in_window(history, t_s, HOUR_S)) + 1 > limits.max_per_hour:
        return "per_hour", f"at most {limits.max_per_hour} boluses per hour"
    given = sum(b.dose_mg for b in _in_window(history, t_s, FOUR_HOURS_S))
    if given + dose_mg > limits.max_mg_per_4h * (1 + _EPS):
        return "per_4h", (
            f"4-h limit {limits.max_mg_per_4h:g} mg ({given:g} mg given in the last 4 h)"
        )
    return None


def next_allowed_s(
    limits: BolusLimits, history: Sequence[BolusRecord], t_s: float, dose_mg: float
) -> float | None:
    """Earliest time >= `t_s` at which a bolus of `dose_mg` would be accepted (None: never).

    With no new bolus, time only relaxes the limits, and only at a lockout end or when a bolus
    leaves a window; so the first such instant that is allowed is the answer.
    """
    if dose_mg > limits.max_dose_mg * (1 + _EPS) or dose_mg > limits.max_mg_per_4h * (1 + _EPS):
        return None
    candidates = {t_s}
    if history:
        candidates.add(max(b.end_s for b in history) + limits.lockout_s)
    for b in history:
        candidates.update((b.t_s + HOUR_S, b.t_s + FOUR_HOURS_S))
    for c in sorted(x for x in candidates if x >= t_s):
        if _broken(limits, history, c, dose_mg) is None:
            return c
    return None  # pragma: no cover - the last window exit always frees every limit


def four_hour_limit_reached(
    limits: BolusLimits, history: Sequence[BolusRecord], t_s: float
) -> bool:
    given = sum(b.dose_mg for b in _in_window(history, t_s, FOUR_HOURS_S))
    return given >= limits.max_mg_per_4h * (1 - _EPS)


def decide(
    limits: BolusLimits, history: Sequence[BolusRecord], request: BolusRequest
) -> BolusDecision:
    """Accept or refuse `request` given the accepted boluses so far (pure)."""
    r = request
    problem: tuple[LimitName, str] | None = None
    if not (r.dose_mg > 0 and r.duration_s >= 0):
        problem = ("request", f"dose must be > 0 mg, got {r.dose_mg:g}")
    elif not (r.who.strip() and r.reason.strip()):
        problem = ("request", "a bolus needs who asked and why (journaled)")
    elif history and r.t_s < max(b.t_s for b in history) - _EPS:
        problem = ("request", "request time is before the last bolus: clock out of order")
    else:
        problem = _broken(limits, history, r.t_s, r.dose_mg)
    if problem is None:
        after = [*history, BolusRecord(r.t_s, r.dose_mg, r.duration_s, r.who, r.reason)]
        reached = four_hour_limit_reached(limits, after, r.t_s)
        msg = f"bolus {r.dose_mg:g} mg accepted at {_hms(r.t_s)} ({r.who}: {r.reason})"
        if reached:
            msg += "; 4-h bolus limit now reached: the infusion stays at its basal (or KVO) rate"
        nxt = next_allowed_s(limits, after, r.t_s, r.dose_mg)
        return BolusDecision(True, r, None, msg, nxt, reached)
    limit, what = problem
    nxt = None if limit == "request" else next_allowed_s(limits, history, r.t_s, r.dose_mg)
    when = (
        "no bolus of this dose is allowed"
        if nxt is None
        else f"next bolus allowed at {_hms(nxt)} (in {_hms(nxt - r.t_s)})"
    )
    message = f"bolus {r.dose_mg:g} mg refused: {what}; {when}"
    reached = four_hour_limit_reached(limits, history, r.t_s)
    return BolusDecision(False, r, limit, message, nxt, reached)


def fallback_rate_ml_per_h(basal_ml_per_h: float | None, kvo_ml_per_h: float | None) -> float:
    """The rate to drop to when the 4-h limit is reached: basal, or KVO without a basal."""
    if basal_ml_per_h is not None and basal_ml_per_h > 0:
        return basal_ml_per_h
    return kvo_ml_per_h or 0.0


class BolusLockout:
    """The lockout's state: the accepted boluses. Restore it from the journal by passing them."""

    def __init__(self, limits: BolusLimits, history: Iterable[BolusRecord] = ()) -> None:
        self.limits = limits
        self._history = sorted(history, key=lambda b: b.t_s)

    @property
    def history(self) -> tuple[BolusRecord, ...]:
        return tuple(self._history)

    def request(self, request: BolusRequest) -> BolusDecision:
        decision = decide(self.limits, self._history, request)
        if decision.accepted:
            r = request
            self._history.append(BolusRecord(r.t_s, r.dose_mg, r.duration_s, r.who, r.reason))
        return decision

    def next_allowed_s(self, t_s: float, dose_mg: float) -> float | None:
        return next_allowed_s(self.limits, self._history, t_s, dose_mg)

    def four_hour_limit_reached(self, t_s: float) -> bool:
        return four_hour_limit_reached(self.limits, self._history, t_s)
