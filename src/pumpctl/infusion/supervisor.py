"""Runs a compiled plan on one pump: commands, polling, reconciliation, alarms, safe stop.

Policy lives here, bytes live in the drivers. The supervisor is a single task that owns the pump:
operator requests (`pumpctl.infusion.requests`) are queued to it and executed between polls, so
there is exactly one writer of pump state and of the phase machine. Its parts:

- `ledger`: the pure books of one segment (counter vs rate × time, SR22/SR23, what comes next);
- `legs`: container legs and changes (SR25);
- `handlers`: what pause, resume, titrate and a container change do;
- `commands` / `recorder`: every command journaled before it is sent (SR29), typed events;
- `safe_stop`: stop and confirm, with backoff (SR18).

Safety behaviour: the pump's own target volume ends each segment, so a dead controller cannot
over-infuse a segment (and the NE link watchdog stops the pump when the controller goes silent,
SR19); 3 missed polls or 5 s of silence is a communication alarm (SR17); a command whose reply
was lost is assumed executed and the state is re-read first (SR21); no automatic restart after
an alarm or stop (SR16, SR26).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from pumpctl.clock import Clock
from pumpctl.dosing.plan import Plan, SegmentPhase
from pumpctl.drivers.base import (
    PumpDriver,
)
from pumpctl.infusion.assembly import books_for, pk_leg_for, segment_runner_for, tolerances_for
from pumpctl.infusion.commands import PumpCommands
from pumpctl.infusion.config import SupervisorConfig
from pumpctl.infusion.container import ContainerLevel
from pumpctl.infusion.events import (
    AlarmEvent,
    DosingCompleteKvo,
    InfusionComplete,
    OverrideEvent,
    PlanAccepted,
    RunEnded,
    TransitionEvent,
)
from pumpctl.infusion.journal import Journal, RunStatus
from pumpctl.infusion.ledger import Alarm, LegState
from pumpctl.infusion.legs import ContainerLegs
from pumpctl.infusion.machine import InfusionMachine, Phase, TransitionRecord, Trigger
from pumpctl.infusion.outcome import Outcome, PhaseResult, Progress, RunResult
from pumpctl.infusion.preparation import prepare_pump
from pumpctl.infusion.recorder import RunRecorder
from pumpctl.infusion.requests import (
    BolusRequest,
    ContainerChangedRequest,
    PauseRequest,
    Queued,
    Request,
    ResumeRequest,
    StopRequest,
    SupervisorError,
    TargetRequest,
    TitrateRequest,
)
from pumpctl.infusion.resume import Carryover
from pumpctl.infusion.run_parts import ProgressGate, raise_alarm, run_progress, safe_stop
from pumpctl.infusion.segment import OperatorStop
from pumpctl.log import get_logger

__all__ = [
    "Outcome",
    "PhaseResult",
    "Progress",
    "RunResult",
    "Supervisor",
    "SupervisorConfig",
    "SupervisorError",
]


class Supervisor:
    """Executes `plan` on `driver` (already open). One instance per run."""

    def __init__(
        self,
        driver: PumpDriver,
        plan: Plan,
        clock: Clock,
        *,
        config: SupervisorConfig | None = None,
        journal: Journal | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        resumed_from: str | None = None,
        container_contents_ml: float | None = None,
        carryover: Carryover | None = None,
    ) -> None:
        """`resumed_from`: the journal run id this run continues (its plan is what remained);
        `carryover`: what it inherits from earlier runs (`pumpctl.runner.prepare_run`)."""
        self.driver = driver
        self.resumed_from = resumed_from
        self.carryover = carryover
        self.plan = plan
        self.clock = clock
        self.config = config or SupervisorConfig()
        self.journal = journal
        self._progress = (
            ProgressGate(self, on_progress, self.config.progress_interval_s)
            if on_progress is not None
            else None
        )
        #: called after every poll: the gate itself, or nothing when nobody watches
        self._emit_progress: Callable[..., None] = (
            self._progress if self._progress is not None else _no_progress
        )
        self.log = get_logger(
            "pumpctl.infusion.supervisor",
            pump_id=driver.pump_id,
            program_id=plan.program,
            library_version=plan.library_version,
        )
        self.machine = InfusionMachine(
            on_transition=self._on_transition,
            log_context={"pump_id": driver.pump_id, "program_id": plan.program},
        )
        self.recorder = RunRecorder(journal, clock, lambda: self.machine.phase.value)
        self.cmds = PumpCommands(self.recorder, clock)
        self._requests: asyncio.Queue[Queued] = asyncio.Queue()
        self._started = False
        self._ended = False
        #: the pump's link watchdog once enabled (SR19): it stops the pump this long after the
        #: last packet it heard (None: no watchdog)
        self.link_watchdog_s: float | None = None
        self.books = books_for(
            plan, tolerances_for(driver.capabilities, self.config, clock), carryover, clock.now()
        )
        kind = "syringe" if plan.container.inner_diameter_mm is not None else "reservoir"
        self.legs = ContainerLegs(
            ContainerLevel(plan.container.capacity_ml, kind, container_contents_ml),
            self.recorder,
            changes_allowed=plan.container.changes_allowed,
            planned_total_ml=plan.total_volume_ml,
        )
        #: the segment loop, with the operator-request handlers it serves between polls
        self.segments = segment_runner_for(
            self, requests=self._requests, emit_progress=self._emit_progress
        )
        self.pk = pk_leg_for(self, self.segments)
        self.segments.pk = self.pk

    @property
    def run_id(self) -> str | None:
        return self.recorder.run_id

    @property
    def started(self) -> bool:
        """The run is under way: requests are taken, progress may show the pump running."""
        return self._started

    def _take_capabilities(self) -> None:
        self.books.tolerances = tolerances_for(self.driver.capabilities, self.config, self.clock)
        self.books.rolling.tolerance_ml = self.books.tolerances.resolution_ml

    # ------------------------------------------------------------------ operator API

    async def pause(self, *, reason: str = "", who: str = "operator") -> None:
        await self._request(PauseRequest(reason=reason, who=who))

    async def resume(self, *, who: str = "operator") -> None:
        await self._request(ResumeRequest(who=who))

    async def stop(self, *, reason: str = "", who: str = "operator") -> None:
        await self._request(StopRequest(reason=reason, who=who))

    async def titrate(self, rate_ml_per_h: float, *, reason: str, who: str = "operator") -> None:
        """Change the maintenance rate (SR09-SR11); raises SupervisorError when refused."""
        await self._request(TitrateRequest(rate_ml_per_h=rate_ml_per_h, reason=reason, who=who))

    async def set_target(
        self, target_ug_per_ml: float, *, reason: str, who: str = "operator"
    ) -> None:
        """A new TCI target (SR09's step and interval); raises SupervisorError when refused."""
        await self._request(TargetRequest(target_ug_per_ml, reason=reason, who=who))

    async def bolus(self, dose_mg: float, *, reason: str, who: str = "operator") -> None:
        """A clinician bolus through the lockout; raises SupervisorError when refused."""
        await self._request(BolusRequest(dose_mg, reason=reason, who=who))

    async def container_changed(
        self, *, volume_ml: float | None = None, who: str = "operator"
    ) -> None:
        """The operator confirms a full new syringe/reservoir is in place (default: capacity)."""
        await self._request(ContainerChangedRequest(volume_ml=volume_ml, who=who))

    @property
    def phase(self) -> Phase:
        return self.machine.phase

    @property
    def awaiting_container_change(self) -> bool:
        """The pump stopped at the end of its syringe/reservoir; `container_changed` continues."""
        return self.books.ledger is not None and self.books.ledger.awaiting_change

    def progress(self) -> Progress:
        return run_progress(self)

    async def _request(self, request: Request) -> None:
        if not self._started:
            raise SupervisorError("the run has ended" if self._ended else "the run has not started")
        queued = Queued(request)
        await self._requests.put(queued)
        self.segments.wake()
        await queued.done

    # ------------------------------------------------------------------ the run

    async def run(self) -> RunResult:
        """Run the whole plan; returns when it completed, was stopped, or ended in an alarm."""
        # SR33: every log line of this task (supervisor and driver alike) carries who and where
        structlog.contextvars.bind_contextvars(
            pump_id=self.driver.pump_id,
            program_id=self.plan.program,
            library_version=self.plan.library_version,
            phase=self.machine.phase.value,
        )
        try:
            return await self._run()
        finally:
            structlog.contextvars.unbind_contextvars(
                "pump_id", "program_id", "library_version", "phase"
            )

    async def _run(self) -> RunResult:
        self._started = True
        started = self.clock.now()
        self.cmds.last_reply_s = started
        self._open_journal()
        self.log.info("run.start", segments=len(self.plan.segments), run_id=self.run_id)
        outcome = Outcome.COMPLETED
        alarm: str | None = None
        try:
            try:
                await self._run_segments()
            except OperatorStop as stop:
                outcome = Outcome.COMPLETED if self._only_kvo_left() else Outcome.STOPPED
                req = stop.request
                self.machine.fire(Trigger.STOP, reason=req.reason, who=req.who)
                if not await self._safe_stop("operator stop"):
                    # asked to stop, and the pump never confirmed it: someone must go and look
                    alarm, outcome = "stop_unconfirmed", Outcome.UNCONFIRMED
            except asyncio.CancelledError:
                # Whoever ran us gave up (Ctrl-C, shutdown): never leave the pump running unwatched.
                self.recorder.write(AlarmEvent(reason="cancelled"))
                if self.machine.may(Trigger.STOP):
                    self.machine.fire(Trigger.STOP, reason="controller cancelled")
                await self._safe_stop("controller cancelled")
                raise
            except Alarm:
                raise
            except Exception as exc:
                # A bug of ours must end like any other fault: alarm and a confirmed stop.
                self.log.exception("supervisor.internal_error")
                raise Alarm("internal_error", repr(exc)) from exc
        except Alarm as exc:
            alarm = exc.reason
            outcome = Outcome.ALARM
            self._raise_alarm(exc)
            if not await self._safe_stop(exc.reason):
                outcome = Outcome.UNCONFIRMED
        finally:
            self._started = False
            self._ended = True
            if self.books.ledger is not None and self.books.ledger.pump_running:
                self.books.ledger.enter(LegState.STOPPED, self.clock.now())
            self._fail_pending_requests()
        return self._finish(outcome, alarm, started)

    def _open_journal(self) -> None:
        plan = self.plan
        self.recorder.start(
            program=plan.program,
            program_hash=plan.program_hash,
            plan_json=plan.model_dump_json(),
            pump_model=self.driver.family,
            port=self.driver.transport.name,
            address=self.driver.address,
            accepted=PlanAccepted(warnings=list(plan.warnings), resumed_from=self.resumed_from),
            overrides=[OverrideEvent(**o.model_dump(mode="json")) for o in plan.overrides],
        )

    async def _run_segments(self) -> None:
        self.link_watchdog_s = await prepare_pump(
            self.driver,
            self.cmds,
            self.plan,
            watchdog_timeout_s=self.config.watchdog_timeout_s,
            poll_interval_s=self.config.poll_interval_s,
            log=self.log,
        )
        self._take_capabilities()  # they depend on the container just configured
        if self.plan.segments[0].phase is not SegmentPhase.PRIME:
            reason = (
                f"resumed from run {self.resumed_from}: the line was primed then"
                if self.resumed_from
                else "program has no prime phase"
            )
            self.machine.fire(Trigger.SKIP_PRIMING, reason=reason)
        for index, segment in enumerate(self.plan.segments):
            if segment.phase is SegmentPhase.KVO:
                self._notify_dosing_complete()
            await self.segments.run(
                segment,
                self.carryover if index == 0 else None,
                following=self.plan.segments[index + 1 :],
            )
            if segment.phase is SegmentPhase.PRIME:
                self.machine.fire(Trigger.PRIMING_DONE)
            if index == len(self.plan.segments) - 1:
                self.machine.fire(Trigger.COMPLETE)
        self.recorder.write(InfusionComplete())
        self.log.info("run.complete")

    def _finish(self, outcome: Outcome, alarm: str | None, started: float) -> RunResult:
        ended = self.clock.now()
        result = RunResult(
            outcome=outcome,
            alarm=alarm,
            phases=list(self.books.results.values()),
            started_s=started,
            ended_s=ended,
            volume_resolution_ml=self.books.tolerances.resolution_ml,
        )
        if self.recorder.active:
            self.recorder.write(RunEnded(result=result.model_dump(mode="json")))
            # the journal's run status is alarm for both alarm outcomes; the run_ended note
            # keeps the exact outcome (unconfirmed: the pump never confirmed the stop)
            status = RunStatus.ALARM if outcome is Outcome.UNCONFIRMED else RunStatus(outcome.value)
            self.recorder.set_status(status.value)
        self.log.info(
            "run.end",
            outcome=outcome.value,
            alarm=alarm,
            delivered_ml=round(result.delivered_ml, 6),
            clock_s=round(ended - started, 3),
        )
        self._emit_progress(force=True)
        return result

    def _notify_dosing_complete(self) -> None:
        """SR24: the planned volume is in; the pump goes on at the keep-vein-open rate."""
        delivered = self.books.delivered_ml
        self.recorder.write(DosingCompleteKvo(delivered_ml=delivered))
        self.log.warning(
            "infusion.complete",
            message="planned volume delivered; keep-vein-open rate running until stopped",
            delivered_ml=round(delivered, 6),
        )

    def _only_kvo_left(self) -> bool:
        ledger = self.books.ledger
        return ledger is not None and ledger.segment.phase is SegmentPhase.KVO

    def _fail_pending_requests(self) -> None:
        while not self._requests.empty():
            self._requests.get_nowait().fail(SupervisorError("the run has ended"))

    # ------------------------------------------------------------------ alarms and stop

    def _raise_alarm(self, exc: Alarm) -> None:
        raise_alarm(self, exc)

    async def _safe_stop(self, why: str) -> bool:
        return await safe_stop(self, why)

    # ------------------------------------------------------------------ helpers

    def _on_transition(self, record: TransitionRecord) -> None:
        structlog.contextvars.bind_contextvars(phase=record.dest.value)
        self.recorder.write(
            TransitionEvent(
                trigger=record.trigger.value,
                source=record.source.value,
                dest=record.dest.value,
                info=dict(record.info),
            )
        )


def _no_progress(*, force: bool = False) -> None:
    """No watcher: nothing to hand a progress to."""
