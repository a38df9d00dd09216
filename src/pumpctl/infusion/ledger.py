"""The books of one segment: what the pump counted, what it should have, and what comes next.

Pure reconciliation, no I/O and no clock: the segment runner feeds it each poll's status and
counter with the time the reply came back, and acts on what it returns. Keeping it pure is what
lets every rule below be tested on its own (and by hypothesis) without a pump.

- The pump's counter is the delivered volume (SR22); a rate × time accumulator of the time the
  pump was believed running cross-checks it within the pump's stated accuracy, its steps and
  two polls of timing jitter.
- The counter may never pass the planned volume by more than the pump's resolution (SR23).
- A segment is done when the pump stopped itself at its own target; a target short of the
  segment only exists when the container runs out first.
- A start whose reply was lost is assumed executed (SR21) until the pump is seen stopped with
  nothing delivered, which calls for sending it again.

The whole run's books (`RunBooks`: per segment, done so far, the rolling windows of SR08) are
here too: pure as well, they add up the segments' ledgers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum, StrEnum

from pumpctl.dosing.plan import Segment
from pumpctl.dosing.rolling import RollingTotals
from pumpctl.drivers.base import AlarmReason, DeliveredVolume, PumpState, PumpStatus
from pumpctl.infusion.outcome import PhaseResult

__all__ = ["Alarm", "LegState", "RunBooks", "SegmentLedger", "Tolerances", "Verdict"]


class Alarm(Exception):
    """Anything that must end the run with a confirmed stop; `reason` is its short name."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


#: alarms a single reading can raise from its numbers alone (SR22, SR23, SR28): on a protocol
#: without a checksum one garbled digit raises them too, so they are confirmed by a second
#: reading first (SR20: a corrupted reply is never acted on)
READING_ALARMS = frozenset({"volume_deviation", "over_delivery", "reset"})

#: what `take_reading` changes besides the accrual (which follows the clock, not the reading)
_READING_FIELDS = (
    "counter_ml",
    "last_reading_s",
    "pending_ml",
    "lost_ml",
    "carry_ml",
    "counter_before_ml",
    "counter_read",
    "replaced_ml",
)


class LegState(StrEnum):
    """Where the pump is believed to be within the current leg of a segment."""

    IDLE = "idle"  # nothing started yet in this leg
    STARTING = "starting"  # RUN sent, its outcome unknown (SR21): assumed running
    RUNNING = "running"
    PAUSED = "paused"  # paused by the operator
    AWAITING_CHANGE = "awaiting_change"  # stopped at the end of its container
    OFF = "off"  # paused by the TCI controller (rate 0): not an operator pause, no SR15 timer
    STOPPED = "stopped"  # stopped at its own target: the leg is over


_ACCRUING = frozenset({LegState.STARTING, LegState.RUNNING})
_HELD = frozenset({LegState.PAUSED, LegState.AWAITING_CHANGE})


class Verdict(Enum):
    CONTINUE = "continue"
    DONE = "done"  # the segment delivered its planned volume
    CONTAINER_EMPTY = "container_empty"  # the pump stopped at the container's end
    RESTART = "restart"  # the RUN provably did not execute: send it again


# read on every poll: on 3.11 `Enum.MEMBER` goes through a slow path, a module name does not
_STARTING, _RUNNING, _OFF = LegState.STARTING, LegState.RUNNING, LegState.OFF
_PUMP_RUNNING, _PUMP_ALARM = PumpState.RUNNING, PumpState.ALARM
_CONTINUE = Verdict.CONTINUE


