"""Container legs: a segment runs in legs when the syringe or reservoir empties before it ends.

Each leg's pump target is the rest of the segment or the rest of the container, whichever is
less, a small reserve short of the plunger bottoming out, so a change starts with the pump
stopped at its own target instead of a stall alarm (SR25). The supervisor warns before empty,
pauses at the change, refuses a plain resume, and continues on the operator's confirmation;
volumes on both sides of the change are accounted (`SegmentLedger.carry_ml`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from pumpctl.dosing.plan import Segment
from pumpctl.infusion.container import ContainerLevel
from pumpctl.infusion.events import ContainerChangeNeeded, ContainerNearEmpty
from pumpctl.infusion.ledger import Alarm, SegmentLedger
from pumpctl.infusion.recorder import RunRecorder
from pumpctl.log import get_logger

__all__ = ["ContainerLegs", "LegTarget", "mean_rate_ahead"]

#: the near-empty warning looks this far ahead (and at 10 % of the capacity), SR25
WARN_AHEAD_S = 600.0

_log = get_logger("pumpctl.infusion.supervisor")


class LegTarget(NamedTuple):
    """The pump's own target for the next leg; `finishes_segment` is False when the container,
    not the segment, limits it (a change follows when the pump stops there)."""

    volume_ml: float | None
    finishes_segment: bool


def mean_rate_ahead(
    ledger: SegmentLedger, following: Sequence[Segment], within_s: float = WARN_AHEAD_S
) -> float:
    """The plan's mean rate, mL/h, over the next `within_s`: the rest of this segment at its
    rate, then the segments after it at theirs (read only as far as `within_s` reaches: on
    nearly every poll the current segment alone, answered without the loop)."""
    rate, volume_ml = ledger.rate_ml_per_h, _left_ml(ledger)
    if rate > 0 and (volume_ml is None or volume_ml * 3600.0 >= rate * within_s):
        return rate  # this segment alone fills the window (the loop's answer, to an ulp)
    left_s, ml = within_s, 0.0
    after = iter(following)
    while left_s > 0 and rate > 0:
        takes_s = math.inf if volume_ml is None else volume_ml / rate * 3600.0
        run_s = min(left_s, takes_s)
        ml += rate * run_s / 3600.0
        left_s -= run_s
        segment = next(after, None)
        if segment is None:
            break
        rate, volume_ml = segment.rate_ml_per_h, segment.volume_ml
    return ml * 3600.0 / within_s


def _left_ml(ledger: SegmentLedger) -> float | None:
    planned = ledger.planned_ml
    return None if planned is None else max(0.0, planned - ledger.delivered_ml)


class ContainerLegs:
    def __init__(
        self,
        level: ContainerLevel,
        recorder: RunRecorder,
        *,
        changes_allowed: bool,
        planned_total_ml: float | None,
    ) -> None:
        self.level = level
        self.recorder = recorder
        self.changes_allowed = changes_allowed
        self.planned_total_ml = planned_total_ml
        #: what the operator must know or do that is not an alarm (shown in progress)
        self.notices: list[str] = []

    @property
    def kind(self) -> str:
        return self.level.kind

    def left_ml(self, total_ml: float) -> float | None:
        return self.level.left_ml(total_ml)

    def target_ml(self, ledger: SegmentLedger, done_ml: float, resolution_ml: float) -> LegTarget:
        """What the next leg may deliver (the pump's own target; None = until stopped)."""
        limits = []
        remaining = None
        if ledger.planned_ml is not None:
            remaining = ledger.planned_ml - ledger.delivered_ml  # at a leg's start
            limits.append(remaining)
        left = self.level.left_ml(done_ml + ledger.delivered_ml)
        container_first = left is not None and (remaining is None or left < remaining)
        if left is not None and container_first:
            limits.append(left - self.level.reserve_ml())
        if not limits:
            return LegTarget(None, True)
        target = min(limits)
        if target < resolution_ml:
            raise Alarm(
                "container_empty",
                f"nothing left to deliver from the {self.kind} ({left:.3f} mL left)"
                if left is not None
                else "nothing left to deliver",
            )
        return LegTarget(round(target, 9), not container_first)

    def check_level(self, total_ml: float, rate_ml_per_h: float) -> None:
        """SR25: say so, once per container, before it runs empty; keep the notice current.

        `rate_ml_per_h`: the mean rate the plan runs at over the next 10 minutes (a fast prime
        from a small syringe is over long before the syringe would be)."""
        still_needed = None if self.planned_total_ml is None else self.planned_total_ml - total_ml
        left = self.level.needs_warning(total_ml, rate_ml_per_h, still_needed)
        if left is not None:
            self.recorder.write(ContainerNearEmpty(left_ml=left))
            _log.warning("container.near_empty", left_ml=round(left, 4))
        if self.level.warned:
            now_left = self.level.left_ml(total_ml)
            self._set_notice(
                "nearly empty", f"{self.kind} nearly empty: {max(now_left or 0.0, 0.0):.2f} mL left"
            )

    def emptied(self, ledger: SegmentLedger) -> None:
        """The pump stopped at the end of the container with the segment unfinished."""
        if not self.changes_allowed:
            left = (ledger.planned_ml or 0.0) - ledger.delivered_ml
            raise Alarm(
                "container_empty",
                f"{self.kind} empty with {left:.3f} mL of {ledger.segment.phase.value} left; "
                "the program does not allow changes (SR25)",
            )
        self._set_notice(
            "change needed",
            f"{self.kind} change needed: put in a full {self.kind}, then confirm "
            f"(pumpctl ctl syringe-changed)",
        )
        self.recorder.write(ContainerChangeNeeded(container=self.kind))
        _log.warning("container.change_needed", kind=self.kind)

    def refilled(self, fill_ml: float, total_ml: float) -> None:
        self.level.refilled(fill_ml, total_ml)
        self.notices = [n for n in self.notices if "change needed" not in n and "nearly" not in n]

    def _set_notice(self, key: str, text: str) -> None:
        if self.notices and self.notices[-1] == text:
            return  # already the newest, and the only one with its key (set every poll)
        self.notices = [n for n in self.notices if key not in n] + [text]
