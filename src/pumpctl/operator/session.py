"""One `pumpctl run` from connecting to the pump to the run's result, apart from click.

The order matters for what a failure leaves behind: the port is opened (and the pump found)
before the journal file is created, so a wrong `--port` leaves no empty journal; the journal
is opened before anything is resumed or started, so nothing reaches the pump unjournaled.
Signals (Ctrl-C, SIGTERM) stop the pump while the supervisor runs (`StopOnSignal`).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pumpctl.clock import Clock
from pumpctl.dosing.plan import Plan
from pumpctl.infusion.journal import Journal
from pumpctl.infusion.machine import Phase
from pumpctl.infusion.supervisor import Progress, RunResult, Supervisor, SupervisorConfig
from pumpctl.operator.connect import TransportFactory, connect

__all__ = ["RunSettings", "StopOnSignal", "run_session"]


@dataclass(frozen=True)
class RunSettings:
    """What `pumpctl run` was asked for, in the units the supervisor takes."""

    model: str
    port: str
    address: int | None = None
    baudrate: int | None = None
    journal: Path | None = None
    poll_s: float = 1.0
    time_scale: float = 1.0
    resume_stale: bool = False
    #: continue a run that was stopped or ended in an alarm (a crashed run resumes by itself)
    resume: bool = False
    #: start the program anew although the journal's last run was interrupted, and why
    new_run_reason: str | None = None
    who: str = "operator"
    announce_control: bool = True

    def supervisor_config(self) -> SupervisorConfig:
        # SR19: the pump's watchdog runs on pump time; on a scaled rig a wall-clock hiccup of
        # half a second is time_scale/2 pump seconds, so size it for that too (NE max 255 s)
        watchdog_s = min(255.0, max(10.0, 2 * self.poll_s, 0.5 * self.time_scale))
        return SupervisorConfig(poll_interval_s=self.poll_s, watchdog_timeout_s=watchdog_s)


class StopOnSignal:
    """Ctrl-C or SIGTERM while the supervisor runs: stop the pump (the run ends `stopped`).

    When the supervisor is already stopping the pump after an alarm (or an earlier request),
    a signal changes nothing: the stop under way continues until the pump confirms it or its
    deadline passes, and the run keeps its alarm outcome (exit 3, or 5 if unconfirmed).
    """

    def __init__(self, sup: Supervisor, echo: Callable[[str], None]) -> None:
        self.sup = sup
        self.echo = echo
        self.requested = False
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self) -> None:
        phase = self.sup.phase
        if phase is Phase.ALARM:
            self.echo("already stopping the pump after the alarm: waiting for it to confirm")
            return
        if self.requested or phase in (Phase.STOPPED, Phase.COMPLETED):
            self.echo("the pump is already being stopped: waiting for it to confirm")
            return
        self.requested = True
        self.echo("stop requested: stopping the pump")
        task = asyncio.ensure_future(self._stop())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stop(self) -> None:
        from pumpctl.infusion.supervisor import SupervisorError

        try:
            await self.sup.stop(reason="signal", who="operator")
        except SupervisorError as exc:  # the run ended (or alarmed) before the request ran
            self.echo(f"stop request not needed: {exc}")


async def _supervise(
    sup: Supervisor,
    plan: Plan,
    settings: RunSettings,
    echo: Callable[[str], None],
    on_stop_handler: Callable[[StopOnSignal], None] | None,
) -> RunResult:
    """Run `sup` with the signal handlers and, with a journal, the control socket."""
    stopper = StopOnSignal(sup, echo)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopper)
    if on_stop_handler is not None:
        on_stop_handler(stopper)
    try:
        if settings.journal is None:
            return await sup.run()
        from pumpctl.dosing.titration import dose_rate_to_ml_per_h
        from pumpctl.operator.control import ControlServer, control_socket_path

        def rate_parser(text: str) -> float:
            return dose_rate_to_ml_per_h(text, plan)

        path = control_socket_path(settings.journal)
        async with ControlServer(sup, path, rate_parser=rate_parser):
            if settings.announce_control:
                echo(f"control: pumpctl ctl --journal {settings.journal} status")
            return await sup.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def run_session(
    plan: Plan,
    settings: RunSettings,
    clock: Clock,
    *,
    echo: Callable[[str], None],
    on_progress: Callable[[Progress], None] | None = None,
    factory: TransportFactory | None = None,
    on_stop_handler: Callable[[StopOnSignal], None] | None = None,
) -> RunResult | None:
    """Connect, open the journal, resume or start, supervise; None when nothing remained.

    Raises `ConnectFailure` (nothing was sent, no journal created), `ResumeRefused`,
    `ControlError` (another run uses the journal), `JournalError`.
    """
    from pumpctl.runner import supervisor_for

    driver = await connect(
        settings.model,
        settings.port,
        clock,
        address=settings.address,
        baudrate=settings.baudrate,
        factory=factory,
    )
    jr: Journal | None = None
    try:
        jr = Journal(settings.journal) if settings.journal is not None else None
        sup, notes = await supervisor_for(
            plan,
            driver,
            clock,
            jr,
            config=settings.supervisor_config(),
            on_progress=on_progress,
            allow_stale=settings.resume_stale,
            resume=settings.resume,
            new_run_reason=settings.new_run_reason,
            who=settings.who,
        )
        for note in notes:
            echo(note)
        if sup is None:
            echo("nothing remains to be delivered: the interrupted run had finished")
            return None
        return await _supervise(sup, plan, settings, echo, on_stop_handler)
    finally:
        await driver.close()
        if jr is not None:
            jr.close()
