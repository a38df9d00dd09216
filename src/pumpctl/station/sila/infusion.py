"""InfusionProgramService: checked programs on a station's pumps, as `pumpctl run` and `ctl`.

RunProgram checks in the worker thread (the loop never waits on a parse), then starts the run on
the loop through `Station.start`, so the plan, the journal and the supervisor are exactly those
of the command line. Every refusal is a defined error whose message names field, value and limit;
SetTarget and Bolus take the quantity as `pumpctl ctl target` / `ctl bolus` do.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from queue import Queue
from typing import Any, TypeVar

from sila2.server import (
    FeatureImplementationBase,
    MetadataDict,
    ObservableCommandInstanceWithIntermediateResponses,
)

from pumpctl.dosing.titration import TitrationRefused
from pumpctl.infusion.pk_refusals import BolusRefused, TargetRefused
from pumpctl.infusion.requests import SupervisorError
from pumpctl.infusion.supervisor import Progress
from pumpctl.station.programs import ProgramRefused, violation_record
from pumpctl.station.pump import NotRunning, StationPump
from pumpctl.station.sila.context import WHO, PumpQueues, StationContext, refused_json
from pumpctl.station.sila.features import defined_error
from pumpctl.station.sila.runs import follow, start_run

__all__ = ["InfusionProgramServiceImpl"]

F = "InfusionProgramService"

T = TypeVar("T")


def _overrides(items: list[Any]) -> dict[str, str]:
    return {str(o.Field): str(o.Reason) for o in items}


def _intermediate(progress: Progress) -> dict[str, Any]:
    dose = (
        f"{progress.dose_rate:.4g} {progress.dose_rate_unit}"
        if progress.dose_rate is not None and progress.dose_rate_unit
        else ""
    )
    return {
        "Phase": progress.phase,
        "FlowRate": progress.rate_ml_per_h,
        "DoseRate": dose,
        "DeliveredVolume": progress.total_delivered_ml,
        "PlannedVolume": progress.total_planned_ml or 0.0,
        # [plasma, effect site] µg/mL, predicted from the pump's reported volumes (population
        # model, not measured); empty when no model applies to the patient
        "PredictedConcentration": (
            [progress.plasma_ug_per_ml, progress.effect_ug_per_ml]
            if progress.plasma_ug_per_ml is not None and progress.effect_ug_per_ml is not None
            else []
        ),
        "Alarms": list(progress.alarms),
    }


class InfusionProgramServiceImpl(FeatureImplementationBase):
    def __init__(self, parent_server: Any, ctx: StationContext) -> None:
        super().__init__(parent_server=parent_server)
        self.ctx = ctx
        self.RunProgram_default_lifetime_of_execution = None
        self._Phase_producer_queue: Queue[str] = Queue()
        self.phase = PumpQueues(lambda s: s.phase)
        for pump in ctx.station.pumps.values():
            pump.listen(self.phase.publish)

    def _request_error(self, exc: Exception) -> Exception:
        if isinstance(exc, NotRunning):
            return defined_error(F, "NotRunning", str(exc))
        if isinstance(exc, TitrationRefused):
            record = {
                "field": exc.field,
                "value": exc.value,
                "limit": exc.limit,
                "unit": exc.unit,
                "rule": exc.rule,
                "message": str(exc),
            }
            return defined_error(F, "TitrationRefused", json.dumps(record))
        if isinstance(exc, TargetRefused):
            return defined_error(F, "TargetRefused", json.dumps(exc.record()))
        if isinstance(exc, BolusRefused):
            return defined_error(F, "BolusRefused", json.dumps(exc.record()))
        if isinstance(exc, SupervisorError):
            return defined_error(F, "RequestRefused", str(exc))
        return exc

    def RunProgram(
        self,
        Program: str,
        Overrides: list[Any],
        NewRunReason: str,
        *,
        metadata: MetadataDict,
        instance: ObservableCommandInstanceWithIntermediateResponses[dict[str, Any]],
    ) -> dict[str, Any]:
        ctx = self.ctx
        name = ctx.pump_name(metadata)
        try:
            # SR01: checked for this pump before anything is sent
            plan = ctx.station.checked(Program, _overrides(Overrides), pump=name)
        except ProgramRefused as exc:
            raise defined_error(F, "ProgramRefused", refused_json(exc)) from exc
        watch = start_run(
            ctx,
            F,
            pump=name,
            plan=plan,
            command="RunProgram",
            instance=instance,
            new_run_reason=NewRunReason.strip() or None,
        )
        result = follow(
            ctx, instance, watch, lambda p: instance.send_intermediate_response(_intermediate(p))
        )
        return {
            "Outcome": result.outcome.value if result is not None else "nothing-remained",
            "Alarm": (result.alarm or "") if result is not None else "",
            "DeliveredVolume": result.delivered_ml if result is not None else 0.0,
            "RunId": watch.run_id or "",
            "Notes": list(watch.notes),
        }

    def CheckProgram(
        self, Program: str, Overrides: list[Any], *, metadata: MetadataDict
    ) -> dict[str, Any]:
        name = self.ctx.pump_name(metadata)
        result = self.ctx.station.check(Program, _overrides(Overrides), pump=name)
        violations = []
        for v in result.violations:
            record = violation_record(v)
            violations.append(
                {
                    "Field": v.field,
                    "Value": "" if v.value is None else str(v.value),
                    "Limit": "" if v.limit is None else str(v.limit),
                    "Unit": v.unit or "",
                    "Severity": v.severity,
                    "Rule": v.rule or "",
                    "LibraryVersion": v.library_version or "",
                    "Message": str(record.get("message", "")),
                }
            )
        return {
            "ExitCode": result.exit_code,
            "Violations": violations,
            "Warnings": list(result.warnings),
        }

    def _relay(
        self,
        metadata: MetadataDict,
        action: str,
        request: Callable[[StationPump], Coroutine[Any, Any, T]],
        **logged: Any,
    ) -> T:
        """Log `action` with its arguments, then run `request` on the metadata's pump."""
        pump = self.ctx.station.pump(self.ctx.pump_name(metadata))
        self.ctx.command(action, pump.name, **logged)
        try:
            return self.ctx.call(request(pump))
        except Exception as exc:
            raise self._request_error(exc) from exc

    def Pause(self, Reason: str, *, metadata: MetadataDict) -> None:
        self._relay(metadata, "pause", lambda p: p.pause(reason=Reason, who=WHO), reason=Reason)

    def Resume(self, *, metadata: MetadataDict) -> None:
        self._relay(metadata, "resume", lambda p: p.resume(who=WHO))

    def Stop(self, Reason: str, *, metadata: MetadataDict) -> None:
        reason = Reason or "SiLA Stop"
        self._relay(metadata, "stop", lambda p: p.stop(reason=reason, who=WHO), reason=reason)

    def Titrate(self, Rate: str, Reason: str, *, metadata: MetadataDict) -> float:
        return float(
            self._relay(
                metadata,
                "titrate",
                lambda p: p.titrate(rate=Rate, reason=Reason, who=WHO),
                rate=Rate,
                reason=Reason,
            )
        )

    def SetTarget(self, Target: str, Reason: str, *, metadata: MetadataDict) -> float:
        return float(
            self._relay(
                metadata,
                "set_target",
                lambda p: p.set_target(Target, reason=Reason, who=WHO),
                target=Target,
                reason=Reason,
            )
        )

    def Bolus(self, Dose: str, Reason: str, *, metadata: MetadataDict) -> float:
        return float(
            self._relay(
                metadata,
                "bolus",
                lambda p: p.bolus(Dose, reason=Reason, who=WHO),
                dose=Dose,
                reason=Reason,
            )
        )

    def ContainerChanged(self, Volume: float, *, metadata: MetadataDict) -> None:
        volume = Volume or None
        self._relay(
            metadata,
            "container_changed",
            lambda p: p.container_changed(volume_ml=volume, who=WHO),
            volume_ml=volume,
        )

    def Phase_on_subscription(self, *, metadata: MetadataDict) -> Queue[str]:
        return self.phase.subscribe(self.ctx.state(self.ctx.pump_name(metadata)))
