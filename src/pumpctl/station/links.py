"""The station's serial lines: one transport per port, one driver per pump on it.

Pumps that share a port (an NE-1000 or Harvard chain, a Masterflex daisy chain) share one
transport, which serialises their exchanges, exactly as the integrator guide wires a chain.
Simulated, a line is the family's in-process emulation with every address of that port on it
(`build_emulation` + `InMemoryTransport`), so a station file runs anywhere unchanged; a
`sim://MODEL` port is always simulated.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from pumpctl.clock import Clock
from pumpctl.drivers.base import PumpDriver
from pumpctl.drivers.registry import default_address, driver_class, open_transport
from pumpctl.drivers.transport import Transport
from pumpctl.simulator.devices.base import Emulation
from pumpctl.simulator.endpoints import InMemoryTransport
from pumpctl.simulator.faults import Fault, FaultSchedule, parse_fault
from pumpctl.simulator.server import build_emulation
from pumpctl.simulator.url import parse_sim_url
from pumpctl.station.spec import PumpSpec, StationSpec, sim_model

__all__ = ["Line", "address_of", "drivers_for", "open_lines", "pump_faults"]


@dataclass
class Line:
    """One port: its transport, the pumps on it and, when simulated, the emulation."""

    port: str
    model: str
    transport: Transport
    pumps: dict[str, int] = field(default_factory=dict)  # pump name -> address
    emulation: Emulation | None = None
    faults: FaultSchedule | None = None

    @property
    def simulated(self) -> bool:
        return self.emulation is not None


def address_of(pump: PumpSpec) -> int:
    return pump.address if pump.address is not None else default_address(pump.model)


def pump_faults(specs: Sequence[str], address: int) -> list[Fault]:
    """Parse `--fault` specs for one pump; per-pump kinds without an address get the pump's."""
    faults = []
    for spec in specs:
        fault = parse_fault(spec)
        if fault.address is None:
            # kinds that act on one pump take its address; link-wide kinds refuse one
            with contextlib.suppress(ValidationError):
                fault = Fault(**{**fault.model_dump(), "address": address})
        faults.append(fault)
    return faults


def open_lines(
    spec: StationSpec,
    clock: Clock,
    *,
    simulated: bool,
    faults: Mapping[str, Sequence[str]] | None = None,
    seed: int = 0,
) -> dict[str, Line]:
    """A (not yet opened) line per port; `faults` (pump name -> specs) apply when simulated.

    Raises ValueError (FaultSpecError included) for faults that cannot apply.
    """
    faults = faults or {}
    by_port: dict[str, list[tuple[str, PumpSpec]]] = {}
    for name, pump in spec.pumps.items():
        by_port.setdefault(pump.port, []).append((name, pump))
    lines: dict[str, Line] = {}
    for port, members in by_port.items():
        model = members[0][1].model
        addresses = {name: address_of(pump) for name, pump in members}
        if simulated or sim_model(port) is not None:
            schedule_faults = [
                f for name, _ in members for f in pump_faults(faults.get(name, ()), addresses[name])
            ]
            line_seed = seed
            if sim_model(port) is not None:  # sim://MODEL?faults=...&seed=S: for the whole line
                url = parse_sim_url(port)
                schedule_faults += [parse_fault(f) for f in url.faults]
                line_seed = url.seed
            schedule = (
                FaultSchedule(schedule_faults, random.Random(line_seed))
                if schedule_faults
                else None
            )
            emulation = build_emulation(model, sorted(addresses.values()), faults=schedule)
            for name, pump in members:
                _match_container(emulation, addresses[name], pump)
            transport: Transport = InMemoryTransport(
                emulation, clock, name=_sim_name(port, model), faults=schedule
            )
            lines[port] = Line(port, model, transport, addresses, emulation, schedule)
        else:
            unused = [name for name, _ in members if faults.get(name)]
            if unused:
                raise ValueError(
                    f"faults for {', '.join(unused)}: only simulated pumps take faults"
                )
            baud = next((p.baud for _, p in members if p.baud is not None), None)
            transport = open_transport(port, baudrate=baud, clock=clock, model=model)
            lines[port] = Line(port, model, transport, addresses)
    return lines


def drivers_for(line: Line) -> dict[str, PumpDriver]:
    """One driver per pump on `line`, named after the station's pump (its log `pump_id`)."""
    cls = driver_class(line.model)
    return {
        name: cls(line.transport, address=address, pump_id=name)
        for name, address in line.pumps.items()
    }


def _sim_name(port: str, model: str) -> str:
    return port if sim_model(port) is not None else f"sim://{model}({port})"


def _match_container(emulation: Emulation, address: int, pump: PumpSpec) -> None:
    """The emulated tubing is the calibrated tubing the station names (as `run_on_simulator`)."""
    container = pump.container
    if container is None or container.tubing is None:
        return
    emulation.set_ml_per_rev(address, container.tubing.ml_per_rev)
    if container.reservoir is not None:
        emulation.set_reservoir_ml(address, container.reservoir.volume)
