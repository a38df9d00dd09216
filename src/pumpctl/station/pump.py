"""One pump of a station: its driver, its journal, the run it is doing, what it shows.

Each run is one `Supervisor` built by `runner.supervisor_for` (resuming an interrupted run, SR30)
and run in a task of its own: a fault on this pump ends in this supervisor's safe stop and
touches no other pump. Requests (pause, titrate, target, bolus, ...) go to the supervisor
exactly as from `pumpctl ctl`; nothing here sends a byte to the pump itself.

Other threads (SiLA workers) follow a run through a `RunWatch` and the pump's state through
listeners; both are fed on the event loop and hand data over through thread-safe queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pumpctl.clock import Clock
from pumpctl.dosing.plan import Plan
from pumpctl.dosing.program import Pump, Syringe
from pumpctl.dosing.titration import dose_rate_to_ml_per_h
from pumpctl.dosing.units import QuantityError
from pumpctl.drivers.base import PumpDriver
from pumpctl.infusion.journal import Journal
from pumpctl.infusion.resume import latest_run
from pumpctl.infusion.supervisor import (
    Progress,
    RunResult,
    Supervisor,
    SupervisorConfig,
    SupervisorError,
)
from pumpctl.log import get_logger
from pumpctl.operator.control_pk import bolus_mg, precheck
from pumpctl.operator.control_pk import target_ug_per_ml as target_ug_per_ml_of
from pumpctl.runner import supervisor_for
from pumpctl.station.programs import PLAIN_PREFIX
from pumpctl.station.spec import PumpSpec
from pumpctl.station.watch import RunWatch

__all__ = ["NotRunning", "PumpBusy", "PumpFault", "PumpState", "RunWatch", "StationPump"]


class PumpBusy(Exception):
    """The pump is already running something."""


class NotRunning(Exception):
    """A request for a run, and the pump runs nothing."""


class PumpFault(Exception):
    """The pump cannot take a run: its port failed, or it never confirmed a stop."""


@dataclass(frozen=True)
class PumpState:
    """What the pump shows at a glance (SiLA properties read it)."""

    name: str
    phase: str
    rate_ml_per_h: float
    delivered_ml: float
    fill_ml: float | None
    capacity_ml: float | None
    max_rate_ml_per_h: float | None
    busy: bool
    alarm: str | None
    fault: str | None


class StationPump:
    """Runtime of one pump; every method runs on the station's event loop."""

    def __init__(
        self,
        name: str,
        spec: PumpSpec,
        journal_path: Path,
        clock: Clock,
        config: SupervisorConfig,
    ) -> None:
        self.name = name
        self.spec = spec
        self.journal_path = journal_path
        self.clock = clock
        self.config = config
        self.container: Pump | None = spec.container
        self.fill_ml: float | None = _capacity(spec.container)
        self.driver: PumpDriver | None = None
        self.journal: Journal | None = None
        self.fault: str | None = None
        self.supervisor: Supervisor | None = None
        self.last_result: RunResult | None = None
        self._task: asyncio.Task[None] | None = None
        self._starting = False
        self._plain = False
        self._fill_at_start: float | None = None
        self._progress: Progress | None = None
        self._watch: RunWatch | None = None
        self._last_phase = "idle"
        self._listeners: list[Callable[[PumpState], None]] = []
        self.log = get_logger("pumpctl.station.pump", pump_id=name)

    # ------------------------------------------------------------------ state

    @property
    def busy(self) -> bool:
        return self._starting or self._task is not None

    @property
    def simulated(self) -> bool:
        return self.driver is not None and self.driver.transport.name.startswith("sim://")

    def listen(self, listener: Callable[[PumpState], None]) -> None:
        """Call `listener(state)` on the loop after every poll and state change (keep it short)."""
        self._listeners.append(listener)

    def state(self) -> PumpState:
        p = self._progress if self.busy else None
        sup = self.supervisor
        if sup is not None:
            phase = sup.phase.value
        else:  # how the last run ended stays visible until the next one (SR34)
            phase = "fault" if self.fault is not None else self._last_phase
        result = self.last_result
        alarm = (p.alarms[-1] if p and p.alarms else None) or (
            result.alarm if result and not self.busy else None
        )
        caps = self.driver.capabilities if self.driver is not None else None
        return PumpState(
            name=self.name,
            phase=phase,
            rate_ml_per_h=p.rate_ml_per_h if p else 0.0,
            delivered_ml=p.total_delivered_ml if p else 0.0,
            fill_ml=self.fill_ml,
            capacity_ml=_capacity(self.container),
            max_rate_ml_per_h=caps.max_rate_ml_per_h if caps else None,
            busy=self.busy,
            alarm=alarm,
            fault=self.fault,
        )

    def notify(self) -> None:
        state = self.state()
        for listener in self._listeners:
            try:
                listener(state)
            except Exception:  # a broken observer must never stop the pump's supervision
                self.log.exception("station.listener_failed")

    # ------------------------------------------------------------------ lifecycle

    def open_journal(self) -> None:
        self.journal_path.parent.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(self.journal_path)

    def close_journal(self) -> None:
        if self.journal is not None:
            self.journal.close()
            self.journal = None

    async def cancel(self) -> None:
        """End the run (the supervisor stops the pump and confirms it, SR18), then return."""
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def shutdown(self, reason: str, *, wall_timeout_s: float = 10.0) -> None:
        """Stop the run as an operator would (journaled as stopped: no automatic resume after,
        SR16), so a station shut down is not taken for a crash; cancel if that does not end it."""
        sup, task = self.supervisor, self._task
        if sup is None or task is None:
            return
        try:
            async with self.clock.wall_timeout(wall_timeout_s):
                await sup.stop(reason=reason, who="station")
                await asyncio.shield(task)
        except (TimeoutError, SupervisorError):
            pass  # it ended meanwhile, or would not stop in time: cancel (still a safe stop)
        await self.cancel()

    # ------------------------------------------------------------------ runs

    async def start(
        self,
        plan: Plan,
        *,
        who: str,
        plain: bool = False,
        new_run_reason: str | None = None,
    ) -> RunWatch:
        """Start `plan` (checked already) or resume what an interrupted run left; ResumeRefused,
        PumpBusy or PumpFault when it cannot start. `plain`: a plain dose from the fill level."""
        if self.busy:
            raise PumpBusy(f"pump {self.name} is busy: stop its run first")
        if self.driver is None or self.fault is not None:
            raise PumpFault(f"pump {self.name}: {self.fault or 'its port is not open'}")
        if plain and new_run_reason is None:
            new_run_reason = self._replaces_plain_dose(who)
        self._starting = True
        try:
            sup, notes = await supervisor_for(
                plan,
                self.driver,
                self.clock,
                self.journal,
                config=self.config,
                on_progress=self._on_progress,
                new_run_reason=new_run_reason,
                who=who,
            )
        finally:
            self._starting = False
        watch = RunWatch(self.name, sup.plan if sup else None, notes)
        for note in notes:
            self.log.info("station.run_note", note=note)
        if sup is None:
            watch.finish()
            return watch
        self.supervisor, self._plain, self._progress = sup, plain, None
        self._fill_at_start = self.fill_ml if plain else _capacity_of_plan(sup.plan, self.fill_ml)
        watch.supervisor = sup
        self._watch = watch
        self._task = asyncio.create_task(self._run(sup, watch), name=f"station-pump-{self.name}")
        self.log.info("station.run_started", program_id=sup.plan.program, who=who, plain=plain)
        return watch

    def _replaces_plain_dose(self, who: str) -> str | None:
        """A new plain dose gives up an earlier plain dose that did not finish (a flow ends with
        a stop); an interrupted *program* still waits for a person's decision (SR16)."""
        previous = latest_run(self.journal) if self.journal is not None else None
        if previous is None or not previous.interrupted:
            return None
        if not previous.run.program.startswith(PLAIN_PREFIX):
            return None
        return f"a new plain dose from {who} replaces plain dose {previous.run.run_id[:8]}"

    async def _run(self, sup: Supervisor, watch: RunWatch) -> None:
        try:
            result = await sup.run()
        except asyncio.CancelledError:
            watch.finish(error=SupervisorError("the station is shutting down: pump stopped"))
            raise
        except Exception as exc:  # the supervisor turns faults into alarms; this is a last guard
            self.log.exception("station.run_failed")
            self.fault = f"supervisor failed: {exc!r}"
            watch.finish(error=exc)
        else:
            self.last_result = result
            if result.outcome.value == "unconfirmed":
                self.fault = "the pump never confirmed its stop: go and look at it"
            self._update_fill(result.delivered_ml)
            watch.run_id = sup.run_id
            watch.finish(result)
        finally:
            self._last_phase = sup.phase.value
            self.supervisor, self._task = None, None
            self.notify()

    def _on_progress(self, progress: Progress) -> None:
        self._progress = progress
        self._update_fill(progress.total_delivered_ml)
        watch = self._watch
        if watch is not None:
            if self.supervisor is not None:
                watch.run_id = self.supervisor.run_id
            watch.push(progress)
        self.notify()

    def _update_fill(self, delivered_ml: float) -> None:
        sup = self.supervisor
        level = sup.legs.level if sup is not None and not self._plain else None
        if level is not None and level.tracked:
            self.fill_ml = level.left_ml(delivered_ml)
        elif self._fill_at_start is not None:
            self.fill_ml = max(0.0, self._fill_at_start - delivered_ml)

    # ------------------------------------------------------------------ requests

    def _running(self) -> Supervisor:
        if self.supervisor is None:
            raise NotRunning(f"pump {self.name} is not running anything")
        return self.supervisor

    async def pause(self, *, reason: str, who: str) -> None:
        await self._running().pause(reason=reason, who=who)

    async def resume(self, *, who: str) -> None:
        await self._running().resume(who=who)

    async def stop(self, *, reason: str, who: str) -> None:
        """Always allowed (SR13); a pump that runs nothing is told to stop all the same."""
        if self.supervisor is not None:
            await self.supervisor.stop(reason=reason, who=who)
        elif self.driver is not None and not self._starting:
            self.log.warning("station.stop_idle", reason=reason, who=who)
            await self.driver.stop()

    async def titrate(self, rate: str, *, reason: str, who: str) -> float:
        """`rate` in dose units ("0.3 mg/kg/h") or mL/h where allowed (SR04); the mL/h sent."""
        sup = self._running()
        ml_per_h = dose_rate_to_ml_per_h(rate, sup.plan)  # TitrationRefused names the field
        await sup.titrate(ml_per_h, reason=reason, who=who)
        return ml_per_h

    async def set_target(self, target: str, *, reason: str, who: str) -> float:
        """`target` as `ctl target` takes it ("0.35 ug/mL"); the µg/mL the run accepted.

        SupervisorError when it does not parse or the run is in no TCI phase, TargetRefused
        (naming the limit) when the range, step or interval refuses it (SR09)."""
        sup = self._running()
        _precheck("target", target, reason)
        target_ug_per_ml = _parsed(lambda: target_ug_per_ml_of(target))
        await sup.set_target(target_ug_per_ml, reason=reason, who=who)
        return target_ug_per_ml

    async def bolus(self, dose: str, *, reason: str, who: str) -> float:
        """`dose` as `ctl bolus` takes it ("0.1 mg/kg": the plan's weight, or "7 mg"); the mg
        given, to the pump's volume step. SupervisorError when it does not parse or the program
        allows no bolus now, BolusRefused (naming the limit) when the lockout refuses it."""
        sup = self._running()
        _precheck("bolus", dose, reason)
        dose_mg = _parsed(lambda: bolus_mg(dose, sup.plan.weight_kg))
        await sup.bolus(dose_mg, reason=reason, who=who)
        lockout = sup.pk.lockout  # the accepted bolus is its last record, as quantized
        return lockout.history[-1].dose_mg if lockout is not None and lockout.history else dose_mg

    async def container_changed(self, *, volume_ml: float | None, who: str) -> None:
        await self._running().container_changed(volume_ml=volume_ml, who=who)

    def set_syringe(self, inner_diameter_mm: float, stroke_mm: float) -> None:
        """A new, full syringe of this bore and stroke (idle only)."""
        if self.busy:
            raise PumpBusy(f"pump {self.name} is busy: change the syringe when it is idle")
        capacity = math.pi * (inner_diameter_mm / 2) ** 2 * stroke_mm / 1000.0
        syringe = Syringe.model_validate(
            {"inner_diameter": f"{inner_diameter_mm} mm", "volume": f"{capacity} mL"}
        )
        self.container = Pump(syringe=syringe)
        self.fill_ml = capacity
        self.log.info(
            "station.syringe_set", inner_diameter_mm=inner_diameter_mm, capacity_ml=capacity
        )
        self.notify()


def _precheck(op: str, value: str, reason: str) -> None:
    """What `ctl` refuses before the run sees it (no quantity, no reason), refused alike."""
    error = precheck(op, value, reason)
    if error is not None:
        raise SupervisorError(error)


def _parsed(parse: Callable[[], float]) -> float:
    """A quantity of the operator's text; its QuantityError (naming the field) refuses it."""
    try:
        return parse()
    except QuantityError as exc:
        raise SupervisorError(str(exc)) from exc


def _capacity(container: Pump | None) -> float | None:
    if container is None:
        return None
    if container.syringe is not None:
        return container.syringe.volume
    return container.reservoir.volume if container.reservoir is not None else None


def _capacity_of_plan(plan: Plan, fallback: float | None) -> float | None:
    """A program starts from a full container of its own kind, as `pumpctl run` assumes."""
    return plan.container.capacity_ml if plan.container.capacity_ml is not None else fallback
