"""Predictions for every run, target-controlled infusion and clinician boluses (issue #13).

`PkLeg` is the segment runner's pharmacology: after every poll it feeds the volume the pump
*reports delivered* (all runs of this patient, so a resumed run goes on from the delivered
total) to a `DeliveryTracker`, so progress carries the predicted plasma and effect-site
concentration; in a TCI phase it computes the rate every interval with `TciController`
(capped by the pump, the plan's ceiling, the rolling-window allowance and the plasma ceiling),
sends it quantized down, and pauses the pump while the rate is 0. The pump's own target (the
phase's volume ceiling) stays the hard stop. Boluses go through the pure `BolusLockout` and
are given as a timed rate increase on top of the basal (or TCI) rate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pumpctl.clock import Clock
from pumpctl.dosing.bolus import BolusLimits, BolusLockout, BolusRecord
from pumpctl.dosing.bolus import BolusRequest as LockoutRequest
from pumpctl.dosing.pk.history import DeliveryTracker
from pumpctl.dosing.pk.models import get_model
from pumpctl.dosing.pk.solver import PkState
from pumpctl.dosing.pk.tci import TciCommand, TciController, TciLimits
from pumpctl.dosing.plan import Plan, SegmentPhase
from pumpctl.drivers.base import Direction, PumpDriver
from pumpctl.infusion.commands import PumpCommands
from pumpctl.infusion.events import BolusGiven, TargetChanged, TciRateUpdate
from pumpctl.infusion.ledger import Alarm, LegState, SegmentLedger, Verdict
from pumpctl.infusion.machine import InfusionMachine, Trigger
from pumpctl.infusion.pk_refusals import bolus_refusal, target_refusal
from pumpctl.infusion.recorder import RunRecorder
from pumpctl.infusion.requests import BolusRequest, SupervisorError, TargetRequest
from pumpctl.infusion.resume import Carryover
from pumpctl.infusion.segment import RunBooks

__all__ = ["PK_STEP_S", "PkLeg"]

#: the longest the prediction goes unstepped between polls (clock seconds): far below the
#: model's fastest time constant, so spreading a 10-s delta evenly changes nothing shown
PK_STEP_S = 10.0

# read on every poll (a module name is cheaper than `Enum.MEMBER` on 3.11)
_PRIME_KEY, _TCI = SegmentPhase.PRIME.value, SegmentPhase.TCI
_CONTINUE = Verdict.CONTINUE


class PkLeg:
    def __init__(
        self,
        *,
        plan: Plan,
        driver: PumpDriver,
        clock: Clock,
        cmds: PumpCommands,
        recorder: RunRecorder,
        machine: InfusionMachine,
        books: RunBooks,
        carryover: Carryover | None,
        start_leg: Callable[[SegmentLedger], Awaitable[None]],
        log: Any,
    ) -> None:
        self.start_leg = start_leg
        self.plan, self.driver, self.clock, self.cmds = plan, driver, clock, cmds
        self.recorder, self.machine, self.books, self.log = recorder, machine, books, log
        now = clock.now()
        self.tracker = self._tracker(now, carryover)
        #: the last reading not yet fed to the prediction: (clock s, mL fed in all)
        self._unfed: tuple[float, float] | None = None
        #: what the prediction was fed beyond the books' totals (the crash gap of a resume)
        self._offset_ml = carryover.unjournaled_ml if carryover is not None else 0.0
        #: what earlier runs gave the patient (their primes not counted)
        self._prior_dosed_ml = carryover.prior_dosed_ml if carryover is not None else 0.0
        self._fed_ml = (
            carryover.prior_dosed_ml if carryover is not None else 0.0
        ) + self._offset_ml
        tci = plan.tci
        self.target = tci.target_ug_per_ml if tci is not None else 0.0
        if tci is not None and carryover is not None and carryover.tci_target_ug_per_ml:
            self.target = carryover.tci_target_ug_per_ml
        self.last_target_increase_s: float | None = None
        if carryover is not None and carryover.last_increase_ago_s is not None:
            self.last_target_increase_s = now - carryover.last_increase_ago_s
        self.controller = self._controller()
        self.next_update_s = now
        self.last: TciCommand | None = None
        self.lockout = self._lockout(now, carryover)
        self.bolus_until_s: float | None = None
        self._bolus_ledger: SegmentLedger | None = None
        self._base_rate_ml_per_h = 0.0

    # -- set-up ------------------------------------------------------------------------------
    def _tracker(self, now: float, carry: Carryover | None) -> DeliveryTracker | None:
        p = self.plan
        if p.pk_model is None or p.weight_kg is None or p.concentration_mg_per_ml is None:
            return None
        kinetics = get_model(p.pk_model, p.drug or "ketamine").kinetics(p.weight_kg)
        samples = list(carry.prior_doses) if carry is not None else []
        t0 = now - samples[0][0] if samples else now
        tracker = DeliveryTracker(kinetics, p.concentration_mg_per_ml, t0_s=t0)
        last = samples[0][1] if samples else 0.0
        for ago_s, total_ml in samples[1:]:  # rebuilt from the journaled doses (no primes)
            tracker.add_delivered(max(now - ago_s, tracker.t_s), max(0.0, total_ml - last))
            last = total_ml
        extra = (carry.prior_dosed_ml - last + carry.unjournaled_ml) if carry is not None else 0.0
        if tracker.t_s < now or extra > 0:
            tracker.add_delivered(now, max(0.0, extra))
        return tracker

    def _controller(self) -> TciController | None:
        tci, tracker = self.plan.tci, self.tracker
        if tci is None or tracker is None or self.plan.concentration_mg_per_ml is None:
            return None
        caps = self.driver.capabilities
        return TciController(
            tracker.kinetics,
            concentration_mg_per_ml=self.plan.concentration_mg_per_ml,
            limits=TciLimits(
                max_plasma_ug_per_ml=tci.max_plasma_ug_per_ml,
                pump_max_rate_ml_per_h=min(tci.max_rate_ml_per_h, caps.max_rate_ml_per_h),
            ),
            interval_s=tci.interval_s,
            quantizer=self.driver.quantizer,
        )

    def _lockout(self, now: float, carry: Carryover | None) -> BolusLockout | None:
        b = self.plan.bolus
        if b is None:
            return None
        limits = BolusLimits(b.max_dose_mg, b.lockout_s, b.max_per_hour, b.max_mg_per_4h)
        history = [
            BolusRecord(now - ago, mg, dur, who, why)
            for ago, mg, dur, who, why in (carry.boluses if carry is not None else ())
        ]
        return BolusLockout(limits, history)

    # -- every poll --------------------------------------------------------------------------
    def observe(self, total_ml: float) -> None:
        """The pump's reported total of this run: what reached the patient since last time."""
        if self.tracker is None:
            return
        # a prime fills the line: it never reaches the patient (earlier runs' primes are not in
        # `prior_dosed_ml`; this run's, resumed mid-prime or not, is taken off here)
        prime = self.books.results.get(_PRIME_KEY)
        primed = prime.delivered_ml if prime is not None else 0.0
        fed = self._prior_dosed_ml + self._offset_ml + total_ml - primed
        now = self.clock.now()
        self._unfed = (now, fed)
        if now - self.tracker.t_s >= PK_STEP_S:
            self._feed()

    def _feed(self) -> None:
        """Step the prediction up to the last reading: at most every `PK_STEP_S` from the
        polls (and before a TCI rate is computed), not on every poll, so a multi-day run does
        not step its matrix, and grow its history, 86,400 times a day."""
        if self.tracker is None or self._unfed is None:
            return
        (now, fed), self._unfed = self._unfed, None
        if now >= self.tracker.t_s:
            self.tracker.add_delivered(now, max(0.0, fed - self._fed_ml))
            self._fed_ml = max(fed, self._fed_ml)

    def _state(self) -> PkState | None:
        """The prediction as of the last reading, without stepping the tracker: what is shown
        never depends on how often a watcher looks."""
        tracker, unfed = self.tracker, self._unfed
        if tracker is None:
            return None
        if unfed is None or unfed[0] <= tracker.t_s:
            return tracker.state
        dt = unfed[0] - tracker.t_s
        mg_per_h = max(0.0, unfed[1] - self._fed_ml) * tracker.concentration_mg_per_ml / dt * 3600
        return tracker.propagator.advance(tracker.state, mg_per_h, dt)

    @property
    def plasma_ug_per_ml(self) -> float | None:
        return self.concentrations()[0]

    @property
    def effect_ug_per_ml(self) -> float | None:
        return self.concentrations()[1]

    def concentrations(self) -> tuple[float | None, float | None]:
        """Predicted (plasma, effect-site) µg/mL, from one advance of the prediction (a
        checkpoint or a progress shows both)."""
        state = self._state()
        if state is None or self.tracker is None:
            return None, None
        return state.plasma_ug_per_ml(self.tracker.kinetics), state.ce_ug_per_ml

    def before_start(self, ledger: SegmentLedger) -> bool:
        """A TCI phase starts at the controller's first rate, never its ceiling; False: the
        first rate is 0 and the pump is made ready but left off."""
        if ledger.segment.phase is not SegmentPhase.TCI or self.controller is None:
            return True
        cmd = self._command()
        self.next_update_s = self.clock.now() + self.controller.interval_s
        if cmd.rate_ml_per_h <= 0:
            return False
        ledger.rate_ml_per_h = cmd.rate_ml_per_h
        return True

    @property
    def acts_after_polls(self) -> bool:
        """`after_poll` has work: a TCI controller, or a bolus (ending, or left over from the
        segment before). Asked first on every poll: most runs have neither, and a coroutine
        that only finds that out costs a poll's worth of calls."""
        return self.controller is not None or self.bolus_until_s is not None

    async def after_poll(self, ledger: SegmentLedger) -> Verdict:
        now = self.clock.now()
        seg = ledger.segment
        if self._bolus_ledger is not ledger:  # a bolus never outlives its segment
            self.bolus_until_s, self._bolus_ledger = None, None
        if self.bolus_until_s is not None and now >= self.bolus_until_s:
            await self._set_rate(ledger, self._base_rate_ml_per_h)
            self.bolus_until_s = None
        if seg.phase is not _TCI or self.controller is None:
            return _CONTINUE
        if seg.duration_s is not None and now >= ledger.started_s + seg.duration_s:
            await self._end_phase(ledger)
            return Verdict.DONE
        last = self.last.rate_ml_per_h if self.last is not None else 0.0
        if ledger.pump_running and ledger.rate_ml_per_h > last + 1e-9:
            self.next_update_s = now  # running above the controller's rate (a resume): now
        if now + 1e-9 < self.next_update_s or self.bolus_until_s is not None:
            return Verdict.CONTINUE
        self.next_update_s = now + self.controller.interval_s
        cmd = self._command()
        await self._apply(ledger, cmd.rate_ml_per_h)
        return Verdict.CONTINUE

    async def _end_phase(self, ledger: SegmentLedger) -> None:
        """The phase's time is up: stop the pump and book its counter as it stopped (the next
        segment clears it)."""
        await self.cmds.call("stop", self.driver.stop)
        ledger.enter(LegState.STOPPED, self.clock.now())
        await self._book_stopped(ledger, "as the phase ended")

    async def _book_stopped(self, ledger: SegmentLedger, when: str) -> None:
        """Book the stopped pump's counter; one that went back is the reset alarm, as on every
        poll (SR28), after the worst case is booked."""
        counter = await self.driver.read_delivered()
        previous = ledger.counter_ml
        kept = ledger.counter_reading(
            counter.net_ml, self.clock.now(), self.books.tolerances.resolution_ml
        )
        self.books.booked(ledger)
        if not kept:
            raise Alarm(
                "reset",
                f"{ledger.segment.key}: the pump's counter went back from {previous:.4f} to "
                f"{counter.net_ml:.4f} mL {when}; {ledger.estimated_ml:.4f} mL estimated",
            )

    def _allowance_mg(self) -> float | None:
        limits = self.plan.rolling_limits
        conc = self.plan.concentration_mg_per_ml
        if limits is None or conc is None:
            return None
        left = [m - self.books.rolling.in_window_ml(w) for w, m in limits.by_window().items()]
        return min(left) * conc if left else None

    def _command(self) -> TciCommand:
        assert self.controller is not None and self.tracker is not None
        self._feed()
        tci = self.plan.tci
        assert tci is not None
        cmd = self.controller.command(
            self.tracker.state, self.target, tci.site, allowance_mg=self._allowance_mg()
        )
        self.last = cmd
        self.recorder.write(
            TciRateUpdate(
                rate_ml_per_h=cmd.rate_ml_per_h,
                rate_mg_per_h=cmd.rate_mg_per_h,
                wanted_mg_per_h=cmd.wanted_mg_per_h,
                limited_by=cmd.limited_by,
                mode=cmd.mode,
                target_ug_per_ml=self.target,
                plasma_ug_per_ml=cmd.plasma_ug_per_ml,
                effect_ug_per_ml=cmd.effect_ug_per_ml,
                delivered_ml=self._fed_ml,
            )
        )
        return cmd

    async def _apply(self, ledger: SegmentLedger, rate_ml_per_h: float) -> None:
        """Rate 0 (or below the pump's smallest): paused by the controller; else that rate."""
        now = self.clock.now()
        if rate_ml_per_h < max(self.driver.capabilities.min_rate_ml_per_h, 1e-12):
            if ledger.pump_running:
                await self.cmds.call("pause", self.driver.pause)
                ledger.enter(LegState.OFF, now)
                self.log.info("tci.off", target_ug_per_ml=self.target)
            return
        if rate_ml_per_h != ledger.rate_ml_per_h:
            await self._set_rate(ledger, rate_ml_per_h)
        if ledger.state is LegState.OFF:
            await self.cmds.call("start", self.driver.start)
            ledger.enter(LegState.RUNNING, self.clock.now())

    async def _set_rate(self, ledger: SegmentLedger, rate_ml_per_h: float) -> None:
        now = self.clock.now()
        ledger.accrue(now)
        sent = await self.cmds.call(
            "set_rate",
            lambda: self.driver.set_rate(rate_ml_per_h, Direction.INFUSE),
            rate_ml_per_h=rate_ml_per_h,
        )
        ledger.change_rate(sent if isinstance(sent, float) else rate_ml_per_h, now)

    # -- operator requests -------------------------------------------------------------------
    async def handle(self, ledger: SegmentLedger, req: TargetRequest | BolusRequest) -> None:
        if isinstance(req, TargetRequest):
            self._retarget(req)
        else:
            await self._bolus(ledger, req)

    def _retarget(self, req: TargetRequest) -> None:
        tci = self.plan.tci
        if tci is None or not self.machine.may(Trigger.RETARGET):
            raise SupervisorError(f"no TCI phase running (phase {self.machine.phase.value})")
        now, old, new = self.clock.now(), self.target, float(req.target_ug_per_ml)
        refused = target_refusal(tci, old, new, now, self.last_target_increase_s)
        error = str(refused) if refused is not None else None
        self.recorder.write(
            TargetChanged(
                accepted=refused is None,
                old_ug_per_ml=old,
                new_ug_per_ml=new,
                reason=req.reason,
                who=req.who,
                error=error,
            )
        )
        if refused is not None:
            self.log.warning("tci.target_refused", new_ug_per_ml=new, error=error, who=req.who)
            raise refused
        self.target = new
        if new > old:
            self.last_target_increase_s = now
        self.next_update_s = now  # the next poll computes the rate for the new target
        self.machine.fire(Trigger.RETARGET, reason=req.reason, who=req.who, old=old, new=new)
        self.log.info("tci.target", old_ug_per_ml=old, new_ug_per_ml=new, who=req.who)

    async def _bolus(self, ledger: SegmentLedger, req: BolusRequest) -> None:
        """Through the lockout, then given as a leg of its own: the segment grows by the bolus
        volume (the pump's own target covers it exactly), at basal + bolus rate until the
        bolus is in, then back to the basal. Refused in a TCI phase: raise the target."""
        b = self.plan.bolus
        if b is None or self.lockout is None:
            raise SupervisorError("this program allows no bolus (no bolus block)")
        if not self.machine.may(Trigger.BOLUS) or not ledger.pump_running:
            raise SupervisorError(f"no bolus in phase {self.machine.phase.value}")
        conc = self.plan.concentration_mg_per_ml or 1.0
        volume = self.driver.quantizer.floor_volume_ml(req.dose_mg / conc)
        duration = volume / b.rate_ml_per_h * 3600.0
        now = self.clock.now()
        decision = self.lockout.request(
            LockoutRequest(now, volume * conc, req.who, req.reason, duration_s=duration)
        )
        record = {k: v for k, v in decision.journal().items() if k != "event"}
        self.recorder.write(BolusGiven(**record))
        if not decision.accepted:
            self.log.warning(
                "bolus.refused", limit=decision.limit, who=req.who, dose_mg=req.dose_mg
            )
            raise bolus_refusal(self.lockout, decision, now)
        self.log.info("bolus.given", dose_mg=volume * conc, who=req.who, over_s=round(duration, 1))
        self.machine.fire(Trigger.BOLUS, reason=req.reason, who=req.who, dose_mg=volume * conc)
        await self._bolus_leg(ledger, volume, b.rate_ml_per_h)
        self.bolus_until_s, self._bolus_ledger = self.clock.now() + duration, ledger

    async def _bolus_leg(self, ledger: SegmentLedger, volume_ml: float, rate: float) -> None:
        # stopped, not paused: the next leg starts like one after a container change (a paused
        # pump may keep its old target and counter through a clear)
        await self.cmds.call("stop", self.driver.stop)
        ledger.enter(LegState.IDLE, self.clock.now())
        await self._book_stopped(ledger, "before the bolus")
        seg = ledger.segment
        if seg.volume_ml is not None:
            ledger.segment = seg.model_copy(update={"volume_ml": seg.volume_ml + volume_ml})
            self.books.results[seg.key].planned_ml = ledger.segment.volume_ml
        self._base_rate_ml_per_h = ledger.rate_ml_per_h
        ledger.rate_ml_per_h = ledger.rate_ml_per_h + rate
        await self.start_leg(ledger)
