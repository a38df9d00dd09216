"""What each operator request does to the running segment (pause, resume, titrate, change).

Executed by the supervisor's own task between polls. Refusals raise `SupervisorError` (the
caller sees why; nothing was sent); a pump that fails to confirm a change raises `Alarm` (SR11).
Titration limits are checked by the pure `pumpctl.dosing.titration.check_titration`, journaled
whether accepted or not (SR10), and journaled *before* the new rate is sent (SR29).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pumpctl.clock import Clock
from pumpctl.dosing.plan import Plan
from pumpctl.dosing.titration import TitrationRefused, check_titration
from pumpctl.drivers.base import Direction, PumpDriver, PumpTimeout
from pumpctl.infusion.commands import PumpCommands
from pumpctl.infusion.events import ContainerChanged, TitrationEvent
from pumpctl.infusion.ledger import Alarm, LegState, SegmentLedger
from pumpctl.infusion.legs import ContainerLegs
from pumpctl.infusion.machine import InfusionMachine, Trigger
from pumpctl.infusion.recorder import RunRecorder
from pumpctl.infusion.requests import (
    ContainerChangedRequest,
    PauseRequest,
    ResumeRequest,
    SupervisorError,
    TitrateRequest,
)

__all__ = ["RequestHandlers"]


class RequestHandlers:
    def __init__(
        self,
        *,
        plan: Plan,
        driver: PumpDriver,
        clock: Clock,
        machine: InfusionMachine,
        cmds: PumpCommands,
        recorder: RunRecorder,
        legs: ContainerLegs,
        start_leg: Callable[[SegmentLedger], Awaitable[None]],
        done_ml: Callable[[], float],
    ) -> None:
        self.plan = plan
        self.driver = driver
        self.clock = clock
        self.machine = machine
        self.cmds = cmds
        self.recorder = recorder
        self.legs = legs
        self._start_leg = start_leg
        self._done_ml = done_ml

    async def pause(self, ledger: SegmentLedger, req: PauseRequest) -> None:
        if not self.machine.may(Trigger.PAUSE):
            raise SupervisorError(f"cannot pause in phase {self.machine.phase.value}")
        info = _info(req)
        await self.cmds.call("pause", self.driver.pause, **info)
        ledger.enter(LegState.PAUSED, self.clock.now())
        self.machine.fire(Trigger.PAUSE, **info)

    async def resume(self, ledger: SegmentLedger, req: ResumeRequest) -> None:
        if not self.machine.may(Trigger.RESUME):
            raise SupervisorError(f"cannot resume in phase {self.machine.phase.value}")
        if ledger.awaiting_change:
            raise SupervisorError(
                f"confirm the {self.legs.kind} change first (pumpctl ctl syringe-changed)"
            )
        info = _info(req)
        await self.cmds.call("start", self.driver.start, **info)
        ledger.enter(LegState.RUNNING, self.clock.now())
        self.machine.fire(Trigger.RESUME, **info)

    async def titrate(self, ledger: SegmentLedger, req: TitrateRequest) -> None:
        new_rate = float(req.rate_ml_per_h)
        old_rate = ledger.rate_ml_per_h
        now = self.clock.now()
        self._check_titration(ledger, req, now)
        # SR10: journaled before it is sent
        self.recorder.write(
            TitrationEvent(
                accepted=True,
                reason=req.reason,
                who=req.who,
                old_ml_per_h=old_rate,
                new_ml_per_h=new_rate,
            )
        )
        ledger.accrue(now)
        try:
            sent = await self.cmds.call(
                "set_rate",
                lambda: self.driver.set_rate(new_rate, Direction.INFUSE),
                rate_ml_per_h=new_rate,
            )
        except PumpTimeout as exc:  # SR11: an unconfirmed rate change is an alarm
            raise Alarm("rate_change_unconfirmed", f"{old_rate} -> {new_rate} mL/h") from exc
        running = sent if isinstance(sent, float) else new_rate  # what the pump now runs
        ledger.change_rate(running, now)
        # the transition records the rate the pump confirmed: resume restores exactly that
        self.machine.fire(
            Trigger.TITRATE,
            reason=req.reason,
            who=req.who,
            old_ml_per_h=old_rate,
            new_ml_per_h=running,
            requested_ml_per_h=new_rate,
        )

    def _check_titration(self, ledger: SegmentLedger, req: TitrateRequest, now: float) -> None:
        """SR09: the phase, the plan's limits (a refusal is journaled) and the pump's range."""
        new_rate = float(req.rate_ml_per_h)
        if not self.machine.may(Trigger.TITRATE):
            raise SupervisorError(
                "titration is only allowed in maintenance, "
                f"not in {self.machine.phase.value} (SR09)"
            )
        if ledger.segment.taper_step is not None:
            raise SupervisorError("the taper sets the rate: titration ends with the maintenance")
        limits = self.plan.titration
        old_rate = ledger.rate_ml_per_h
        if limits is None and new_rate > old_rate:
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
                    last_increase_s=ledger.last_increase_s,
                )
            except TitrationRefused as exc:
                self.recorder.write(
                    TitrationEvent(
                        accepted=False,
                        error=str(exc),
                        reason=req.reason,
                        who=req.who,
                        old_ml_per_h=old_rate,
                        new_ml_per_h=new_rate,
                    )
                )
                raise SupervisorError(str(exc)) from exc
        caps = self.driver.capabilities
        if not caps.min_rate_ml_per_h <= new_rate <= caps.max_rate_ml_per_h:
            raise SupervisorError(
                f"rate {new_rate} mL/h outside the pump's range "
                f"{caps.min_rate_ml_per_h}..{caps.max_rate_ml_per_h} mL/h"
            )

    async def container_changed(self, ledger: SegmentLedger, req: ContainerChangedRequest) -> None:
        if not ledger.awaiting_change:
            raise SupervisorError(f"no {self.legs.kind} change is pending")
        fill = req.volume_ml if req.volume_ml is not None else self.legs.level.capacity_ml
        if fill is None or fill <= 0:
            raise SupervisorError(f"give the new {self.legs.kind}'s volume in mL")
        total = self._done_ml() + ledger.delivered_ml
        self.recorder.write(
            ContainerChanged(
                fill_ml=fill, delivered_before_ml=total, volume_ml=req.volume_ml, who=req.who
            )
        )
        self.legs.refilled(fill, total)
        ledger.enter(LegState.IDLE, self.clock.now())
        self.machine.fire(Trigger.RESUME, volume_ml=req.volume_ml, who=req.who)
        await self._start_leg(ledger)


def _info(req: PauseRequest | ResumeRequest) -> dict[str, Any]:
    if isinstance(req, PauseRequest):
        return {"reason": req.reason, "who": req.who}
    return {"who": req.who}
