"""Plain lab dosing under CETONI's names: PumpFluidDosingService, SyringeConfigurationController.

A dose is never sent as such: it becomes a checked plain program (`Station.plain_plan`: a bare
maintenance phase of a fluid in no drug library, with the override and reason that needs) and
runs under the same supervisor as any infusion, journaled and safe-stopped on any fault.
Volumes are in mL and flow rates in mL/h; pumpctl only infuses, so aspiration is refused.
"""

from __future__ import annotations

import json
import math
from queue import Queue
from typing import Any

from sila2.framework import UndefinedExecutionError
from sila2.server import FeatureImplementationBase, MetadataDict, ObservableCommandInstance

from pumpctl.infusion.supervisor import RunResult
from pumpctl.station.programs import ProgramRefused
from pumpctl.station.pump import PumpState
from pumpctl.station.sila.context import WHO, PumpQueues, StationContext, refused_json
from pumpctl.station.sila.features import defined_error
from pumpctl.station.sila.runs import follow, start_run
from pumpctl.station.station import DoseRefused

__all__ = ["PumpFluidDosingServiceImpl", "SyringeConfigurationControllerImpl"]

F = "PumpFluidDosingService"
_RESERVE_ML = 0.05  # GenerateFlow stops this short of empty (as container legs do), not on a stall


def _reserve(state: PumpState) -> float:
    return max(_RESERVE_ML, 0.002 * (state.capacity_ml or 0.0))


class PumpFluidDosingServiceImpl(FeatureImplementationBase):
    def __init__(self, parent_server: Any, ctx: StationContext) -> None:
        super().__init__(parent_server=parent_server)
        self.ctx = ctx
        for prop in ("MaxSyringeFillLevel", "SyringeFillLevel", "MaxFlowRate", "FlowRate"):
            setattr(self, f"_{prop}_producer_queue", Queue())
        for command in ("SetFillLevel", "DoseVolume", "GenerateFlow"):
            setattr(self, f"{command}_default_lifetime_of_execution", None)
        self.queues: dict[str, PumpQueues[float]] = {
            "MaxSyringeFillLevel": PumpQueues(lambda s: s.capacity_ml or 0.0),
            "SyringeFillLevel": PumpQueues(lambda s: round(s.fill_ml or 0.0, 6)),
            "MaxFlowRate": PumpQueues(lambda s: s.max_rate_ml_per_h or 0.0),
            "FlowRate": PumpQueues(lambda s: s.rate_ml_per_h),
        }
        for pump in ctx.station.pumps.values():
            for q in self.queues.values():
                pump.listen(q.publish)

    # ------------------------------------------------------------------ commands

    def _dose(
        self,
        metadata: MetadataDict,
        instance: ObservableCommandInstance,
        *,
        what: str,
        volume_ml: float | None,
        rate_ml_per_h: float,
    ) -> None:
        ctx = self.ctx
        name = ctx.pump_name(metadata)
        try:
            plan = ctx.station.plain_plan(
                name, volume_ml=volume_ml, rate_ml_per_h=rate_ml_per_h, what=what, who=WHO
            )
        except DoseRefused as exc:
            record = {"field": exc.field, "value": exc.value, "limit": exc.limit, "unit": exc.unit}
            record["message"] = str(exc)
            kind = "FlowRateOutOfRange" if exc.flow_rate else "DosingRefused"
            raise defined_error(F, kind, json.dumps(record)) from exc
        except ProgramRefused as exc:
            raise defined_error(F, "DosingRefused", refused_json(exc)) from exc
        watch = start_run(ctx, F, pump=name, plan=plan, command=what, instance=instance, plain=True)
        self._ended(what, follow(ctx, instance, watch))

    @staticmethod
    def _ended(what: str, result: RunResult | None) -> None:
        if result is None or result.outcome.value == "completed":
            return
        delivered = f"after {result.delivered_ml:.3f} mL"
        if result.outcome.value == "stopped":
            if what == "GenerateFlow":
                return  # StopDosage is how a flow ends
            raise UndefinedExecutionError(f"{what} was stopped {delivered}")
        raise defined_error(
            F, "PumpIsInFaultState", f"{what} ended in alarm {result.alarm} {delivered}"
        )

    def DoseVolume(
        self,
        Volume: float,
        FlowRate: float,
        *,
        metadata: MetadataDict,
        instance: ObservableCommandInstance,
    ) -> None:
        self._dose(metadata, instance, what="DoseVolume", volume_ml=Volume, rate_ml_per_h=FlowRate)

    def SetFillLevel(
        self,
        FillLevel: float,
        FlowRate: float,
        *,
        metadata: MetadataDict,
        instance: ObservableCommandInstance,
    ) -> None:
        fill = self.ctx.state(self.ctx.pump_name(metadata)).fill_ml
        volume = (fill if fill is not None else math.nan) - FillLevel
        if not volume >= 0:
            record = {"field": "FillLevel", "value": FillLevel, "limit": fill, "unit": "mL"}
            record["message"] = "above the fill level: pumpctl does not aspirate"
            raise defined_error(F, "DosingRefused", json.dumps(record))
        self._dose(
            metadata, instance, what="SetFillLevel", volume_ml=volume, rate_ml_per_h=FlowRate
        )

    def GenerateFlow(
        self, FlowRate: float, *, metadata: MetadataDict, instance: ObservableCommandInstance
    ) -> None:
        state = self.ctx.state(self.ctx.pump_name(metadata))
        left = None if state.fill_ml is None else state.fill_ml - _reserve(state)
        self._dose(metadata, instance, what="GenerateFlow", volume_ml=left, rate_ml_per_h=FlowRate)

    def StopDosage(self, *, metadata: MetadataDict) -> None:
        pump = self.ctx.station.pump(self.ctx.pump_name(metadata))
        self.ctx.command("StopDosage", pump.name)
        self.ctx.call(pump.stop(reason="StopDosage", who=WHO))

    # ------------------------------------------------------------------ properties

    def _subscribe(self, prop: str, metadata: MetadataDict) -> Queue[float]:
        return self.queues[prop].subscribe(self.ctx.state(self.ctx.pump_name(metadata)))

    def MaxSyringeFillLevel_on_subscription(self, *, metadata: MetadataDict) -> Queue[float]:
        return self._subscribe("MaxSyringeFillLevel", metadata)

    def SyringeFillLevel_on_subscription(self, *, metadata: MetadataDict) -> Queue[float]:
        return self._subscribe("SyringeFillLevel", metadata)

    def MaxFlowRate_on_subscription(self, *, metadata: MetadataDict) -> Queue[float]:
        return self._subscribe("MaxFlowRate", metadata)

    def FlowRate_on_subscription(self, *, metadata: MetadataDict) -> Queue[float]:
        return self._subscribe("FlowRate", metadata)


