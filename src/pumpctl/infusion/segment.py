"""One segment on the pump: start a leg, poll and reconcile, serve operator requests, end.

Each segment is: clear counters → set rate → set the pump's own target volume → run → poll status
and counters until the pump stops itself at the target. The pump's target is the hard stop: a
controller that dies mid-segment cannot over-infuse that segment. Operator requests are served
between polls by the same task, so nothing interleaves with a leg change.

`RunBooks` is what the whole run has delivered (per phase, done so far, the rolling windows);
the current segment's own books are its `SegmentLedger` (both in `ledger`, which is pure).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pumpctl.clock import Clock
from pumpctl.dosing.plan import Segment, SegmentPhase
from pumpctl.drivers.base import (
    Direction,
    PumpDriver,
    PumpTimeout,
)
from pumpctl.infusion.commands import PumpCommands
from pumpctl.infusion.events import CheckpointEvent, SegmentEnd, SegmentStart, StopRequested
from pumpctl.infusion.handlers import RequestHandlers
from pumpctl.infusion.ledger import (
    Alarm,
    LegState,
    RunBooks,
    SegmentLedger,
    Verdict,
)
from pumpctl.infusion.legs import ContainerLegs, mean_rate_ahead
from pumpctl.infusion.machine import InfusionMachine, Trigger
from pumpctl.infusion.reading import PumpReader
from pumpctl.infusion.recorder import RunRecorder
from pumpctl.infusion.refills import RefillWatch
from pumpctl.infusion.requests import (
    BolusRequest,
    PauseRequest,
    Queued,
    ResumeRequest,
    StopRequest,
    SupervisorError,
    TargetRequest,
    TitrateRequest,
)
from pumpctl.infusion.resume import Carryover

if TYPE_CHECKING:
    from pumpctl.infusion.tci_leg import PkLeg

__all__ = ["OperatorStop", "PollSettings", "RunBooks", "SegmentRunner"]

_START = {
    SegmentPhase.PRIME: Trigger.START_PRIMING,
    SegmentPhase.LOADING: Trigger.START_LOADING,
    SegmentPhase.MAINTENANCE: Trigger.START_MAINTENANCE,
    SegmentPhase.TCI: Trigger.START_TCI,
    SegmentPhase.KVO: Trigger.START_KVO,
}

#: every poll's verdict (a module name is cheaper than `Enum.MEMBER` on 3.11)
_CONTINUE = Verdict.CONTINUE


class OperatorStop(Exception):
    def __init__(self, req: StopRequest) -> None:
        super().__init__("operator stop")
        self.request = req


@dataclass(frozen=True)
class PollSettings:
    interval_s: float
    #: SR17: this many consecutive missed polls, or this much silence, is a comm alarm
    max_missed: int
    max_silence_s: float
    #: SR15: held (paused, waiting for a change) longer than this is an alarm
    max_pause_s: float
    checkpoint_interval_s: float


class SegmentRunner:
    def __init__(
        self,
        *,
        driver: PumpDriver,
        clock: Clock,
        cmds: PumpCommands,
        recorder: RunRecorder,
        machine: InfusionMachine,
        legs: ContainerLegs,
        books: RunBooks,
        settings: PollSettings,
        requests: asyncio.Queue[Queued],
        emit_progress: Callable[..., None],
        log: Any,
    ) -> None:
        self.driver = driver
        self.clock = clock
        self.cmds = cmds
        self.recorder = recorder
        self.machine = machine
        self.legs = legs
        self.books = books
        self.settings = settings
        self.requests = requests
        self.emit_progress = emit_progress
        self.log = log
        self.handlers: RequestHandlers | None = None  # set by the supervisor (they start legs)
        #: predictions, TCI and boluses (issue #13), set by the supervisor
        self.pk: PkLeg | None = None
        #: reads the pump each poll, counting missed polls (SR17, SR20)
        self.reader = PumpReader(driver, clock, cmds, settings, log)
        self.refills = RefillWatch()
        self.following: tuple[Segment, ...] = ()
        self._waiter: asyncio.Future[None] | None = None

    async def run(
        self,
        segment: Segment,
        carry: Carryover | None = None,
        following: tuple[Segment, ...] = (),
    ) -> None:
        """Run `segment` to its end; `carry` (the first segment of a resumed run) restores a
        pause, a pending container change and the titration interval of the run before."""
        now = self.clock.now()
        self.following = following  # the plan after this segment (near-empty look-ahead)
        start = _START[segment.phase]
        # a taper step goes on in the maintenance phase (a resumed one starts it)
        if segment.taper_step is None or self.machine.may(start):
            self.machine.fire(
                start,
                rate_ml_per_h=segment.rate_ml_per_h,
                volume_ml=segment.volume_ml,
            )
        ledger = SegmentLedger(
            segment=segment, rate_ml_per_h=segment.rate_ml_per_h, started_s=now, last_accrual_s=now
        )
        self.books.ledger = ledger
        self.books.results[segment.key].started_s = now
        self.recorder.write(SegmentStart(**segment.model_dump(mode="json")))
        await self._begin(ledger, carry)
        next_poll = self.clock.now() + self.settings.interval_s
        while True:
            queued = None if self._idle_until(next_poll) else await self._next_request(next_poll)
            if queued is not None:
                await self._handle(queued, ledger)
                continue
            next_poll = self.clock.now() + self.settings.interval_s
            verdict = await self._poll(ledger)
            pk = self.pk
            if pk is not None and verdict is _CONTINUE and pk.acts_after_polls:
                verdict = await pk.after_poll(ledger)
            if verdict is _CONTINUE:
                continue
            if verdict is Verdict.DONE:
                break
            if verdict is Verdict.CONTAINER_EMPTY:
                self.legs.emptied(ledger)
                ledger.enter(LegState.AWAITING_CHANGE, self.clock.now())
                self.machine.fire(Trigger.PAUSE, reason=f"{self.legs.kind} change")
            elif verdict is Verdict.RESTART:
                self.log.warning("pump.restart_after_unknown_start", phase=segment.phase.value)
                await self._start_pump(ledger)
        self._end(ledger)

    async def _begin(self, ledger: SegmentLedger, carry: Carryover | None) -> None:
        now = self.clock.now()
        if carry is not None and carry.last_increase_ago_s is not None:
            ledger.last_increase_s = now - carry.last_increase_ago_s
        held = carry.held if carry is not None else None
        if held is None:
            # a TCI phase starts at the controller's first rate (or off, when that is 0)
            start = self.pk.before_start(ledger) if self.pk is not None else True
            await self.start_leg(ledger, start=start)
            if not start:
                ledger.enter(LegState.OFF, now)
            return
        assert carry is not None
        if held == "awaiting_change":
            # the pump stopped at the end of its container before the crash: still no syringe
            ledger.enter(LegState.AWAITING_CHANGE, now)
            self.legs.emptied(ledger)
        else:
            if self.pk is not None:  # a TCI phase resumes at its controller's rate
                self.pk.before_start(ledger)
            await self.start_leg(ledger, start=False)  # ready, but paused as it was
            ledger.enter(LegState.PAUSED, now)
        ledger.held_since_s = now - carry.held_for_s  # SR15 counts the pause from its start
        self.machine.fire(Trigger.PAUSE, reason=f"resumed {held.replace('_', ' ')}")

    def _end(self, ledger: SegmentLedger) -> None:
        ledger.ended_s = self.clock.now()
        segment = ledger.segment
        self.books.results[segment.key].ended_s = ledger.ended_s
        self.books.done_ml += ledger.delivered_ml
        self.checkpoint(ledger, force=True)
        self.emit_progress(force=True)  # a watcher sees each segment to its end
        self.recorder.write(
            SegmentEnd(
                phase=segment.key,
                planned_ml=segment.volume_ml,
                delivered_ml=ledger.delivered_ml,
            )
        )

    async def start_leg(self, ledger: SegmentLedger, *, start: bool = True) -> None:
        """Counters cleared, rate set, and the pump's own target set to what this leg may
        deliver (`ContainerLegs.target_ml`); the pump then stops itself exactly when either the
        segment or the container runs out, so a dead controller cannot over-infuse."""
        await self.cmds.call("clear_counters", self.driver.clear_counters)
        rate = ledger.rate_ml_per_h
        sent_rate = await self.cmds.call(
            "set_rate", lambda: self.driver.set_rate(rate, Direction.INFUSE), rate_ml_per_h=rate
        )
        # the books follow what the pump was sent (its quantizer only ever rounds down)
        ledger.rate_ml_per_h = sent_rate if isinstance(sent_rate, float) else rate
        ledger.new_leg()
        resolution = self.books.tolerances.resolution_ml
        target, ledger.final_leg = self.legs.target_ml(ledger, self.books.done_ml, resolution)
        sent = await self.cmds.call(
            "set_target_volume",
            lambda: self.driver.set_target_volume(target),
            volume_ml=target,
            segment_volume_ml=ledger.planned_ml,
        )
        stop_at = sent if isinstance(sent, float) else target
        ledger.stop_at_ml = None if stop_at is None else ledger.delivered_ml + stop_at
        if start:
            await self._start_pump(ledger)

    async def _start_pump(self, ledger: SegmentLedger) -> None:
        sent_s = self.clock.now()
        try:
            await self.cmds.call("start", self.driver.start)
        except PumpTimeout:
            # SR21: outcome unknown -> assume it ran (from when it was sent); the next poll
            # re-reads state before anything else is sent, and only re-sends RUN if the pump
            # is provably not running
            ledger.enter(LegState.STARTING, sent_s)
            return
        ledger.enter(LegState.RUNNING, self.clock.now())

    def _idle_until(self, deadline_s: float) -> bool:
        """No request is queued and the clock is at `deadline_s` (the next poll) at once: past
        it, or skipped ahead to it (a virtual clock skips nearly every poll's wait). A skip runs
        nothing else, so no request can have come meanwhile, and no waiter is needed."""
        if not self.requests.empty():
            return False
        wait = deadline_s - self.clock.now()
        return wait <= 0 or self.clock.skip_ahead(wait)

    async def _next_request(self, deadline_s: float) -> Queued | None:
        """The next operator request, or None at `deadline_s` (the next poll)."""
        if self.requests.empty():
            wait = deadline_s - self.clock.now()
            if wait <= 0:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self.clock.wait(self._waiter, wait)
            finally:
                self._waiter = None
        return None if self.requests.empty() else self.requests.get_nowait()

    def wake(self) -> None:
        """A request was queued: stop waiting for the next poll."""
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # ------------------------------------------------------------------ polling

    async def _poll(self, ledger: SegmentLedger, *, again: bool = False) -> Verdict:
        """One status + volume poll, reconciled. A stop read while the pump should run is read
        once more at once before it is an alarm: on a link without a checksum a status
        character changed in transit parses too (SR20)."""
        taken = await self.reader.take(ledger, self.books.tolerances)
        if taken is None:
            return Verdict.CONTINUE
        status, replied = taken
        books = self.books
        books.booked(ledger)
        total = books.done_ml + ledger.delivered_ml
        refill = self.refills.observe(status, replied, books.prior_ml + total)
        if refill is not None:  # issue #16: each Cavro refill is journaled on its own
            self.recorder.write(refill)
            self.log.info("pump.refilled", count=refill.count, duration_s=refill.duration_s)
        books.check_rolling(replied, total)
        if self.pk is not None:
            self.pk.observe(total)
        self.legs.check_level(total, mean_rate_ahead(ledger, self.following))
        self.checkpoint(ledger)
        self.emit_progress()
        try:
            return ledger.verdict(
                status,
                replied,
                resolution_ml=books.tolerances.resolution_ml,
                max_pause_s=self.settings.max_pause_s,
            )
        except Alarm as first:
            if again or first.reason != "unexpected_stop":
                raise
            verdict = await self._poll(ledger, again=True)  # raises if the stop is confirmed
            self.log.warning("poll.reading_discarded", reason=first.reason, detail=first.detail)
            return verdict

    # ------------------------------------------------------------------ operator requests

    async def _handle(self, queued: Queued, ledger: SegmentLedger) -> None:
        req = queued.request
        handlers = self.handlers
        assert handlers is not None
        try:
            if isinstance(req, StopRequest):
                self.recorder.write(StopRequested(reason=req.reason, who=req.who))
                queued.succeed()
                raise OperatorStop(req)
            if isinstance(req, PauseRequest):
                await handlers.pause(ledger, req)
            elif isinstance(req, ResumeRequest):
                await handlers.resume(ledger, req)
            elif isinstance(req, TitrateRequest):
                await handlers.titrate(ledger, req)
                self.books.results[ledger.segment.key].rate_ml_per_h = ledger.rate_ml_per_h
            elif isinstance(req, TargetRequest | BolusRequest):
                assert self.pk is not None
                await self.pk.handle(ledger, req)
            else:
                await handlers.container_changed(ledger, req)
        except SupervisorError as exc:
            queued.fail(exc)
            return
        except OperatorStop:
            raise
        except BaseException as exc:
            queued.fail(SupervisorError(f"{type(req).__name__} failed: {exc}"))
            raise
        queued.succeed()

    # ------------------------------------------------------------------ journal

    def checkpoint(self, ledger: SegmentLedger, *, force: bool = False) -> None:
        """The segment's delivered volume, at least every `checkpoint_interval_s` (and at every
        state change: `force`), rather than every poll: an fsync per poll would make a multi-day
        virtual run take minutes, and the pump's own counter is the primary record."""
        now = self.clock.now()
        books = self.books
        if not force and now - books.last_checkpoint_s < self.settings.checkpoint_interval_s:
            return
        books.last_checkpoint_s = now
        plasma, effect = self.pk.concentrations() if self.pk else (None, None)
        self.recorder.write(
            CheckpointEvent(
                phase=ledger.segment.key,
                delivered_ml=ledger.delivered_ml,
                pump_counter_ml=ledger.counter_ml,
                estimated_ml=ledger.estimated_ml,
                lost_ml=ledger.lost_ml,
                container_left_ml=self.legs.left_ml(books.done_ml + ledger.delivered_ml),
                expected_ml=ledger.expected_ml,
                rate_ml_per_h=ledger.rate_ml_per_h,
                plasma_ug_per_ml=plasma,
                effect_ug_per_ml=effect,
            )
        )
