"""Bringing a pump to a known state before the first drop (identified, stopped, container set).

A power-up reset reported before anything was sent is expected, not a fault: the alarm reply
acknowledged it. The plan's rates are checked against the pump's range *after* the container is
configured, because a syringe pump's range follows its syringe. Where the pump has a link
watchdog it is enabled (SR19), at least twice the poll interval.
"""

from __future__ import annotations

from typing import Any

from pumpctl.dosing.plan import Plan
from pumpctl.drivers.base import AlarmReason, PumpAlarm, PumpDriver, PumpError
from pumpctl.infusion.commands import PumpCommands
from pumpctl.infusion.events import PowerUpResetAcknowledged
from pumpctl.infusion.ledger import Alarm

__all__ = ["prepare_pump"]


async def prepare_pump(
    driver: PumpDriver,
    cmds: PumpCommands,
    plan: Plan,
    *,
    watchdog_timeout_s: float | None,
    poll_interval_s: float,
    log: Any,
) -> float | None:
    """Returns the link watchdog period enabled on the pump (None: it has none)."""
    try:
        ident = await driver.identify()
    except PumpAlarm as exc:
        if exc.reason is not AlarmReason.RESET:
            raise Alarm(exc.reason.value, "pump in alarm before the run started") from exc
        cmds.recorder.write(PowerUpResetAcknowledged())
        ident = await cmds.call("identify", driver.identify, idempotent=True)
    except PumpError as exc:
        raise Alarm("communication_lost", f"pump did not identify: {exc}") from exc
    log.info("pump.identified", model=ident.model, firmware=ident.firmware)
    await cmds.call("stop", driver.stop)
    await _configure_container(driver, cmds, plan)
    caps = driver.capabilities
    for seg in plan.segments:
        if not caps.min_rate_ml_per_h <= seg.rate_ml_per_h <= caps.max_rate_ml_per_h:
            raise Alarm(
                "rate_out_of_pump_range",
                f"{seg.phase.value} rate {seg.rate_ml_per_h} mL/h outside the pump's "
                f"{caps.min_rate_ml_per_h}..{caps.max_rate_ml_per_h} mL/h",
            )
    if watchdog_timeout_s is not None and caps.has_link_watchdog:
        wd = max(watchdog_timeout_s, 2 * poll_interval_s)  # SR19
        await cmds.call(
            "enable_link_watchdog", lambda: driver.enable_link_watchdog(wd), timeout_s=wd
        )
        return wd
    return None


async def _configure_container(driver: PumpDriver, cmds: PumpCommands, plan: Plan) -> None:
    container = plan.container
    diameter, capacity = container.inner_diameter_mm, container.capacity_ml
    ml_per_rev = container.ml_per_rev
    if diameter is not None:
        await cmds.call(
            "configure_syringe",
            lambda: driver.configure_syringe(diameter),
            inner_diameter_mm=diameter,
        )
        # pumps that know the syringe's size (Harvard Elite `svolume`) refuse targets above it
        if capacity is not None and driver.capabilities.sets_syringe_volume:
            await cmds.call(
                "configure_syringe_volume",
                lambda: driver.configure_syringe_volume(capacity),
                capacity_ml=capacity,
            )
    elif ml_per_rev is not None:
        await cmds.call(
            "configure_tubing", lambda: driver.configure_tubing(ml_per_rev), ml_per_rev=ml_per_rev
        )
