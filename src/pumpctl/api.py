"""The synchronous face of pumpctl, for scripts and notebooks.

The library is async (one event loop owns each pump); `run_program` wraps the whole path of a
dose (check, open the pump, supervise, close) in one blocking call. It runs on a worker thread
when the caller already has an event loop running (a Jupyter cell), since an event loop cannot
be started inside another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from pumpctl.clock import Clock, run_with_clock
from pumpctl.dosing.check import check_program
from pumpctl.dosing.plan import Plan, PlanRefused
from pumpctl.infusion.config import SupervisorConfig
from pumpctl.infusion.journal import Journal
from pumpctl.infusion.outcome import RunResult
from pumpctl.runner import open_pump, supervisor_for

__all__ = ["run_program"]

T = TypeVar("T")


def run_program(
    program: Path | str | Plan,
    *,
    model: str,
    port: str,
    journal: Path | str | None = None,
    overrides: Mapping[str, str] | None = None,
    address: int | None = None,
    virtual: bool | None = None,
    time_scale: float = 1.0,
    config: SupervisorConfig | None = None,
) -> RunResult | None:
    """Check `program` for `model` (a program file, or a plan already checked), then run it on
    the pump at `port` (device path, pyserial URL, or `sim://MODEL` for the built-in emulation)
    and return the result; None when a resumed run had nothing left.

    `virtual` (default: True for `sim://` ports) runs on the virtual clock: days in seconds.
    A refused program raises `PlanRefused` (nothing is opened); with a `journal`, an interrupted
    run of the same program is resumed as `pumpctl run` does, or `ResumeRefused` says why not.
    """
    plan = _checked(program, model, overrides)
    on_sim = port.startswith("sim://")
    use_virtual = on_sim if virtual is None else virtual
    if use_virtual and not on_sim:
        raise ValueError("the virtual clock needs an in-process pump: use a sim:// port")

    async def main(clock: Clock) -> RunResult | None:
        jr = Journal(Path(journal)) if journal is not None else None
        try:
            async with open_pump(model, port, clock=clock, address=address) as pump:
                sup, _notes = await supervisor_for(plan, pump, clock, jr, config=config)
                return None if sup is None else await sup.run()
        finally:
            if jr is not None:
                jr.close()

    return _blocking(lambda: run_with_clock(main, virtual=use_virtual, time_scale=time_scale))


def _checked(program: Path | str | Plan, model: str, overrides: Mapping[str, str] | None) -> Plan:
    if isinstance(program, Plan):
        return program
    result = check_program(Path(program), overrides, model=model)
    if result.plan is None or result.violations:
        raise PlanRefused(list(result.violations))
    return result.plan


def _blocking(call: Callable[[], T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return call()
    with ThreadPoolExecutor(max_workers=1) as pool:  # inside a running loop (a notebook)
        return pool.submit(call).result()
