"""Runs a compiled plan on one pump: commands, polling, reconciliation, alarms, safe stop.

Policy lives here, bytes live in the drivers. The supervisor is a single task that owns the pump:
operator requests (pause, resume, stop, titrate) are queued to it and executed between polls, so
there is exactly one writer of pump state and of the phase machine.

Safety behaviour (ids from the project's safety requirements):
- the pump's own target volume ends each segment, so a dead controller cannot over-infuse a
  segment (and the NE link watchdog stops the pump when the controller goes silent, SR19);
- the pump's counter is the delivered volume; a rate × time accumulator cross-checks it (SR22);
- 3 missed polls or 5 s of silence is a communication alarm (SR17); any alarm ends in a stop that
  is retried until the pump confirms it or a deadline passes, which is reported loudly (SR18);
- a command whose reply was lost is assumed executed and the state is re-read first (SR21);
- no automatic restart after an alarm or stop (SR16, SR26).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field

from pumpctl.clock import Clock
from pumpctl.dosing.plan import Plan, Segment, SegmentPhase
from pumpctl.dosing.rolling import RollingTotals
from pumpctl.drivers.base import (
    AlarmReason,
    Capabilities,
    CommandRejected,
    DeliveredVolume,
    Direction,
    ProtocolError,
    PumpAlarm,
    PumpDriver,
    PumpError,
    PumpState,
    PumpStatus,
    PumpTimeout,
)
from pumpctl.infusion.container import ContainerLevel
from pumpctl.infusion.journal import EventKind, Journal, RunStatus
from pumpctl.infusion.machine import InfusionMachine, Phase, TransitionRecord, Trigger
from pumpctl.infusion.outcome import Outcome, PhaseResult, Progress, RunResult
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


class SupervisorError(Exception):
    """An operator request that is refused (wrong phase, titration limit...)."""


class SupervisorConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    poll_interval_s: float = Field(default=1.0, gt=0)
    #: SR17: this many consecutive missed polls, or this much silence, is a comm alarm
    max_missed_polls: int = Field(default=3, ge=1)
    max_silence_s: float = Field(default=5.0, gt=0)
    #: SR19: pump link watchdog, at least 2 x poll interval; None disables
    watchdog_timeout_s: float | None = Field(default=10.0, gt=0)
    #: SR15: paused longer than this raises an alarm (the patient gets no drug)
    max_pause_s: float = Field(default=15 * 60.0, gt=0)
    #: SR22: allowed |pump counter - rate x time| beyond stated accuracy and timing jitter
    deviation_floor_ml: float = Field(default=0.05, ge=0)
    #: SR18: how long to keep retrying the stop before reporting it unconfirmed
    stop_confirm_deadline_s: float = Field(default=30.0, gt=0)
    stop_retry_interval_s: float = Field(default=0.5, gt=0)
    #: journal a delivered-volume checkpoint at least this often (clock seconds)
    checkpoint_interval_s: float = Field(default=60.0, gt=0)


class _Alarm(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class _OperatorStop(Exception):
    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__("operator stop")
        self.info = info


_START = {
    SegmentPhase.PRIME: Trigger.START_PRIMING,
    SegmentPhase.LOADING: Trigger.START_LOADING,
    SegmentPhase.MAINTENANCE: Trigger.START_MAINTENANCE,
    SegmentPhase.KVO: Trigger.START_KVO,
}


@dataclass
class _Request:
    kind: str
    args: dict[str, Any]
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass
class _SegmentRun:
    segment: Segment
    rate_ml_per_h: float
    started_s: float
    delivered_ml: float = 0.0
    expected_ml: float = 0.0
    last_accrual_s: float = 0.0
    pump_running: bool = False
    pending_start: bool = True
    needs_restart: bool = False
    paused_at_s: float | None = None
    last_increase_s: float | None = None
    ended_s: float | None = None
    #: delivered in earlier legs of this segment (before a container change cleared the counter)
    carry_ml: float = 0.0
    #: segment volume at which the pump stops itself (its target), None = runs until stopped
    stop_at_ml: float | None = None
    awaiting_change: bool = False


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
    ) -> None:
        """`resumed_from`: the journal run id this run continues (its plan is what remained)."""
        self.driver = driver
        self.resumed_from = resumed_from
        self.plan = plan
        self.clock = clock
        self.config = config or SupervisorConfig()
        self.journal = journal
        self.run_id: str | None = None
        self._on_progress = on_progress
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
        self._requests: asyncio.Queue[_Request] = asyncio.Queue()
        self._results: dict[SegmentPhase, PhaseResult] = {
            s.phase: PhaseResult(
                phase=s.phase,
                planned_ml=s.volume_ml,
                delivered_ml=0.0,
                rate_ml_per_h=s.rate_ml_per_h,
            )
            for s in plan.segments
        }
        self._seg: _SegmentRun | None = None
        self._alarms: list[str] = []
        self._missed_polls = 0
        self._last_reply_s = 0.0
        self._last_checkpoint_s = -math.inf
        self._started = False
        self._ended = False
        # SR08: (clock s, total mL delivered so far) samples for the rolling-window totals
        self._rolling = RollingTotals(
            plan.rolling_limits.by_window() if plan.rolling_limits else {}, tolerance_ml=0.0
        )
        self._take_capabilities()
        self._done_ml = 0.0  # delivered by segments already finished
        # container (syringe or reservoir) contents: assumed full at the start unless told
        self._container = ContainerLevel(
            plan.container.capacity_ml,
            "syringe" if plan.container.inner_diameter_mm is not None else "reservoir",
            container_contents_ml,
        )
        self._notices: list[str] = []

    def _take_capabilities(self) -> Capabilities:
        """Resolution, accuracy and rate step the checks allow for, from the pump as configured."""
        caps = self.driver.capabilities
        self._resolution_ml = caps.volume_resolution_ml
        self._accuracy = caps.accuracy_percent / 100.0
        self._rate_step_ml_per_h = caps.rate_resolution_ml_per_h
        self._rolling.tolerance_ml = caps.volume_resolution_ml
        return caps

    # ------------------------------------------------------------------ operator API

    async def pause(self, *, reason: str = "", who: str = "operator") -> None:
        await self._request("pause", reason=reason, who=who)

    async def resume(self, *, who: str = "operator") -> None:
        await self._request("resume", who=who)

    async def stop(self, *, reason: str = "", who: str = "operator") -> None:
        await self._request("stop", reason=reason, who=who)

    async def titrate(self, rate_ml_per_h: float, *, reason: str, who: str = "operator") -> None:
        """Change the maintenance rate (SR09-SR11); raises SupervisorError when refused."""
        await self._request("titrate", rate_ml_per_h=rate_ml_per_h, reason=reason, who=who)

    @property
    def phase(self) -> Phase:
        return self.machine.phase

    @property
    def awaiting_container_change(self) -> bool:
        """The pump stopped at the end of its syringe/reservoir; `container_changed` continues."""
        return self._seg is not None and self._seg.awaiting_change

    def progress(self) -> Progress:
        seg = self._seg
        planned = self.plan.total_volume_ml
        delivered = sum(r.delivered_ml for r in self._results.values())
        remaining_s: float | None = None
        if seg is not None and seg.segment.volume_ml is not None and seg.rate_ml_per_h > 0:
            left = max(0.0, seg.segment.volume_ml - seg.delivered_ml)
            remaining_s = left / seg.rate_ml_per_h * 3600.0
        dose_rate: float | None = None
        if seg is not None and seg.segment.dose_rate is not None:
            dose_rate = seg.segment.dose_rate * seg.rate_ml_per_h / seg.segment.rate_ml_per_h
        return Progress(
            clock_s=self.clock.now(),
            phase=self.machine.phase.value,
            segment=seg.segment.phase if seg else None,
            rate_ml_per_h=(
                seg.rate_ml_per_h if seg and seg.pump_running and seg.paused_at_s is None else 0.0
            ),
            dose_rate=dose_rate,
            dose_rate_unit=seg.segment.dose_rate_unit if seg else None,
            segment_delivered_ml=seg.delivered_ml if seg else 0.0,
            segment_planned_ml=seg.segment.volume_ml if seg else None,
            total_delivered_ml=delivered,
            total_planned_ml=planned,
            segment_remaining_s=remaining_s,
            alarms=list(self._alarms),
            notices=list(self._notices),
        )

    async def _request(self, kind: str, **args: Any) -> None:
        if not self._started:
            raise SupervisorError("the run has ended" if self._ended else "the run has not started")
        req = _Request(kind, args)
        await self._requests.put(req)
        await req.done

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
        self._last_reply_s = started
        if self.journal is not None:
            self.run_id = self.journal.start_run(
                program=self.plan.program,
                program_hash=self.plan.program_hash,
                plan_json=self.plan.model_dump_json(),
                pump_model=self.driver.family,
                port=self.driver.transport.name,
                address=self.driver.address,
                t_clock_s=started,
            )
            self._journal(
                EventKind.NOTE,
                {
                    "event": "plan_accepted",
                    "warnings": list(self.plan.warnings),
                    "resumed_from": self.resumed_from,
                },
            )
        self.log.info("run.start", segments=len(self.plan.segments), run_id=self.run_id)
        outcome = Outcome.COMPLETED
        alarm: str | None = None
        try:
            try:
                await self._prepare_pump()
                if self.plan.segments[0].phase is not SegmentPhase.PRIME:
                    reason = (
                        f"resumed from run {self.resumed_from}: the line was primed then"
                        if self.resumed_from
                        else "program has no prime phase"
                    )
                    self._fire(Trigger.SKIP_PRIMING, reason=reason)
                for index, segment in enumerate(self.plan.segments):
                    if segment.phase is SegmentPhase.KVO:
                        self._notify_dosing_complete()
                    await self._run_segment(segment)
                    if segment.phase is SegmentPhase.PRIME:
                        self._fire(Trigger.PRIMING_DONE)
                    if index == len(self.plan.segments) - 1:
                        self._fire(Trigger.COMPLETE)
                self._journal(EventKind.NOTE, {"event": "infusion_complete"})
                self.log.info("run.complete")
            except _OperatorStop as stop:
                outcome = Outcome.COMPLETED if self._only_kvo_left() else Outcome.STOPPED
                self._fire(Trigger.STOP, **stop.info)
                await self._safe_stop("operator stop")
            except asyncio.CancelledError:
                # Whoever ran us gave up (Ctrl-C, shutdown): never leave the pump running unwatched.
                self._journal(EventKind.ALARM, {"reason": "cancelled"})
                if self.machine.may(Trigger.STOP):
                    self._fire(Trigger.STOP, reason="controller cancelled")
                await self._safe_stop("controller cancelled")
                raise
            except _Alarm:
                raise
            except Exception as exc:
                # A bug of ours must end like any other fault: alarm and a confirmed stop.
                self.log.exception("supervisor.internal_error")
                raise _Alarm("internal_error", repr(exc)) from exc
        except _Alarm as exc:
            alarm = exc.reason
            outcome = Outcome.ALARM
            await self._raise_alarm(exc)
            if not await self._safe_stop(exc.reason):
                outcome = Outcome.UNCONFIRMED
        finally:
            self._started = False
            self._ended = True
            if self._seg is not None:
                self._seg.pump_running = False
            self._fail_pending_requests()
        ended = self.clock.now()
        result = RunResult(
            outcome=outcome,
            alarm=alarm,
            phases=list(self._results.values()),
            started_s=started,
            ended_s=ended,
            volume_resolution_ml=self._resolution_ml,
        )
        if self.journal is not None and self.run_id is not None:
            self._journal(
                EventKind.NOTE, {"event": "run_ended", "result": result.model_dump(mode="json")}
            )
            # the journal's run status is alarm for both alarm outcomes; the run_ended note above
            # keeps the exact outcome (unconfirmed: the pump never confirmed the stop)
            status = RunStatus.ALARM if outcome is Outcome.UNCONFIRMED else RunStatus(outcome.value)
            self.journal.set_run_status(self.run_id, status.value)
        self.log.info(
            "run.end",
            outcome=outcome.value,
            alarm=alarm,
            delivered_ml=round(result.delivered_ml, 6),
            clock_s=round(ended - started, 3),
        )
        self._emit_progress()
        return result

    def _notify_dosing_complete(self) -> None:
        """SR24: the planned volume is in; the pump goes on at the keep-vein-open rate."""
        delivered = sum(r.delivered_ml for r in self._results.values())
        self._journal(EventKind.NOTE, {"event": "dosing_complete_kvo", "delivered_ml": delivered})
        self.log.warning(
            "infusion.complete",
            message="planned volume delivered; keep-vein-open rate running until stopped",
            delivered_ml=round(delivered, 6),
        )

    def _only_kvo_left(self) -> bool:
        seg = self._seg
        return seg is not None and seg.segment.phase is SegmentPhase.KVO

    async def _prepare_pump(self) -> None:
        """Known state before the first drop: stopped, identified, syringe set, counters zero."""
        try:
            ident = await self.driver.identify()
        except PumpAlarm as exc:
            if exc.reason is not AlarmReason.RESET:
                raise _Alarm(exc.reason.value, "pump in alarm before the run started") from exc
            # A power-up reset reported before we sent anything is expected, not a fault:
            # the alarm reply acknowledged it, so ask again.
            self._journal(EventKind.NOTE, {"event": "power_up_reset_acknowledged"})
            ident = await self._call("identify", self.driver.identify, idempotent=True)
        except PumpError as exc:
            raise _Alarm("communication_lost", f"pump did not identify: {exc}") from exc
        self.log.info("pump.identified", model=ident.model, firmware=ident.firmware)
        await self._call("stop", self.driver.stop)
        container = self.plan.container
        if container.inner_diameter_mm is not None:
            await self._call(
                "configure_syringe",
                lambda: self.driver.configure_syringe(container.inner_diameter_mm or 0.0),
                inner_diameter_mm=container.inner_diameter_mm,
            )
            # pumps that know the syringe's size (Harvard Elite `svolume`) refuse targets above it
            set_capacity = getattr(self.driver, "configure_syringe_volume", None)
            if container.capacity_ml is not None and callable(set_capacity):
                capacity = container.capacity_ml
                await self._call(
                    "configure_syringe_volume",
                    lambda: set_capacity(capacity),
                    capacity_ml=capacity,
                )
        elif container.ml_per_rev is not None:
            await self._call(
                "configure_tubing",
                lambda: self.driver.configure_tubing(container.ml_per_rev or 0.0),
                ml_per_rev=container.ml_per_rev,
            )
        caps = self._take_capabilities()  # they depend on the syringe just configured
        for seg in self.plan.segments:
            if not caps.min_rate_ml_per_h <= seg.rate_ml_per_h <= caps.max_rate_ml_per_h:
                raise _Alarm(
                    "rate_out_of_pump_range",
                    f"{seg.phase.value} rate {seg.rate_ml_per_h} mL/h outside the pump's "
                    f"{caps.min_rate_ml_per_h}..{caps.max_rate_ml_per_h} mL/h",
                )
        wd = self.config.watchdog_timeout_s
        if wd is not None and caps.has_link_watchdog:
            wd = max(wd, 2 * self.config.poll_interval_s)  # SR19
            await self._call(
                "enable_link_watchdog", lambda: self.driver.enable_link_watchdog(wd), timeout_s=wd
            )

    # ------------------------------------------------------------------ one segment

    async def _run_segment(self, segment: Segment) -> None:
        now = self.clock.now()
        self._fire(
            _START[segment.phase], rate_ml_per_h=segment.rate_ml_per_h, volume_ml=segment.volume_ml
        )
        seg = _SegmentRun(
            segment=segment, rate_ml_per_h=segment.rate_ml_per_h, started_s=now, last_accrual_s=now
        )
        self._seg = seg
        self._results[segment.phase].started_s = now
        self._journal(EventKind.SEGMENT_START, segment.model_dump(mode="json"))
        await self._start_leg(seg)
        next_poll = self.clock.now() + self.config.poll_interval_s
        while True:
            req = await self._next_request(next_poll)
            if req is not None:
                await self._handle(req, seg)
                continue
            next_poll = self.clock.now() + self.config.poll_interval_s
            if await self._poll(seg):
                break
            if seg.needs_restart:
                seg.needs_restart = False
                self.log.warning("pump.restart_after_unknown_start", phase=segment.phase.value)
                await self._start_pump(seg)
        seg.ended_s = self.clock.now()
        result = self._results[segment.phase]
        result.ended_s = seg.ended_s
        self._done_ml += seg.delivered_ml
        self._checkpoint(seg, force=True)
        self._journal(
            EventKind.SEGMENT_END,
            {
                "phase": segment.phase.value,
                "planned_ml": segment.volume_ml,
                "delivered_ml": seg.delivered_ml,
            },
        )

    async def _start_leg(self, seg: _SegmentRun) -> None:
        """Counters cleared, rate set, and the pump's own target set to what this leg may deliver:
        the rest of the segment or the rest of the container, whichever is less. The pump then
        stops itself exactly when either runs out (a dead controller cannot over-infuse)."""
        segment = seg.segment
        await self._call("clear_counters", self.driver.clear_counters)
        await self._call(
            "set_rate",
            lambda: self.driver.set_rate(seg.rate_ml_per_h, Direction.INFUSE),
            rate_ml_per_h=seg.rate_ml_per_h,
        )
        target = self._leg_target(seg)
        seg.stop_at_ml = None if target is None else seg.carry_ml + target
        await self._call(
            "set_target_volume",
            lambda: self.driver.set_target_volume(target),
            volume_ml=target,
            segment_volume_ml=segment.volume_ml,
        )
        await self._start_pump(seg)

    def _leg_target(self, seg: _SegmentRun) -> float | None:
        limits = []
        remaining = None
        if seg.segment.volume_ml is not None:
            remaining = seg.segment.volume_ml - seg.carry_ml
            limits.append(remaining)
        left = self._container_left_ml(seg)
        if left is not None and (remaining is None or left < remaining):
            # the container runs out first: stop a little short of the plunger bottoming out
            # (a change should start with the pump stopped at its target, not a stall alarm)
            limits.append(left - self._container.reserve_ml())
        if not limits:
            return None
        # no second rounding here: the plan's volumes are already rounded (plan.py), and the
        # container limit keeps a reserve far larger than any pump step; the driver quantizes
        target = min(limits)
        if target < self._resolution_ml:
            raise _Alarm(
                "container_empty",
                f"nothing left to deliver from the {self._container.kind} ({left:.3f} mL left)"
                if left is not None
                else "nothing left to deliver",
            )
        return round(target, 9)

    def _container_left_ml(self, seg: _SegmentRun | None = None) -> float | None:
        return self._container.left_ml(self._done_ml + (seg.delivered_ml if seg else 0.0))

    def _check_container(self, seg: _SegmentRun) -> None:
        """SR25: say so before the container runs empty."""
        total = self._done_ml + seg.delivered_ml
        planned = self.plan.total_volume_ml
        still_needed = None if planned is None else planned - total
        left = self._container.needs_warning(total, seg.rate_ml_per_h, still_needed)
        if left is None:
            return
        notice = f"{self._container.kind} nearly empty: {max(left, 0.0):.2f} mL left"
        self._notices.append(notice)
        self._journal(EventKind.NOTE, {"event": "container_near_empty", "left_ml": left})
        self.log.warning("container.near_empty", left_ml=round(left, 4))

    def _container_empty(self, seg: _SegmentRun) -> None:
        """The pump stopped at the end of the container with the segment unfinished."""
        kind = self._container.kind
        if not self.plan.container.changes_allowed:
            raise _Alarm(
                "container_empty",
                f"{kind} empty with {(seg.segment.volume_ml or 0.0) - seg.delivered_ml:.3f} mL of "
                f"{seg.segment.phase.value} left; the program does not allow changes (SR25)",
            )
        now = self.clock.now()
        seg.awaiting_change = True
        seg.paused_at_s = now
        seg.pump_running = False
        notice = (
            f"{kind} change needed: confirm with container_changed (pumpctl ctl syringe-changed)"
        )
        self._notices.append(notice)
        self._journal(EventKind.NOTE, {"event": "container_change_needed", "kind": kind})
        self.log.warning("container.change_needed", kind=kind)
        self._fire(Trigger.PAUSE, reason=f"{kind} change")

    async def _do_container_changed(self, seg: _SegmentRun, args: dict[str, Any]) -> None:
        if not seg.awaiting_change:
            raise SupervisorError("no container change is pending")
        volume = args.get("volume_ml")
        fill = float(volume) if volume is not None else self._container.capacity_ml
        if fill is None or fill <= 0:
            raise SupervisorError("give the new container's volume in mL")
        total = self._done_ml + seg.delivered_ml
        self._journal(
            EventKind.NOTE,
            {"event": "container_changed", "fill_ml": fill, "delivered_before_ml": total, **args},
        )
        self._container.refilled(fill, total)
        self._notices = [n for n in self._notices if "change needed" not in n and "nearly" not in n]
        seg.carry_ml = seg.delivered_ml
        seg.awaiting_change = False
        seg.paused_at_s = None
        seg.last_accrual_s = self.clock.now()
        self._fire(Trigger.RESUME, **args)
        await self._start_leg(seg)

    async def container_changed(
        self, *, volume_ml: float | None = None, who: str = "operator"
    ) -> None:
        """The operator confirms a full new syringe/reservoir is in place (default: capacity)."""
        await self._request("container_changed", volume_ml=volume_ml, who=who)

    async def _start_pump(self, seg: _SegmentRun) -> None:
        try:
            await self._call("start", self.driver.start)
        except PumpTimeout:
            # SR21: outcome unknown -> assume it ran; the next poll re-reads state before
            # anything else is sent, and only re-sends RUN if the pump is provably not running.
            seg.pending_start = True
            seg.pump_running = True
            return
        seg.pending_start = False
        seg.pump_running = True
        seg.last_accrual_s = self.clock.now()

    async def _next_request(self, deadline_s: float) -> _Request | None:
        if not self._requests.empty():
            return self._requests.get_nowait()
        wait = deadline_s - self.clock.now()
        if wait <= 0:
            return None
        try:
            async with self.clock.timeout(wait):
                return await self._requests.get()
        except TimeoutError:
            return None

    # ------------------------------------------------------------------ polling

    async def _poll(self, seg: _SegmentRun) -> bool:
        """One status + volume poll. Returns True when the segment is complete."""
        now = self.clock.now()
        try:
            status, delivered = await self.driver.read_poll()
        except PumpAlarm as exc:
            raise _Alarm(exc.reason.value, str(exc)) from exc
        except (PumpTimeout, ProtocolError) as exc:
            self._missed_polls += 1
            silence = now - self._last_reply_s
            self.log.warning(
                "poll.missed",
                missed=self._missed_polls,
                silence_s=round(silence, 3),
                error=str(exc),
            )
            if (
                self._missed_polls >= self.config.max_missed_polls
                or silence >= self.config.max_silence_s
            ):
                raise _Alarm(
                    "communication_lost",
                    f"{self._missed_polls} missed polls, {silence:.1f} s without a valid reply",
                ) from exc
            return False
        except PumpError as exc:
            raise _Alarm("pump_error", str(exc)) from exc
        self._missed_polls = 0
        # the counter was read when the reply came back, not when the poll began: on a rig
        # running 1000x faster than real time a 10 ms reply is 10 s of pumping
        replied = self.clock.now()
        self._last_reply_s = replied
        return self._reconcile(seg, status, delivered, replied)

    def _reconcile(
        self, seg: _SegmentRun, status: PumpStatus, delivered: DeliveredVolume, now: float
    ) -> bool:
        if status.state is PumpState.ALARM:
            reason = status.alarm.value if status.alarm else AlarmReason.OTHER.value
            raise _Alarm(reason, f"pump reports alarm ({status.raw})")
        # accrue the expected volume for the time the pump was believed running (SR22)
        if seg.pump_running and seg.paused_at_s is None:
            seg.expected_ml += seg.rate_ml_per_h * (now - seg.last_accrual_s) / 3600.0
        seg.last_accrual_s = now
        seg.delivered_ml = seg.carry_ml + delivered.net_ml
        self._results[seg.segment.phase].delivered_ml = seg.delivered_ml
        target = seg.segment.volume_ml
        if target is not None and seg.delivered_ml > target + self._resolution_ml:
            raise _Alarm(  # SR23
                "over_delivery",
                f"{seg.segment.phase.value}: pump counter {seg.delivered_ml} mL"
                f" > planned {target} mL",
            )
        stop_at = seg.stop_at_ml
        expected = min(seg.expected_ml, stop_at) if stop_at is not None else seg.expected_ml
        running_h = expected / seg.rate_ml_per_h if seg.rate_ml_per_h > 0 else 0.0
        tolerance = (
            self.config.deviation_floor_ml
            + self._accuracy * expected
            + 2 * self._resolution_ml
            # the pump can only set the rate to within half its rate step (0.1 rpm on a
            # peristaltic drive is several percent at low speed)
            + self._rate_step_ml_per_h / 2 * running_h
            + seg.rate_ml_per_h * 2 * self.config.poll_interval_s / 3600.0
        )
        if abs(seg.delivered_ml - expected) > tolerance:
            raise _Alarm(
                "volume_deviation",
                f"{seg.segment.phase.value}: pump counted {seg.delivered_ml:.4f} mL, "
                f"expected {expected:.4f} ± {tolerance:.4f} mL",
            )
        self._check_rolling_totals(now, self._done_ml + seg.delivered_ml)
        self._check_container(seg)
        self._checkpoint(seg)
        self._emit_progress()
        if seg.paused_at_s is not None:
            if now - seg.paused_at_s >= self.config.max_pause_s:  # SR15
                raise _Alarm("paused_too_long", f"paused for {now - seg.paused_at_s:.0f} s")
            return False
        if status.state is PumpState.RUNNING:
            seg.pending_start = False
            return False
        if stop_at is not None and seg.delivered_ml >= stop_at - self._resolution_ml:
            seg.pump_running = False  # the pump reached its own target and stopped by itself
            if target is not None and seg.delivered_ml >= target - self._resolution_ml:
                return True  # the segment is done
            # a leg target short of the segment only exists when the container limits it
            self._container_empty(seg)
            return False
        if seg.pending_start and seg.delivered_ml <= self._resolution_ml:
            # SR21: the state was re-read and the RUN provably did not execute: send it again
            seg.needs_restart = True
            return False
        raise _Alarm(
            "unexpected_stop",
            f"pump {status.state.value} at {seg.delivered_ml} mL of {target} mL without a command",
        )

    def _check_rolling_totals(self, now: float, total_ml: float) -> None:
        """SR08: drug delivered in any 1 h / 4 h / 24 h window stays under the library max."""
        excess = self._rolling.add(now, total_ml)
        if excess is not None:
            window_s, in_window_ml, max_ml = excess
            raise _Alarm(
                "rolling_limit",
                f"{in_window_ml:.3f} mL delivered in the last {window_s / 3600:g} h exceeds "
                f"the library maximum {max_ml:.3f} mL",
            )

    # ------------------------------------------------------------------ operator requests

    async def _handle(self, req: _Request, seg: _SegmentRun) -> None:
        try:
            if req.kind == "stop":
                self._journal(EventKind.NOTE, {"event": "stop_requested", **req.args})
                if not req.done.done():  # the caller may have given up waiting
                    req.done.set_result(None)
                raise _OperatorStop(req.args)
            if req.kind == "pause":
                await self._do_pause(seg, req.args)
            elif req.kind == "resume":
                await self._do_resume(seg, req.args)
            elif req.kind == "titrate":
                await self._do_titrate(seg, req.args)
            elif req.kind == "container_changed":
                await self._do_container_changed(seg, req.args)
            else:  # pragma: no cover - internal misuse
                raise SupervisorError(f"unknown request {req.kind}")
        except SupervisorError as exc:
            if not req.done.done():
                req.done.set_exception(exc)
            return
        except BaseException as exc:
            if not req.done.done():
                req.done.set_exception(SupervisorError(f"{req.kind} failed: {exc}"))
            raise
        if not req.done.done():
            req.done.set_result(None)

    async def _do_pause(self, seg: _SegmentRun, args: dict[str, Any]) -> None:
        if not self.machine.may(Trigger.PAUSE):
            raise SupervisorError(f"cannot pause in phase {self.machine.phase.value}")
        await self._call("pause", self.driver.pause, **args)
        now = self.clock.now()
        seg.expected_ml += seg.rate_ml_per_h * (now - seg.last_accrual_s) / 3600.0
        seg.last_accrual_s = now
        seg.paused_at_s = now
        self._fire(Trigger.PAUSE, **args)

    async def _do_resume(self, seg: _SegmentRun, args: dict[str, Any]) -> None:
        if not self.machine.may(Trigger.RESUME):
            raise SupervisorError(f"cannot resume in phase {self.machine.phase.value}")
        if seg.awaiting_change:
            raise SupervisorError("confirm the container change first (container_changed)")
        await self._call("start", self.driver.start, **args)
        seg.paused_at_s = None
        seg.last_accrual_s = self.clock.now()
        self._fire(Trigger.RESUME, **args)

    async def _do_titrate(self, seg: _SegmentRun, args: dict[str, Any]) -> None:
        from pumpctl.dosing.titration import TitrationRefused, check_titration

        new_rate = float(args["rate_ml_per_h"])
        if not self.machine.may(Trigger.TITRATE):
            raise SupervisorError(
                "titration is only allowed in maintenance, "
                f"not in {self.machine.phase.value} (SR09)"
            )
        limits = self.plan.titration
        now = self.clock.now()
        old_rate = seg.rate_ml_per_h
        if limits is None and new_rate > old_rate:
            # no titration limits known: only decreases are safe (SR09)
            raise SupervisorError(
                "this plan has no titration limits: only decreases are allowed (SR09)"
            )
        if limits is not None:
            try:
                check_titration(
                    limits,
                    current_ml_per_h=old_rate,
                    requested_ml_per_h=new_rate,
                    now_s=now,
                    last_increase_s=seg.last_increase_s,
                )
            except TitrationRefused as exc:
                self._journal(
                    EventKind.TITRATION,
                    {
                        "accepted": False,
                        "old_ml_per_h": old_rate,
                        "new_ml_per_h": new_rate,
                        "error": str(exc),
                        **args,
                    },
                )
                raise SupervisorError(str(exc)) from exc
        caps = self.driver.capabilities
        if not caps.min_rate_ml_per_h <= new_rate <= caps.max_rate_ml_per_h:
            raise SupervisorError(
                f"rate {new_rate} mL/h outside the pump's range "
                f"{caps.min_rate_ml_per_h}..{caps.max_rate_ml_per_h} mL/h"
            )
        self._journal(  # SR10: journaled before it is sent
            EventKind.TITRATION,
            {"accepted": True, "old_ml_per_h": old_rate, "new_ml_per_h": new_rate, **args},
        )
        # accrue at the old rate up to now, then switch
        if seg.paused_at_s is None:
            seg.expected_ml += old_rate * (now - seg.last_accrual_s) / 3600.0
        seg.last_accrual_s = now
        try:
            await self._call(
                "set_rate",
                lambda: self.driver.set_rate(new_rate, Direction.INFUSE),
                rate_ml_per_h=new_rate,
            )
        except PumpTimeout as exc:  # SR11: unconfirmed rate change is an alarm
            raise _Alarm("rate_change_unconfirmed", f"{old_rate} -> {new_rate} mL/h") from exc
        seg.rate_ml_per_h = new_rate
        if new_rate > old_rate:
            seg.last_increase_s = now
        self._results[seg.segment.phase].rate_ml_per_h = new_rate
        self._fire(Trigger.TITRATE, old_ml_per_h=old_rate, new_ml_per_h=new_rate, **args)

    def _fail_pending_requests(self) -> None:
        while not self._requests.empty():
            req = self._requests.get_nowait()
            if not req.done.done():
                req.done.set_exception(SupervisorError("the run has ended"))

    # ------------------------------------------------------------------ alarms and stop

    async def _raise_alarm(self, exc: _Alarm) -> None:
        self._alarms.append(exc.reason)
        self.log.error(
            "alarm", reason=exc.reason, detail=exc.detail, phase=self.machine.phase.value
        )
        if self._seg is not None:
            # the last counter reading we trust, before anything else can fail (SR29)
            self._checkpoint(self._seg, force=True)
        self._journal(EventKind.ALARM, {"reason": exc.reason, "detail": exc.detail})
        if self.machine.may(Trigger.ALARM):
            self._fire(Trigger.ALARM, reason=exc.reason, detail=exc.detail)

    async def _safe_stop(self, why: str) -> bool:
        """Stop the pump and confirm it; keep trying until the deadline (SR18)."""
        deadline = self.clock.now() + self.config.stop_confirm_deadline_s
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.driver.stop()
                status = await self.driver.read_status()
                if status.state is not PumpState.RUNNING:
                    self._journal(
                        EventKind.NOTE, {"event": "stop_confirmed", "why": why, "attempts": attempt}
                    )
                    self.log.info(
                        "pump.stop_confirmed", why=why, attempts=attempt, state=status.state.value
                    )
                    await self._final_reading()
                    return True
            except PumpAlarm as exc:
                # The alarm reply acknowledged the alarm and the stop was not executed: resend at
                # once (a pump reports each alarm once, so this converges in a few attempts).
                self.log.warning("pump.stop_alarm_reply", reason=exc.reason.value, attempt=attempt)
                if attempt < 5:
                    continue
            except PumpError as exc:
                self.log.warning("pump.stop_failed", attempt=attempt, error=str(exc))
            if self.clock.now() >= deadline:
                self.log.critical(
                    "pump.stop_unconfirmed",
                    why=why,
                    attempts=attempt,
                    message="THE PUMP DID NOT CONFIRM THE STOP: check it by hand",
                )
                self._journal(EventKind.ALARM, {"reason": "stop_unconfirmed", "attempts": attempt})
                return False
            # back off (0.5, 1, 2, 4 s, then every 5 s) so a struggling link is not flooded
            backoff = self.config.stop_retry_interval_s * 2 ** min(attempt - 1, 3)
            await self.clock.sleep(min(backoff, 5.0))

    async def _final_reading(self) -> None:
        seg = self._seg
        if seg is None:
            return
        try:
            delivered = await self.driver.read_delivered()
        except PumpError as exc:
            self.log.warning("pump.final_reading_failed", error=str(exc))
            return
        seg.delivered_ml = max(seg.delivered_ml, delivered.net_ml)
        self._results[seg.segment.phase].delivered_ml = seg.delivered_ml
        self._results[seg.segment.phase].ended_s = self.clock.now()
        self._checkpoint(seg, force=True)

    # ------------------------------------------------------------------ helpers

    async def _call(
        self,
        what: str,
        action: Callable[[], Awaitable[Any]],
        *,
        idempotent: bool = False,
        **fields: Any,
    ) -> Any:
        """Journal the command (SR29), then send it; map pump errors to alarms."""
        self._journal(EventKind.COMMAND, {"command": what, **fields})
        try:
            result = await action()
        except PumpTimeout:
            self._journal(EventKind.REPLY, {"command": what, "outcome": "unknown"})
            if idempotent:
                raise _Alarm("communication_lost", f"no reply to {what}") from None
            raise
        except PumpAlarm as exc:
            self._journal(
                EventKind.REPLY, {"command": what, "outcome": "alarm", "reason": exc.reason.value}
            )
            raise _Alarm(exc.reason.value, f"pump alarm in reply to {what}") from exc
        except CommandRejected as exc:
            self._journal(
                EventKind.REPLY, {"command": what, "outcome": "rejected", "code": exc.code}
            )
            raise _Alarm("command_rejected", f"{what}: {exc}") from exc
        except PumpError as exc:
            self._journal(EventKind.REPLY, {"command": what, "outcome": "error", "error": str(exc)})
            raise _Alarm("pump_error", f"{what}: {exc}") from exc
        self._last_reply_s = self.clock.now()
        self._journal(EventKind.REPLY, {"command": what, "outcome": "ok"})
        return result

    def _fire(self, trigger: Trigger, **info: Any) -> None:
        self.machine.fire(trigger, **info)

    def _on_transition(self, record: TransitionRecord) -> None:
        structlog.contextvars.bind_contextvars(phase=record.dest.value)
        self._journal(
            EventKind.TRANSITION,
            {
                "trigger": record.trigger.value,
                "source": record.source.value,
                "dest": record.dest.value,
                "info": record.info,
            },
        )

    def _checkpoint(self, seg: _SegmentRun, *, force: bool = False) -> None:
        now = self.clock.now()
        if not force and now - self._last_checkpoint_s < self.config.checkpoint_interval_s:
            return
        self._last_checkpoint_s = now
        self._journal(
            EventKind.CHECKPOINT,
            {
                "phase": seg.segment.phase.value,
                "delivered_ml": seg.delivered_ml,
                "pump_counter_ml": seg.delivered_ml - seg.carry_ml,
                "container_left_ml": self._container_left_ml(seg),
                "expected_ml": seg.expected_ml,
                "rate_ml_per_h": seg.rate_ml_per_h,
            },
        )

    def _journal(self, kind: EventKind, payload: dict[str, Any]) -> None:
        if self.journal is None or self.run_id is None:
            return
        self.journal.append(
            self.run_id,
            kind.value,
            payload,
            t_clock_s=self.clock.now(),
            phase=self.machine.phase.value,
        )

    def _emit_progress(self) -> None:
        if self._on_progress is not None:
            self._on_progress(self.progress())
