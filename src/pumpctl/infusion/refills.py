"""Refills seen in a pump's polled status: one `SyringeRefilled` event per refill. Pure.

A Cavro driver's `PumpStatus.refilling` is True while its pump draws from the reservoir port.
`RefillWatch.observe` turns the polls into events: a refill starts at the first poll that says
`refilling` and ends at the first that does not (or at an alarm or a stop), so its duration is
known to a poll interval.
"""

from __future__ import annotations

from dataclasses import dataclass

from pumpctl.drivers.base import PumpStatus
from pumpctl.infusion.events import SyringeRefilled

__all__ = ["RefillWatch"]


@dataclass
class RefillWatch:
    """Edges of `PumpStatus.refilling` across polls."""

    started_s: float | None = None
    count: int = 0

    @property
    def refilling(self) -> bool:
        return self.started_s is not None

    def observe(
        self, status: PumpStatus, now_s: float, delivered_ml: float | None = None
    ) -> SyringeRefilled | None:
        """The refill that ended at this poll, if one did; `delivered_ml`: the run's total."""
        if status.refilling and status.running:
            if self.started_s is None:
                self.started_s = now_s
            return None
        if self.started_s is None:
            return None
        self.count += 1
        event = SyringeRefilled(
            started_s=self.started_s,
            duration_s=now_s - self.started_s,
            delivered_ml=delivered_ml,
            count=self.count,
        )
        self.started_s = None
        return event
