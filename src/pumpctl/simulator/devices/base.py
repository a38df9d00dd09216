"""The contract every wire-level pump emulation implements.

An emulation is a pure state machine over byte buffers and simulated seconds: endpoints feed it
the host's bytes, advance it on some clock and drain its replies. It owns no threads, sockets or
clocks, so the same object serves an in-memory transport on a virtual clock and a pty in real
time, and a test can drive it byte by byte.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["Emulation", "PumpSnapshot"]


class PumpSnapshot(BaseModel):
    """Ground truth of one simulated pump, exactly the keys of the `--state` file.

    `delivered_ml` is the net volume the plunger has pushed since the simulator started (never
    reset by the pump's own counters); `alarm` is the short reason of the alarm that last stopped
    the pump (`stall`, `empty`, `full`, `reset`, `link_timeout`), cleared when the pump next starts.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    running: bool
    direction: Literal["infuse", "withdraw"]
    rate_ml_per_h: float
    delivered_ml: float
    target_ml: float | None
    alarm: str | None


class Emulation(ABC):
    """One serial link with one or more emulated pumps on it.

    `feed` accepts host->pump bytes in any chunking; `read` drains the pump->host bytes due now.
    Neither blocks. Replies a host never reads are kept in a bounded buffer (oldest dropped).
    """

    model: ClassVar[str]
    #: simulated seconds per wall second on the wire. Real-time endpoints on a scaled clock set it
    #: so wire-level timings (e.g. an inter-byte gap) stay wall-clock timings, as on a real line.
    wire_time_scale: float = 1.0

    @abstractmethod
    def feed(self, data: bytes) -> None:
        """Host->pump bytes, arriving at the current simulated time."""

    @abstractmethod
    def read(self) -> bytes:
        """Pump->host bytes that are due by now (a slow-reply fault may hold some back)."""

    @abstractmethod
    def advance(self, seconds: float) -> None:
        """Let `seconds` of simulated time pass (motors run, watchdogs and timers fire)."""

    @property
    @abstractmethod
    def now_s(self) -> float:
        """Simulated seconds since the emulation was created."""

    @abstractmethod
    def snapshot(self) -> dict[int, PumpSnapshot]:
        """Ground truth of every pump, keyed by its current address."""

    # -- fault hooks (tests now, the fault scheduler later) ---------------------------------

    @abstractmethod
    def set_occlusion(self, address: int, on: bool) -> None:
        """Occlude (or release) the line downstream of pump `address`."""

    @abstractmethod
    def set_link_up(self, up: bool) -> None:
        """Down: bytes in both directions are lost (cable pulled); pending output is dropped."""

    @abstractmethod
    def power_cycle(self, address: int) -> None:
        """Power loss and restart: motor stops, counters and program are lost, reset alarm."""

    @abstractmethod
    def garble_next_replies(self, n: int) -> None:
        """Corrupt the next `n` replies (framing kept, content or checksum wrong)."""

    @abstractmethod
    def set_reply_delay_s(self, seconds: float) -> None:
        """Hold every reply back by `seconds` of simulated time (slow pump)."""
