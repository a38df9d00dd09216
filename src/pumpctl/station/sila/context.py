"""What every feature implementation shares: the station, the loop bridge, the pump a call names,
the commands running now, and per-pump queues for observable properties.

Errors are mapped here once, so a refusal reads the same whichever feature it came through.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from queue import Queue
from typing import Any, Generic, TypeVar, cast
from uuid import UUID

from sila2.framework import DefinedExecutionError, Metadata
from sila2.server import MetadataDict, MetadataInterceptor

from pumpctl.infusion.resume import ResumeRefused
from pumpctl.log import get_logger
from pumpctl.station.programs import ProgramRefused, violation_record
from pumpctl.station.pump import PumpBusy, PumpFault, PumpState, RunWatch
from pumpctl.station.sila.bridge import LoopBridge
from pumpctl.station.sila.features import defined_error, feature
from pumpctl.station.station import Station, UnknownPump

__all__ = ["WHO", "PumpQueues", "Running", "StationContext", "refused_json"]

T = TypeVar("T")
WHO = "SiLA client"
_REPEAT_S = 0.1  # a new subscriber's first value is sent twice, see `PumpQueues.subscribe`


def pump_name_metadata() -> Metadata[Any]:
    return cast(Metadata[Any], feature("StationService")["PumpName"])


def refused_json(exc: ProgramRefused) -> str:
    """The check result as the typed error's message (SR02): exit code and every violation."""
    return json.dumps(
        {
            "exit_code": exc.exit_code,
            "violations": [violation_record(v) for v in exc.result.violations],
        }
    )


@dataclass
class Running:
    """A SiLA command execution that drives a pump run."""

    pump: str
    watch: RunWatch
    command: str


class PumpQueues(Generic[T]):
    """One observable property, per pump: a queue each, fed only once someone subscribed.

    sila2 keeps one subscription thread per queue and replays its last value to new
    subscribers. Values are put only when they change, and only for pumps with a subscriber
    (an unread queue would grow forever).
    """

    def __init__(self, read: Callable[[PumpState], T]) -> None:
        self.read = read
        self._lock = threading.Lock()
        self._queues: dict[str, Queue[T]] = {}
        self._last: dict[str, T] = {}

    def subscribe(self, state: PumpState) -> Queue[T]:
        """The pump's queue, primed with its current value (again shortly after: sila2 may
        forward the first one before this subscriber is registered with its thread)."""
        value = self.read(state)
        with self._lock:
            q = self._queues.setdefault(state.name, Queue())
            self._last[state.name] = value
        q.put(value)
        timer = threading.Timer(_REPEAT_S, self._repeat, args=(state.name,))
        timer.daemon = True
        timer.start()
        return q

    def _repeat(self, name: str) -> None:
        with self._lock:
            q, value = self._queues.get(name), self._last.get(name)
        if q is not None and value is not None:
            q.put(value)

    def publish(self, state: PumpState) -> None:
        """On the loop, after every poll: pass on what changed."""
        value = self.read(state)
        with self._lock:
            q = self._queues.get(state.name)
            if q is None or self._last.get(state.name) == value:
                return
            self._last[state.name] = value
        q.put(value)


class StationContext:
    """Shared by the feature implementations of one server."""

    def __init__(self, station: Station, bridge: LoopBridge) -> None:
        self.station = station
        self.bridge = bridge
        self._running: dict[UUID, Running] = {}
        self._lock = threading.Lock()
        self.log = get_logger("pumpctl.station.sila", station=station.spec.station)

    def command(self, command: str, pump: str | None = None, **details: Any) -> None:
        """Every SiLA command that acts on the station is logged, with the pump id bound."""
        self.log.info("sila.command", command=command, pump_id=pump, **details)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.bridge.call(coro)

    def pump_name(self, metadata: MetadataDict) -> str:
        name = str(metadata[pump_name_metadata()])
        self.station.pump(name)  # UnknownPump
        return name

    def state(self, name: str) -> PumpState:
        return self.station.pump(name).state()

    # ---------------------------------------------------------------- running commands

    def register(self, execution: UUID, running: Running) -> None:
        with self._lock:
            self._running[execution] = running

    def unregister(self, execution: UUID) -> None:
        with self._lock:
            self._running.pop(execution, None)

    def running(self, execution: UUID) -> Running | None:
        with self._lock:
            return self._running.get(execution)

    def all_running(self) -> list[Running]:
        with self._lock:
            return list(self._running.values())

    # ---------------------------------------------------------------- errors

    def start_error(self, feature_name: str, exc: Exception) -> DefinedExecutionError | None:
        """A refusal to start a run as the feature's defined error; None: not a refusal."""
        if isinstance(exc, PumpBusy):
            return defined_error(feature_name, "PumpIsBusy", str(exc))
        if isinstance(exc, PumpFault):
            return defined_error(feature_name, "PumpIsInFaultState", str(exc))
        if isinstance(exc, ResumeRefused):
            if feature_name == "InfusionProgramService":
                return defined_error(feature_name, "RunRefused", str(exc))
            return defined_error(feature_name, "PumpIsInFaultState", str(exc))
        if isinstance(exc, UnknownPump):
            return unknown_pump(exc)
        return None


def unknown_pump(exc: UnknownPump) -> DefinedExecutionError:
    return defined_error("StationService", "UnknownPump", str(exc))


class PumpNameInterceptor(MetadataInterceptor):
    """Refuses a call naming a pump the station does not have, before it does anything."""

    def __init__(self, station: Station) -> None:
        super().__init__([pump_name_metadata()])
        self.station = station

    def intercept(self, parameters: Any, metadata: MetadataDict, target_call: Any) -> None:
        try:
            self.station.pump(str(metadata[pump_name_metadata()]))
        except UnknownPump as exc:
            raise unknown_pump(exc) from None
