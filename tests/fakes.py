"""A pump behind the driver interface, for supervisor tests that need precise failure scripts.

It models the pump's motor on the test's clock (so delivered volume is rate x time, capped by the
target) and lets a test make any single call fail, e.g. "the reply to the first RUN is lost but
the RUN executed" (SR21) or "the rate change is never acknowledged" (SR11).
"""

from __future__ import annotations

from collections.abc import Callable

from pumpctl.clock import Clock
from pumpctl.drivers.base import (
    Capabilities,
    DeliveredVolume,
    Direction,
    FrameLength,
    PumpDriver,
    PumpIdentity,
    PumpState,
    PumpStatus,
    PumpTimeout,
)
from pumpctl.drivers.transport import Transport


class _NoTransport(Transport):
    name = "fake://pump"

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def exchange(self, request: bytes, frame_length: FrameLength, timeout_s: float) -> bytes:
        raise AssertionError("the fake driver never touches a transport")

    async def send(self, data: bytes) -> None:
        raise AssertionError("the fake driver never touches a transport")


# A fault: called with the method name and the call count; returns "lost_reply" (executed, reply
# lost), "no_effect" (not executed, reply lost) or None (normal).
Fault = Callable[[str, int], str | None]


class FakePump(PumpDriver):
    family = "fake"

    def __init__(self, clock: Clock, fault: Fault | None = None) -> None:
        super().__init__(_NoTransport(), address=0)
        self.clock = clock
        self.fault = fault
        self.calls: list[str] = []
        self.rate_ml_per_h = 0.0
        self.target_ml: float | None = None
        self.state = PumpState.STOPPED
        self.counter_ml = 0.0
        self.total_ml = 0.0
        self._t = clock.now()

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            family="fake",
            can_withdraw=False,
            min_rate_ml_per_h=0.001,
            max_rate_ml_per_h=1000.0,
            volume_resolution_ml=0.001,
            rate_resolution_ml_per_h=0.001,
            accuracy_percent=1.0,
        )

    def _advance(self) -> None:
        now = self.clock.now()
        if self.state is PumpState.RUNNING:
            dv = self.rate_ml_per_h * (now - self._t) / 3600.0
            if self.target_ml is not None:
                dv = min(dv, self.target_ml - self.counter_ml)
            self.counter_ml += dv
            self.total_ml += dv
            if self.target_ml is not None and self.counter_ml >= self.target_ml - 1e-12:
                self.state = PumpState.STOPPED
        self._t = now

    def _call(self, name: str, action: Callable[[], None]) -> None:
        self._advance()
        self.calls.append(name)
        verdict = self.fault(name, self.calls.count(name)) if self.fault else None
        if verdict != "no_effect":
            action()
        if verdict is not None:
            raise PumpTimeout(f"fake: no reply to {name}")

    async def identify(self) -> PumpIdentity:
        self._call("identify", lambda: None)
        return PumpIdentity(model="FAKE", firmware="1")

    async def configure_syringe(self, inner_diameter_mm: float) -> None:
        self._call("configure_syringe", lambda: None)

    async def set_rate(self, rate_ml_per_h: float, direction: Direction = Direction.INFUSE) -> None:
        def act() -> None:
            self.rate_ml_per_h = rate_ml_per_h

        self._call("set_rate", act)

    async def set_target_volume(self, volume_ml: float | None) -> None:
        def act() -> None:
            self.target_ml = volume_ml

        self._call("set_target_volume", act)

    async def start(self) -> None:
        def act() -> None:
            self.state = PumpState.RUNNING

        self._call("start", act)

    async def pause(self) -> None:
        def act() -> None:
            self.state = PumpState.PAUSED

        self._call("pause", act)

    async def stop(self) -> None:
        def act() -> None:
            self.state = PumpState.STOPPED

        self._call("stop", act)

    async def read_status(self) -> PumpStatus:
        self._call("read_status", lambda: None)
        return PumpStatus(state=self.state, direction=Direction.INFUSE)

    async def read_delivered(self) -> DeliveredVolume:
        self._call("read_delivered", lambda: None)
        return DeliveredVolume(infused_ml=round(self.counter_ml, 3))

    async def clear_counters(self) -> None:
        def act() -> None:
            self.counter_ml = 0.0

        self._call("clear_counters", act)
