"""StationService and the SiLA core controllers that fit a station.

- StationService: the pumps, and the PumpName metadata every pump call carries.
- SimulationController: the whole station between real ports and emulations, only when idle.
- CancelController: cancelling a command that drives a pump stops that pump (its run ends, and
  with it the command). PauseController: pauses and resumes that run.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sila2.framework import Command, Feature, Property
from sila2.server import FeatureImplementationBase, MetadataDict

from pumpctl.infusion.requests import SupervisorError
from pumpctl.station.links import address_of
from pumpctl.station.pump import NotRunning, PumpBusy, PumpFault
from pumpctl.station.sila.context import WHO, Running, StationContext
from pumpctl.station.sila.features import defined_error, feature

__all__ = [
    "CancelControllerImpl",
    "PauseControllerImpl",
    "SimulationControllerImpl",
    "StationServiceImpl",
]


class StationServiceImpl(FeatureImplementationBase):
    def __init__(self, parent_server: Any, ctx: StationContext) -> None:
        super().__init__(parent_server=parent_server)
        self.ctx = ctx

    def get_PumpNames(self, *, metadata: MetadataDict) -> list[str]:
        return list(self.ctx.station.pumps)

    def get_Pumps(self, *, metadata: MetadataDict) -> list[dict[str, Any]]:
        return [
            {
                "Name": pump.name,
                "Model": pump.spec.model,
                "Port": pump.spec.port,
                "Address": address_of(pump.spec),
                "Simulated": pump.simulated,
                "Fault": pump.fault or "",
            }
            for pump in self.ctx.station.pumps.values()
        ]

    def get_calls_affected_by_PumpName(self) -> list[Feature | Command | Property]:
        infusion = feature("InfusionProgramService")
        pump_calls = (
            "RunProgram",
            "CheckProgram",
            "Pause",
            "Resume",
            "Stop",
            "Titrate",
            "SetTarget",
            "Bolus",
            "ContainerChanged",
        )
        calls: list[Feature | Command | Property] = [infusion[c] for c in pump_calls]  # type: ignore[misc]
        calls.append(infusion["Phase"])  # type: ignore[arg-type]
        calls += [feature("PumpFluidDosingService"), feature("SyringeConfigurationController")]
        return calls


class SimulationControllerImpl(FeatureImplementationBase):
    def __init__(self, parent_server: Any, ctx: StationContext) -> None:
        super().__init__(parent_server=parent_server)
        self.ctx = ctx

    def _switch(self, simulated: bool, error: str) -> None:
        self.ctx.command("StartSimulationMode" if simulated else "StartRealMode")
        try:
            self.ctx.call(self.ctx.station.set_simulated(simulated))
        except (PumpBusy, PumpFault, OSError) as exc:
            raise defined_error("SimulationController", error, str(exc)) from exc

    def StartSimulationMode(self, *, metadata: MetadataDict) -> None:
        self._switch(True, "StartSimulationModeFailed")

    def StartRealMode(self, *, metadata: MetadataDict) -> None:
        self._switch(False, "StartRealModeFailed")

    def get_SimulationMode(self, *, metadata: MetadataDict) -> bool:
        return self.ctx.station.simulated


def _running(ctx: StationContext, feature_name: str, execution: str) -> Running:
    try:
        running = ctx.running(UUID(execution))
    except ValueError:
        running = None
    if running is None:
        raise defined_error(
            feature_name,
            "InvalidCommandExecutionUUID",
            f"no command that drives a pump runs with execution UUID {execution}",
        )
    return running


class CancelControllerImpl(FeatureImplementationBase):
    def __init__(self, parent_server: Any, ctx: StationContext) -> None:
        super().__init__(parent_server=parent_server)
        self.ctx = ctx

    def _cancel(self, running: Running) -> None:
        pump = self.ctx.station.pump(running.pump)
        self.ctx.command("CancelCommand", pump.name, cancelled=running.command)
        self.ctx.call(pump.stop(reason=f"{running.command} cancelled (CancelController)", who=WHO))

    def CancelCommand(self, CommandExecutionUUID: str, *, metadata: MetadataDict) -> None:
        self._cancel(_running(self.ctx, "CancelController", CommandExecutionUUID))

    def CancelAll(self, *, metadata: MetadataDict) -> None:
        for running in self.ctx.all_running():
            self._cancel(running)


class PauseControllerImpl(FeatureImplementationBase):
    def __init__(self, parent_server: Any, ctx: StationContext) -> None:
        super().__init__(parent_server=parent_server)
        self.ctx = ctx

    def _act(self, execution: str, action: str) -> None:
        running = _running(self.ctx, "PauseController", execution)
        pump = self.ctx.station.pump(running.pump)
        self.ctx.command(f"PauseController.{action}", pump.name, command_paused=running.command)
        call = (
            pump.pause(reason="PauseController", who=WHO)
            if action == "pause"
            else pump.resume(who=WHO)
        )
        try:
            self.ctx.call(call)
        except (SupervisorError, NotRunning) as exc:
            raise defined_error("PauseController", "InvalidCommandState", str(exc)) from exc

    def Pause(self, CommandExecutionUUID: str, *, metadata: MetadataDict) -> None:
        self._act(CommandExecutionUUID, "pause")

    def Resume(self, CommandExecutionUUID: str, *, metadata: MetadataDict) -> None:
        self._act(CommandExecutionUUID, "resume")

    def get_Paused(self, *, metadata: MetadataDict) -> bool:
        return any(self.ctx.state(r.pump).phase == "paused" for r in self.ctx.all_running())
