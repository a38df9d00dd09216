"""A station: several pumps supervised in one process, each exactly as `pumpctl run` would.

Every pump has its own driver, journal and supervisor; they share the event loop and, where the
station file says so, a serial line. Programs are checked with `check_program` before anything is
opened (SR01); requests reach the supervisors as operator requests. A fault on one pump ends in
that pump's safe stop; a port that fails to open marks its pumps faulted and leaves the others
running.

Threads: `check` and `plain_plan` are pure and may run in any thread (SiLA workers call them so
the loop never waits on a YAML parse); every coroutine runs on the station's loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from pumpctl.clock import Clock
from pumpctl.dosing.check import CheckResult
from pumpctl.dosing.plan import Plan
from pumpctl.drivers.base import PumpError
from pumpctl.families import family
from pumpctl.infusion.supervisor import SupervisorConfig
from pumpctl.log import get_logger
from pumpctl.simulator.devices.base import PumpSnapshot
from pumpctl.simulator.endpoints import InMemoryTransport
from pumpctl.station.links import Line, address_of, drivers_for, open_lines
from pumpctl.station.programs import ProgramRefused, check_file, check_source, plain_program
from pumpctl.station.pump import PumpBusy, PumpFault, RunWatch, StationPump
from pumpctl.station.spec import SIM_SCHEME, StationSpec

__all__ = ["DoseRefused", "Station", "UnknownPump", "station_config"]


class UnknownPump(KeyError):
    """No pump of that name in the station."""

    def __str__(self) -> str:
        return str(self.args[0])


class DoseRefused(ValueError):
    """A plain dose that cannot be given as asked; names the field, value, limit and unit."""

    def __init__(
        self, field: str, value: float, limit: float | None, unit: str, message: str
    ) -> None:
        self.field, self.value, self.limit, self.unit = field, value, limit, unit
        self.flow_rate = field == "FlowRate"
        super().__init__(f"{field} = {value:g} {unit}: {message}")


def station_config(time_scale: float = 1.0, poll_s: float = 1.0) -> SupervisorConfig:
    """Supervisor settings as `pumpctl run` chooses them (SR19's watchdog sized for the scale)."""
    watchdog_s = min(255.0, max(10.0, 2 * poll_s, 0.5 * time_scale))
    return SupervisorConfig(poll_interval_s=poll_s, watchdog_timeout_s=watchdog_s)


class Station:
    """The pumps of one station file, on one clock."""

    def __init__(
        self,
        spec: StationSpec,
        clock: Clock,
        *,
        simulate: bool = False,
        faults: Mapping[str, Sequence[str]] | None = None,
        config: SupervisorConfig | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.spec = spec
        self.clock = clock
        self.simulated = simulate
        self.faults = dict(faults or {})
        unknown = sorted(set(self.faults) - set(spec.pumps))
        if unknown:
            raise UnknownPump(f"faults for unknown pumps: {', '.join(unknown)}")
        self.config = config or station_config(clock.time_scale)
        self.pumps = {
            name: StationPump(name, pump, spec.journal_path(name, cwd), clock, self.config)
            for name, pump in spec.pumps.items()
        }
        self.lines: dict[str, Line] = {}
        self.log = get_logger("pumpctl.station", station=spec.station)

    # ------------------------------------------------------------------ queries (any thread)

    def pump(self, name: str) -> StationPump:
        try:
            return self.pumps[name]
        except KeyError:
            raise UnknownPump(f"no pump {name!r}; pumps: {', '.join(self.pumps)}") from None

    @property
    def has_real_ports(self) -> bool:
        return any(not p.port.startswith(SIM_SCHEME) for p in self.spec.pumps.values())

    @property
    def busy(self) -> bool:
        return any(p.busy for p in self.pumps.values())

    def check(
        self, source: str, overrides: Mapping[str, str] | None = None, *, pump: str | None = None
    ) -> CheckResult:
        """`check_program` on a program name or YAML text, as `pumpctl check --model` would
        for `pump`'s model (without a pump: as plain `pumpctl check`)."""
        model = self.pump(pump).spec.model if pump is not None else None
        return check_source(source, self.spec.programs_dir(), overrides, model=model)

    def checked(
        self, source: str, overrides: Mapping[str, str] | None = None, *, pump: str | None = None
    ) -> Plan:
        """The plan, or ProgramRefused carrying the whole check result (SR01, SR02)."""
        result = self.check(source, overrides, pump=pump)
        if result.exit_code != 0 or result.plan is None:
            raise ProgramRefused(result)
        return result.plan

    def station_programs(self) -> dict[str, Plan]:
        """Every program the station file starts, checked before any port opens (SR01)."""
        plans = {}
        for name, pump in self.spec.pumps.items():
            if pump.program is None:
                continue
            path = self.spec.program_path(name)
            result = (
                check_file(path, pump.overrides, model=pump.model)
                if path.is_file()
                else self.check(pump.program, pump.overrides, pump=name)  # an example, by name
            )
            if result.exit_code != 0 or result.plan is None:
                raise ProgramRefused(result, pump=name)
            plans[name] = result.plan
        return plans

    def plain_plan(
        self, name: str, *, volume_ml: float | None, rate_ml_per_h: float, what: str, who: str
    ) -> Plan:
        """A plain dose of `volume_ml` (None: what is left) at `rate_ml_per_h`, checked."""
        pump = self.pump(name)
        state = pump.state()
        if pump.container is None:
            raise DoseRefused(
                "Volume",
                volume_ml or 0.0,
                None,
                "mL",
                "no syringe or tubing is configured for plain dosing"
                " (station file `container`, or SetSyringeParameters)",
            )
        max_rate = state.max_rate_ml_per_h
        if not rate_ml_per_h > 0 or (max_rate is not None and rate_ml_per_h > max_rate):
            raise DoseRefused(
                "FlowRate",
                rate_ml_per_h,
                max_rate,
                "mL/h",
                "must be above 0 and at most the pump's maximum (withdrawal is not supported)",
            )
        fill = state.fill_ml
        volume = volume_ml if volume_ml is not None else fill
        if volume is None or volume <= 0:
            raise DoseRefused(
                "Volume", volume or 0.0, fill, "mL", "nothing to dose (no withdrawal)"
            )
        if fill is not None and volume > fill + 1e-9:
            raise DoseRefused("Volume", volume, fill, "mL", "more than the container holds now")
        self.log.info(
            "station.plain_dose",
            pump_id=name,
            what=what,
            who=who,
            volume_ml=volume,
            rate_ml_per_h=rate_ml_per_h,
        )
        text = plain_program(name, pump.container, rate_ml_per_h=rate_ml_per_h, volume_ml=volume)
        result = check_source(
            text, self.spec.programs_dir(), model=pump.spec.model, no_library=True
        )
        if result.exit_code != 0 or result.plan is None:
            raise ProgramRefused(result)
        return result.plan

    def ground_truth(self, name: str) -> PumpSnapshot | None:
        """The emulated pump's own record (what the plunger pushed); None on a real port."""
        pump = self.pump(name)
        line = self.lines.get(pump.spec.port)
        if line is None or line.emulation is None:
            return None
        if isinstance(line.transport, InMemoryTransport):
            line.transport.sync()  # the physics (and faults) up to the clock's now
        return line.emulation.snapshot()[address_of(pump.spec)]

    # ------------------------------------------------------------------ lifecycle (loop)

    async def open(self) -> None:
        """Open journals, lines and drivers; a line that fails faults its own pumps only."""
        for pump in self.pumps.values():
            if pump.journal is None:
                pump.open_journal()
        self.lines = open_lines(self.spec, self.clock, simulated=self.simulated, faults=self.faults)
        for line in self.lines.values():
            drivers = drivers_for(line)
            try:
                for name, driver in drivers.items():
                    await driver.open()
                    self.pumps[name].driver, self.pumps[name].fault = driver, None
            except (PumpError, OSError) as exc:
                self.log.error("station.line_failed", port=line.port, error=str(exc))
                for name in drivers:
                    self.pumps[name].driver = None
                    self.pumps[name].fault = f"{line.port}: {exc}"
        self.log.info("station.open", simulated=self.simulated, pumps=len(self.pumps))
        for pump in self.pumps.values():
            pump.notify()

    async def close(self) -> None:
        """Stop every run (each supervisor confirms its stop), close lines and journals."""
        for pump in self.pumps.values():
            await pump.cancel()
        await self._close_lines()
        for pump in self.pumps.values():
            pump.close_journal()
        self.log.info("station.closed")

    async def _close_lines(self) -> None:
        for line in self.lines.values():
            with contextlib.suppress(PumpError, OSError):
                await line.transport.close()
        for pump in self.pumps.values():
            pump.driver = None
        self.lines = {}

    async def set_simulated(self, simulated: bool) -> None:
        """Switch every port between the real line and its emulation; only while all are idle."""
        if simulated == self.simulated:
            return
        busy = [p.name for p in self.pumps.values() if p.busy]
        if busy:
            raise PumpBusy(f"pumps {', '.join(busy)} are running: switch when the station is idle")
        if not simulated and not self.has_real_ports:
            raise PumpFault("every pump of this station is on a sim:// port: nothing real to use")
        await self._close_lines()
        self.simulated = simulated
        self.log.warning("station.mode", simulated=simulated)
        await self.open()

    async def start(
        self,
        name: str,
        plan: Plan,
        *,
        who: str,
        plain: bool = False,
        new_run_reason: str | None = None,
    ) -> RunWatch:
        """Start a checked plan on one pump (`StationPump.start`)."""
        return await self.pump(name).start(
            plan, who=who, plain=plain, new_run_reason=new_run_reason
        )

    async def set_syringe(self, name: str, inner_diameter_mm: float, stroke_mm: float) -> None:
        """A new, full syringe on an idle pump; an emulated pump gets the same syringe loaded."""
        pump = self.pump(name)
        if family(pump.spec.model).container != "syringe" or (
            pump.spec.container is not None and pump.spec.container.syringe is None
        ):
            raise PumpFault(f"pump {name} takes no syringe (it pumps through tubing or a stroke)")
        pump.set_syringe(inner_diameter_mm, stroke_mm)
        line = self.lines.get(pump.spec.port)
        capacity = pump.fill_ml
        if line is not None and line.emulation is not None and capacity is not None:
            line.emulation.load_syringe(
                address_of(pump.spec), inner_diameter_mm, capacity, capacity
            )

    async def start_programs(self, plans: Mapping[str, Plan], *, who: str) -> dict[str, RunWatch]:
        """Start the station file's programs; a pump that cannot start is logged, not fatal."""
        watches = {}
        for name, plan in plans.items():
            try:
                watches[name] = await self.start(name, plan, who=who)
            except Exception as exc:  # ResumeRefused, PumpFault: that pump waits for a person
                self.log.error("station.start_refused", pump_id=name, error=str(exc))
        return watches
