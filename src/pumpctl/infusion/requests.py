"""Operator requests to a running supervisor, as types instead of strings.

Requests are queued to the supervisor's single task and executed between polls, so the pump and
the phase machine have one writer. Each request carries who asked and why: both are journaled
with what the request did (SR10).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

__all__ = [
    "BolusRequest",
    "ContainerChangedRequest",
    "PauseRequest",
    "Queued",
    "Request",
    "ResumeRequest",
    "StopRequest",
    "SupervisorError",
    "TargetRequest",
    "TitrateRequest",
]


class SupervisorError(Exception):
    """An operator request that is refused (wrong phase, titration limit...)."""


@dataclass(frozen=True)
class PauseRequest:
    reason: str = ""
    who: str = "operator"


@dataclass(frozen=True)
class ResumeRequest:
    who: str = "operator"


@dataclass(frozen=True)
class StopRequest:
    reason: str = ""
    who: str = "operator"


@dataclass(frozen=True)
class TitrateRequest:
    """A new maintenance rate in mL/h (the control socket converts dose units first)."""

    rate_ml_per_h: float
    reason: str
    who: str = "operator"


@dataclass(frozen=True)
class ContainerChangedRequest:
    """A full new syringe/reservoir is in place; `volume_ml` None = its nominal capacity."""

    volume_ml: float | None = None
    who: str = "operator"


@dataclass(frozen=True)
class TargetRequest:
    """A new TCI target in µg/mL (SR09's step and interval limits apply)."""

    target_ug_per_ml: float
    reason: str
    who: str = "operator"


@dataclass(frozen=True)
class BolusRequest:
    """A clinician bolus in mg (the control socket converts mg/kg first)."""

    dose_mg: float
    reason: str
    who: str = "operator"


Request = (
    PauseRequest
    | ResumeRequest
    | StopRequest
    | TitrateRequest
    | ContainerChangedRequest
    | TargetRequest
    | BolusRequest
)


@dataclass
class Queued:
    """A request and the future its caller awaits (done when executed, or its refusal)."""

    request: Request
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def succeed(self) -> None:
        if not self.done.done():  # the caller may have given up waiting
            self.done.set_result(None)

    def fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)
