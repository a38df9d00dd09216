"""Killing a controller at an exact step, then starting another on the same journal and pump.

A crash is a `ControllerDied` raised from inside the journal's `append`, just before or just
after an event is written: nothing of the controller runs after it but `finally` blocks that do
no I/O, which is what a killed process leaves behind (the pump carries on alone). Wall time in
the journal is `wall0 + clock`, so ages between controllers are exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pumpctl.clock import Clock, run_with_clock
from pumpctl.dosing.plan import Plan
from pumpctl.drivers.registry import driver_class
from pumpctl.infusion.journal import Journal
from pumpctl.infusion.supervisor import RunResult, Supervisor, SupervisorConfig
from pumpctl.runner import supervisor_for
from pumpctl.simulator.devices.base import Emulation
from pumpctl.simulator.endpoints import InMemoryTransport
from pumpctl.simulator.faults import FaultSchedule

Operator = Callable[[Supervisor, Clock], Awaitable[None]]
#: (event kind, payload) -> crash now?
CrashWhen = Callable[[str, dict[str, Any]], bool]


class ControllerDied(BaseException):
    """The process died here (not an Exception: no handler of ours may catch it)."""


@dataclass
class Outcome:
    result: RunResult | None  # None: crashed, or nothing remained
    notes: list[str]
    end_wall: float
    crashed: bool
    errors: list[BaseException] = field(default_factory=list)


class _CrashingJournal(Journal):
    crash_when: CrashWhen | None = None
    before_write = False

    def append(
        self,
        run_id: str,
        kind: str,
        payload: Any,
        *,
        t_clock_s: float,
        phase: str | None = None,
    ) -> int:
        hit = self.crash_when is not None and self.crash_when(str(kind), dict(payload))
        if hit and self.before_write:
            raise ControllerDied(f"before {kind} {payload}")
        seq = super().append(run_id, kind, payload, t_clock_s=t_clock_s, phase=phase)
        if hit:
            raise ControllerDied(f"after {kind} {payload}")
        return seq


class _DyingTransport(InMemoryTransport):
    """Dies at the first exchange at or after `die_at_s` of clock time (a kill between polls
    takes effect at the controller's next wire access, which is all the pump could notice)."""

    die_at_s: float | None = None

    async def exchange(self, request: bytes, frame_length: Any, timeout_s: float) -> bytes:
        if self.die_at_s is not None and self.clock.now() >= self.die_at_s:
            raise ControllerDied(f"at {self.clock.now():.1f} s")
        return await super().exchange(request, frame_length, timeout_s)


def controller(
    emu: Emulation,
    plan: Plan,
    journal_path: Path,
    *,
    wall0: float,
    model: str = "ne1000",
    address: int = 0,
    crash_when: CrashWhen | None = None,
    before_write: bool = False,
    crash_at_s: float | None = None,
    operator: Operator | None = None,
    config: SupervisorConfig | None = None,
    faults: FaultSchedule | None = None,
    **prepare: Any,
) -> Outcome:
    """One controller's life on the virtual clock: prepare (resume or start), run, maybe die."""

    async def main(clock: Clock) -> Outcome:
        journal = _CrashingJournal(journal_path, wall_clock=lambda: wall0 + clock.now())
        journal.crash_when = crash_when
        journal.before_write = before_write
        errors: list[BaseException] = []
        transport = _DyingTransport(emu, clock, name=f"sim://{model}", faults=faults)
        transport.die_at_s = crash_at_s
        driver = driver_class(model)(transport, address=address)
        try:
            await driver.open()
            sup, notes = await supervisor_for(
                plan, driver, clock, journal, config=config, now_wall=wall0, **prepare
            )
            if sup is None:
                return Outcome(None, notes, wall0 + clock.now(), False)
            run = asyncio.create_task(sup.run())
            helper = asyncio.create_task(_guard(operator(sup, clock), errors)) if operator else None
            try:
                result = await run
            except ControllerDied:
                return Outcome(None, notes, wall0 + clock.now(), True, errors)
            finally:
                if helper is not None:  # the test's own operator, not the controller's code
                    helper.cancel()
                    await asyncio.gather(helper, return_exceptions=True)
            return Outcome(result, notes, wall0 + clock.now(), False, errors)
        except ControllerDied:
            return Outcome(None, [], wall0 + clock.now(), True, errors)
        finally:
            journal.close()

    return run_with_clock(main, virtual=True)


async def _guard(coro: Awaitable[None], errors: list[BaseException]) -> None:
    try:
        await coro
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # surfaced to the test
        errors.append(exc)