def _stroke_mm(state: PumpState, diameter_mm: float) -> float:
    if state.capacity_ml is None or diameter_mm <= 0:
        return 0.0
    return state.capacity_ml * 1000.0 / (math.pi * (diameter_mm / 2) ** 2)


class SyringeConfigurationControllerImpl(FeatureImplementationBase):
    """CETONI's syringe geometry; setting it means a new, full syringe (idle only)."""

    def __init__(self, parent_server: Any, ctx: StationContext) -> None:
        super().__init__(parent_server=parent_server)
        self.ctx = ctx
        self._InnerDiameter_producer_queue: Queue[float] = Queue()
        self._MaxPistonStroke_producer_queue: Queue[float] = Queue()
        self.diameter = PumpQueues(self._diameter)
        self.stroke = PumpQueues(lambda s: _stroke_mm(s, self._diameter(s)))
        for pump in ctx.station.pumps.values():
            pump.listen(self.diameter.publish)
            pump.listen(self.stroke.publish)

    def _diameter(self, state: PumpState) -> float:
        container = self.ctx.station.pump(state.name).container
        syringe = container.syringe if container is not None else None
        return syringe.inner_diameter if syringe is not None else 0.0

    def SetSyringeParameters(
        self, InnerDiameter: float, MaxPistonStroke: float, *, metadata: MetadataDict
    ) -> None:
        name = self.ctx.pump_name(metadata)
        self.ctx.command(
            "SetSyringeParameters", name, inner_diameter_mm=InnerDiameter, stroke_mm=MaxPistonStroke
        )
        if not (InnerDiameter > 0 and MaxPistonStroke > 0):
            raise UndefinedExecutionError("InnerDiameter and MaxPistonStroke must be above 0 mm")
        try:
            self.ctx.call(self.ctx.station.set_syringe(name, InnerDiameter, MaxPistonStroke))
        except Exception as exc:
            raise UndefinedExecutionError(str(exc)) from exc

    def InnerDiameter_on_subscription(self, *, metadata: MetadataDict) -> Queue[float]:
        return self.diameter.subscribe(self.ctx.state(self.ctx.pump_name(metadata)))

    def MaxPistonStroke_on_subscription(self, *, metadata: MetadataDict) -> Queue[float]:
        return self.stroke.subscribe(self.ctx.state(self.ctx.pump_name(metadata)))
