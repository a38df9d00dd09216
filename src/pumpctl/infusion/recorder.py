"""The supervisor's pen: typed events into one run of the journal, stamped with clock and phase.

Every write goes through `RunRecorder.write`, so every event the supervisor journals is one of
the models in `pumpctl.infusion.events` and is on disk before the next pump command (SR29).
Without a journal (a script, a test) writes are no-ops.
"""

from __future__ import annotations

from collections.abc import Callable

from pumpctl.clock import Clock
from pumpctl.infusion.events import OverrideEvent, PlanAccepted, Record
from pumpctl.infusion.journal import Journal

__all__ = ["RunRecorder"]


class RunRecorder:
    def __init__(self, journal: Journal | None, clock: Clock, phase: Callable[[], str]) -> None:
        self.journal = journal
        self.clock = clock
        self._phase = phase
        self.run_id: str | None = None

    @property
    def active(self) -> bool:
        return self.journal is not None and self.run_id is not None

    def start(
        self,
        *,
        program: str,
        program_hash: str,
        plan_json: str,
        pump_model: str,
        port: str,
        address: int,
        accepted: PlanAccepted,
        overrides: list[OverrideEvent],
    ) -> str | None:
        """Open the run in the journal and record how its plan was accepted (SR03)."""
        if self.journal is None:
            return None
        self.run_id = self.journal.start_run(
            program=program,
            program_hash=program_hash,
            plan_json=plan_json,
            pump_model=pump_model,
            port=port,
            address=address,
            t_clock_s=self.clock.now(),
        )
        self.write(accepted)
        for override in overrides:
            self.write(override)
        return self.run_id

    def write(self, event: Record) -> None:
        if self.journal is None or self.run_id is None:
            return
        self.journal.append(
            self.run_id,
            event.kind.value,
            event.payload(),
            t_clock_s=self.clock.now(),
            phase=self._phase(),
        )

    def set_status(self, status: str) -> None:
        if self.journal is not None and self.run_id is not None:
            self.journal.set_run_status(self.run_id, status)
