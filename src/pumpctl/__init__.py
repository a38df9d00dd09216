"""pumpctl: infusion-pump controller, wire-level simulator and safety supervisor.

Research and lab software, not a medical device. The public API, imported lazily so that
`import pumpctl` stays cheap:

- `check_program(path, overrides=None, model=None)`: validate and compile a program;
- `run_program(program, model=..., port=...)`: check, run and return the result, blocking;
- `open_pump(model, port, clock=...)`: a driver on a device path, pyserial URL or `sim://MODEL`;
- `Supervisor`, `SupervisorConfig`, `RunResult`, `Outcome`, `Plan`, `PumpDriver`;
- `run_with_clock(main, virtual=...)`, `Clock`;
- the errors: `PumpError` and its kinds, `PlanRefused`, `ResumeRefused`, `SupervisorError`.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("pumpctl")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

_EXPORTS = {
    "check_program": "pumpctl.dosing.check",
    "CheckResult": "pumpctl.dosing.check",
    "Plan": "pumpctl.dosing.plan",
    "PlanRefused": "pumpctl.dosing.plan",
    "run_program": "pumpctl.api",
    "open_pump": "pumpctl.runner",
    "Supervisor": "pumpctl.infusion.supervisor",
    "SupervisorConfig": "pumpctl.infusion.config",
    "SupervisorError": "pumpctl.infusion.requests",
    "RunResult": "pumpctl.infusion.outcome",
    "Outcome": "pumpctl.infusion.outcome",
    "Progress": "pumpctl.infusion.outcome",
    "ResumeRefused": "pumpctl.infusion.resume",
    "Clock": "pumpctl.clock",
    "run_with_clock": "pumpctl.clock",
    "PumpDriver": "pumpctl.drivers.base",
    "PumpError": "pumpctl.drivers.base",
    "PumpConnectionError": "pumpctl.drivers.base",
    "PumpTimeout": "pumpctl.drivers.base",
    "ProtocolError": "pumpctl.drivers.base",
    "CommandRejected": "pumpctl.drivers.base",
    "PumpAlarm": "pumpctl.drivers.base",
    "UnsupportedError": "pumpctl.drivers.base",
}

__all__ = [
    "CheckResult",
    "Clock",
    "CommandRejected",
    "Outcome",
    "Plan",
    "PlanRefused",
    "Progress",
    "ProtocolError",
    "PumpAlarm",
    "PumpConnectionError",
    "PumpDriver",
    "PumpError",
    "PumpTimeout",
    "ResumeRefused",
    "RunResult",
    "Supervisor",
    "SupervisorConfig",
    "SupervisorError",
    "UnsupportedError",
    "__version__",
    "check_program",
    "open_pump",
    "run_program",
    "run_with_clock",
]

if TYPE_CHECKING:
    from pumpctl.api import run_program
    from pumpctl.clock import Clock, run_with_clock
    from pumpctl.dosing.check import CheckResult, check_program
    from pumpctl.dosing.plan import Plan, PlanRefused
    from pumpctl.drivers.base import (
        CommandRejected,
        ProtocolError,
        PumpAlarm,
        PumpConnectionError,
        PumpDriver,
        PumpError,
        PumpTimeout,
        UnsupportedError,
    )
    from pumpctl.infusion.config import SupervisorConfig
    from pumpctl.infusion.outcome import Outcome, Progress, RunResult
    from pumpctl.infusion.requests import SupervisorError
    from pumpctl.infusion.resume import ResumeRefused
    from pumpctl.infusion.supervisor import Supervisor
    from pumpctl.runner import open_pump


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pumpctl' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