@dataclass(frozen=True)
class Tolerances:
    """How far the counter may differ from rate × time before it is an alarm (SR22)."""

    floor_ml: float
    accuracy: float  # stated volumetric accuracy, as a fraction
    resolution_ml: float
    rate_step_ml_per_h: float
    poll_interval_s: float
    #: clock seconds by which the pump's clock and ours may disagree (a scaled rig: another
    #: process's wall-clock hiccup is that many clock seconds of pumping)
    clock_jitter_s: float = 0.0

    def deviation_ml(self, expected_ml: float, rate_ml_per_h: float) -> float:
        running_h = expected_ml / rate_ml_per_h if rate_ml_per_h > 0 else 0.0
        return (
            self.floor_ml
            + self.accuracy * expected_ml
            + 2 * self.resolution_ml
            # a pump sets the rate only to within half its rate step (0.1 rpm on a peristaltic
            # drive is several percent at low speed)
            + self.rate_step_ml_per_h / 2 * running_h
            + rate_ml_per_h * (2 * self.poll_interval_s + self.clock_jitter_s) / 3600.0
        )


@dataclass
class SegmentLedger:
    segment: Segment
    rate_ml_per_h: float  # the rate the pump runs (titration changes it)
    started_s: float
    last_accrual_s: float
    state: LegState = LegState.IDLE
    delivered_ml: float = 0.0
    expected_ml: float = 0.0
    #: delivered in earlier legs of this segment (before a container change cleared the counter)
    carry_ml: float = 0.0
    #: segment volume at which the pump stops itself (the target it was sent), None = runs
    #: until stopped
    stop_at_ml: float | None = None
    #: this leg's target is the rest of the segment (not cut short by the container): the pump
    #: stopping there ends the segment, even a step short of the plan where its format rounds
    #: a remainder down (a resumed segment, a leg after a change)
    final_leg: bool = True
    held_since_s: float | None = None
    last_increase_s: float | None = None
    ended_s: float | None = None
    #: the pump's counter at its last valid reading in this leg, and when that was
    counter_ml: float = 0.0
    last_reading_s: float | None = None
    #: worst case booked for a gap whose counter was lost (a reset): never measurable again
    lost_ml: float = 0.0
    #: worst case booked while the pump was unreadable; its next valid reading replaces it
    pending_ml: float = 0.0
    #: `counter_ml` is a reading of this leg (not the cleared counter it starts from), and the
    #: reading before it (None: none in this leg), to tell a corrupted reading from a reset
    counter_read: bool = False
    counter_before_ml: float | None = None
    #: the last reading's counter when the reading after it replaced it (SR20), else None
    replaced_ml: float | None = None

    @property
    def planned_ml(self) -> float | None:
        return self.segment.volume_ml

    @property
    def pump_running(self) -> bool:
        """Believed to be moving liquid (a start of unknown outcome counts, SR21)."""
        return self.state in _ACCRUING

    @property
    def awaiting_change(self) -> bool:
        return self.state is LegState.AWAITING_CHANGE

    def accrue(self, now_s: float) -> None:
        """Bring the expected volume up to `now_s` at the current rate (only while running)."""
        if self.state in _ACCRUING:
            self.expected_ml += self.rate_ml_per_h * (now_s - self.last_accrual_s) / 3600.0
        self.last_accrual_s = now_s

    def enter(self, state: LegState, now_s: float) -> None:
        """Change state at `now_s`, accruing what the old state delivered first."""
        self.accrue(now_s)
        if state in _HELD and self.state not in _HELD:
            self.held_since_s = now_s
        elif state not in _HELD:
            self.held_since_s = None
        self.state = state

    def change_rate(self, rate_ml_per_h: float, now_s: float) -> None:
        """A titration: accrue at the old rate up to now, then switch."""
        self.accrue(now_s)
        if rate_ml_per_h > self.rate_ml_per_h:
            self.last_increase_s = now_s
        self.rate_ml_per_h = rate_ml_per_h

    def new_leg(self) -> None:
        """The pump's counter is about to be cleared: what it counted so far becomes carry."""
        self.carry_ml += self.counter_ml
        self.counter_ml = 0.0
        self.counter_read, self.counter_before_ml = False, None
        self.stop_at_ml = None

    @property
    def estimated_ml(self) -> float:
        """The part of `delivered_ml` that is a worst-case estimate, not a counter reading."""
        return self.lost_ml + self.pending_ml

    def _book(self) -> None:
        self.delivered_ml = self.carry_ml + self.counter_ml + self.lost_ml + self.pending_ml

    def _cap_ml(self) -> float | None:
        caps = [v for v in (self.stop_at_ml, self.planned_ml) if v is not None]
        return min(caps) if caps else None

    def book_worst_case(self, now_s: float, *, for_s: float | None = None) -> float:
        """The pump was not readable since its last reading: assume it ran at the commanded rate
        all along (SR21), for `for_s` more seconds too (None: until its own target stops it),
        capped by that target. Returns the estimate now booked, mL.

        Booking more than was delivered can only under-dose a resume; booking less would let
        the rolling limits and a resume miss drug that went in.
        """
        if self.state not in _ACCRUING:
            return self.estimated_ml
        since = self.last_reading_s if self.last_reading_s is not None else self.started_s
        known = self.carry_ml + self.counter_ml + self.lost_ml
        cap = self._cap_ml()
        if for_s is None and cap is not None:
            worst = cap
        else:
            more_s = max(0.0, now_s - since) + (for_s or 0.0)
            worst = known + self.rate_ml_per_h * more_s / 3600.0
            if cap is not None:
                worst = min(worst, cap)
        self.pending_ml = max(self.pending_ml, worst - known)
        self._book()
        return self.estimated_ml

    def counter_reading(self, counter_ml: float, now_s: float, resolution_ml: float) -> bool:
        """Book a valid counter reading; False when it went backwards (the pump lost its
        counter: power loss, reset): the worst case for the gap is then booked for good, and
        what the counter says from now on adds to it.

        Not when only the last reading is above this one and this one carries on from the
        reading before it: a digit changed in transit inside the deviation band (no checksum
        tells it) was booked, and this reading replaces it (SR20); `replaced_ml` says so."""
        went_back = counter_ml + resolution_ml < self.counter_ml
        before = self.counter_before_ml
        self.replaced_ml = None
        lost = went_back and (before is None or counter_ml + resolution_ml < before)
        if lost:
            self.book_worst_case(now_s, for_s=0.0)
            self.lost_ml += self.pending_ml
            self.carry_ml += self.counter_ml
            self.counter_before_ml = None
        elif went_back:
            self.replaced_ml = self.counter_ml  # the reading before it stays the one before
        else:
            self.counter_before_ml = self.counter_ml if self.counter_read else None
        self.pending_ml = 0.0  # readable again: the counter is the record (SR22)
        self.counter_ml, self.counter_read = counter_ml, True
        self.last_reading_s = now_s
        self._book()
        return not lost

    def reading_state(self) -> tuple[float | None, ...]:
        """The books a reading changes, to put back if the reading proves corrupted (taken
        every poll: spelled out, in the order of `_READING_FIELDS`)."""
        return (
            self.counter_ml,
            self.last_reading_s,
            self.pending_ml,
            self.lost_ml,
            self.carry_ml,
            self.counter_before_ml,
            self.counter_read,
            self.replaced_ml,
        )

    def restore_reading(self, saved: tuple[float | None, ...]) -> None:
        for name, value in zip(_READING_FIELDS, saved, strict=True):
            setattr(self, name, value)
        self._book()

    # ------------------------------------------------------------------ one poll

    def take_reading(
        self, status: PumpStatus, counter: DeliveredVolume, now_s: float, tol: Tolerances
    ) -> None:
        """Book a poll's reading; raises `Alarm` for a pump alarm, over-delivery or deviation."""
        if status.state is _PUMP_ALARM:
            reason = status.alarm.value if status.alarm else AlarmReason.OTHER.value
            raise Alarm(reason, f"pump reports alarm ({status.raw})")
        self.accrue(now_s)
        previous = self.counter_ml
        if not self.counter_reading(counter.net_ml, now_s, tol.resolution_ml):
            raise Alarm(  # SR28
                "reset",
                f"{self.segment.phase.value}: the pump's counter went back from {previous:.4f} "
                f"to {counter.net_ml:.4f} mL (power loss or reset); booked the worst case, "
                f"{self.estimated_ml:.4f} mL estimated",
            )
        planned = self.segment.volume_ml
        if planned is not None and self.delivered_ml > planned + tol.resolution_ml:
            raise Alarm(  # SR23
                "over_delivery",
                f"{self.segment.phase.value}: pump counter {self.delivered_ml} mL > planned "
                f"{planned} mL",
            )
        expected = self.expected_now()
        tolerance = tol.deviation_ml(expected, self.rate_ml_per_h)
        if abs(self.delivered_ml - expected) > tolerance:
            raise Alarm(
                "volume_deviation",
                f"{self.segment.phase.value}: pump counted {self.delivered_ml:.4f} mL, "
                f"expected {expected:.4f} ± {tolerance:.4f} mL",
            )

    def expected_now(self) -> float:
        """Rate × time, but never past the pump's own target (it stops itself there)."""
        if self.stop_at_ml is None:
            return self.expected_ml
        return min(self.expected_ml, self.stop_at_ml)

    def verdict(
        self, status: PumpStatus, now_s: float, *, resolution_ml: float, max_pause_s: float
    ) -> Verdict:
        """What the reading just taken means for the segment."""
        if self.state in _HELD:
            held = now_s - (self.held_since_s if self.held_since_s is not None else now_s)
            if self.state is LegState.PAUSED and held >= max_pause_s:  # SR15
                raise Alarm("paused_too_long", f"paused for {held:.0f} s")
            if self.state is LegState.AWAITING_CHANGE and held >= max_pause_s:
                raise Alarm("paused_too_long", f"waiting for a container change for {held:.0f} s")
            return _CONTINUE
        pump_running = status.state is _PUMP_RUNNING
        if self.state is _OFF and not pump_running:
            return _CONTINUE
        if pump_running:
            if self.state is _STARTING:
                self.state = _RUNNING
            return _CONTINUE
        stop_at = self.stop_at_ml
        if stop_at is not None and self.delivered_ml >= stop_at - resolution_ml:
            self.enter(LegState.STOPPED, now_s)  # the pump reached its own target by itself
            planned = self.planned_ml
            if self.final_leg or (
                planned is not None and self.delivered_ml >= planned - resolution_ml
            ):
                return Verdict.DONE
            return Verdict.CONTAINER_EMPTY
        if self.state is LegState.STARTING and self.delivered_ml <= resolution_ml:
            return Verdict.RESTART  # SR21: state re-read, and the RUN provably did not execute
        raise Alarm(
            "unexpected_stop",
            f"pump {status.state.value} at {self.delivered_ml} mL of {self.planned_ml} mL "
            "without a command",
        )


