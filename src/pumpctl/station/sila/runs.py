"""A SiLA command that drives a pump run: start it on the loop, report it, end with its result.

sila2 gives an observable command no cancel hook; CancelController finds the run through the
context's registry and stops the pump, after which the run (and so the command) ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sila2.server import ObservableCommandInstance

from pumpctl.dosing.plan import Plan
from pumpctl.infusion.supervisor import Progress, RunResult
from pumpctl.station.pump import RunWatch
from pumpctl.station.sila.context import WHO, Running, StationContext

__all__ = ["follow", "start_run"]


def start_run(
    ctx: StationContext,
    feature_name: str,
    *,
    pump: str,
    plan: Plan,
    command: str,
    instance: ObservableCommandInstance,
    plain: bool = False,
    new_run_reason: str | None = None,
) -> RunWatch:
    """Start `plan` on `pump` and register the execution; refusals as `feature_name`'s errors."""
    ctx.command(command, pump, program_id=plan.program, execution=str(instance.execution_uuid))
    try:
        watch = ctx.call(
            ctx.station.start(pump, plan, who=WHO, plain=plain, new_run_reason=new_run_reason)
        )
    except Exception as exc:
        error = ctx.start_error(feature_name, exc)
        if error is None:
            raise
        raise error from exc
    ctx.register(instance.execution_uuid, Running(pump, watch, command))
    instance.begin_execution()
    return watch


def follow(
    ctx: StationContext,
    instance: ObservableCommandInstance,
    watch: RunWatch,
    send: Callable[[Progress], Any] | None = None,
) -> RunResult | None:
    """Report the run until it ends; its result (None: nothing remained), or its error raised."""
    try:
        for progress in watch.updates():
            if progress is None:
                continue
            planned = progress.total_planned_ml
            if planned:
                # sila2 declares the setter apart from the getter, which mypy reads as read-only
                instance.progress = min(1.0, max(0.0, progress.total_delivered_ml / planned))  # type: ignore[misc]
            if send is not None:
                send(progress)
    finally:
        ctx.unregister(instance.execution_uuid)
    if watch.error is not None:
        raise watch.error
    return watch.result