@dataclass
class RunBooks:
    """What the whole run has delivered, for results, rolling limits and checkpoints."""

    #: by segment key (its phase, or its taper step)
    results: dict[str, PhaseResult]
    rolling: RollingTotals
    tolerances: Tolerances
    done_ml: float = 0.0  # delivered by segments already finished
    #: delivered by earlier runs (counted by the rolling windows, SR08)
    prior_ml: float = 0.0
    ledger: SegmentLedger | None = None
    last_checkpoint_s: float = -math.inf
    alarms: list[str] = field(default_factory=list)

    @property
    def delivered_ml(self) -> float:
        return sum(r.delivered_ml for r in self.results.values())

    def booked(self, ledger: SegmentLedger) -> None:
        """The segment's latest delivered volume into its phase result (written only when it
        moved: a slow drip's counter stays put for most polls, and a pydantic assignment is not
        free)."""
        result = self.results[ledger.segment.key]
        if result.delivered_ml != ledger.delivered_ml:
            result.delivered_ml = ledger.delivered_ml

    def check_rolling(self, now_s: float, total_ml: float) -> None:
        """SR08: drug delivered in any 1 h / 4 h / 24 h window stays under the library max."""
        excess = self.rolling.add(now_s, self.prior_ml + total_ml)
        if excess is not None:
            window_s, in_window_ml, max_ml = excess
            raise Alarm(
                "rolling_limit",
                f"{in_window_ml:.3f} mL delivered in the last {window_s / 3600:g} h exceeds "
                f"the library maximum {max_ml:.3f} mL",
            )
