"""The contract every wire-level pump emulation implements.

An emulation is a pure state machine over byte buffers and simulated seconds: endpoints feed it
the host's bytes, advance it on some clock and drain its replies. It owns no threads, sockets or
clocks, so the same object serves an in-memory transport on a virtual clock and a pty in real
time, and a test can drive it byte by byte.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BufferedEmulation",
    "Emulation",
    "LineSettings",
    "PumpSnapshot",
]


class LineSettings(BaseModel):
    """A UART's line settings: baud, data bits, parity (N/E/O), stop bits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    baud: int = Field(19200, gt=0)
    data_bits: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stop_bits: Literal[1, 2] = 1

    @property
    def bits_per_byte(self) -> int:
        """Start bit + data + parity + stop bits: the wire time of one byte is this / baud."""
        return 1 + self.data_bits + (self.parity != "N") + self.stop_bits

    @property
    def bytes_per_s(self) -> float:
        return self.baud / self.bits_per_byte

    def __str__(self) -> str:
        return f"{self.baud} {self.data_bits}{self.parity}{self.stop_bits}"


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
    #: the pump's UART settings; None: the family's declared or factory ones (`uart_settings()`)
    uart: LineSettings | None = None
    #: factory line settings unlike the family spec's (an emulation of a variant, a test): whole,
    #: or field by field; None keeps the spec's (see `uart_settings`)
    line_settings: ClassVar[LineSettings | None] = None
    baud_rate: ClassVar[int | None] = None
    data_bits: ClassVar[Literal[5, 6, 7, 8] | None] = None
    parity: ClassVar[Literal["N", "E", "O"] | None] = None
    stop_bits: ClassVar[Literal[1, 2] | None] = None
    #: True when the emulation counts host command frames in `commands_seen` itself; otherwise
    #: endpoints count CR-terminated lines (command-count faults need one or the other)
    counts_commands: ClassVar[bool] = False
    #: host command frames (lines or packets, valid or not) the pump has received
    commands_seen: int = 0

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

    # -- optional hooks (defaults work through the methods above) ---------------------------

    def uart_settings(self) -> LineSettings:
        """The pump's current line settings: `uart` if set (a `baud` fault sets it), else the
        factory settings: the class's `line_settings` when it declares them whole, else the
        model's family spec (9600 8N1 without one) with the fields the class declares
        (`baud_rate`, `data_bits`, `parity`, `stop_bits`). Endpoints ask again only when the
        object in `uart` changes: an override must depend on nothing else that changes."""
        if self.uart is not None:
            return self.uart
        # the factory settings only depend on class-level declarations: work them out once
        # (`set_baud_rate` changes `uart`, not these)
        cached: LineSettings | None = self.__dict__.get("_factory_uart")
        if cached is None:
            cached = self._factory_uart = self._factory_uart_settings()
        return cached

    def _factory_uart_settings(self) -> LineSettings:
        from pumpctl.simulator.registry import line_settings as spec_line  # lazy: import cycle

        if self.line_settings is not None:
            return self.line_settings
        line = spec_line(self.model) or LineSettings(baud=9600)
        declared = {
            "baud": self.baud_rate,
            "data_bits": self.data_bits,
            "parity": self.parity,
            "stop_bits": self.stop_bits,
        }
        update = {name: value for name, value in declared.items() if value is not None}
        return LineSettings.model_validate({**line.model_dump(), **update}) if update else line

    def set_baud_rate(self, baud: int) -> None:
        """The pump's baud changes (menu, power-up at another setting): a client at the old baud
        no longer understands it. Endpoints compare this with the client's settings."""
        self.uart = self.uart_settings().model_copy(update={"baud": baud})

    def mangle_next_replies(self, n: int, mangle: Callable[[bytes], bytes]) -> None:
        """Pass the next `n` whole replies through `mangle` (garbled bytes, truncation); 0
        cancels. Default: `garble_next_replies(n)`, a family-specific corruption."""
        self.garble_next_replies(n)

    def corrupt_next_checksums(self, n: int) -> None:
        """Wrong checksum on the next `n` checksummed replies (framing and content intact); 0
        cancels. Default: `garble_next_replies(n)`."""
        self.garble_next_replies(n)

    def set_syringe_remaining_ml(self, address: int, remaining_ml: float) -> None:
        """Leave `remaining_ml` in pump `address`'s container (near-empty, empty); motion goes
        on. Optional: families without a volume-limited container do not override it."""
        raise NotImplementedError(f"the {self.model} emulation has no syringe contents to set")

    # -- the rig's containers: what a person fits on the pump (runner, station, accuracy) ----

    def load_syringe(
        self, address: int, inner_diameter_mm: float, capacity_ml: float, contents_ml: float
    ) -> None:
        """Put a syringe of this bore and capacity holding `contents_ml` on pump `address`
        (rig setup, a container change); the pump's own diameter setting follows where the
        family ties them. Syringe pumps implement it."""
        raise NotImplementedError(f"the {self.model} emulation takes no syringe")

    def set_ml_per_rev(self, address: int, ml_per_rev: float) -> None:
        """The true displacement of pump `address`'s tubing (or a syringe pump's stroke
        volume), mL per revolution: what the rig has fitted, whatever the pump was told.
        Peristaltic and stroke pumps implement it."""
        raise NotImplementedError(f"the {self.model} emulation has no tubing to fit")

    def set_reservoir_ml(self, address: int, volume_ml: float) -> None:
        """A new reservoir (bottle, bag) of `volume_ml` upstream of pump `address`. Pumps that
        draw from a reservoir implement it."""
        raise NotImplementedError(f"the {self.model} emulation draws from no reservoir")

    @classmethod
    def supports_contents(cls) -> bool:
        """Whether `set_syringe_remaining_ml` is implemented (checked before scheduling)."""
        return cls.set_syringe_remaining_ml is not Emulation.set_syringe_remaining_ml


class BufferedEmulation(Emulation):
    """An emulation with the host-facing plumbing every family shares, implemented once.

    Keeps the simulated time `_now` (the family's `advance` moves it), the bounded outbound
    queue of (due time, bytes, is-reply) that `read` drains, the link state and the reply
    faults (garble, mangle, delay). A family implements `_receive` (bytes from the host, link
    up), `_drop_partial_input` (a pulled cable loses the half-received frame) and its codec;
    it passes each whole reply through `_inject_faults` and queues it with `_queue` (both at
    once: `_queue_reply`).
    """

    def __init__(self, *, max_outbound_bytes: int = 4096) -> None:
        self._now = 0.0
        #: outbound bytes kept for a host that does not read; beyond it the oldest are dropped
        self.max_outbound_bytes = max_outbound_bytes
        self._out: deque[tuple[float, bytes, bool]] = deque()  # (due_s, bytes, is_reply)
        self._out_bytes = 0
        self._link_up = True
        self._garble = 0
        self._mangle: tuple[int, Callable[[bytes], bytes]] | None = None
        self._delay_s = 0.0
        self.commands_seen = 0

    @abstractmethod
    def _receive(self, data: bytes) -> None:
        """Host->pump bytes (not empty) while the link is up: parse and answer them."""

    @abstractmethod
    def _drop_partial_input(self) -> None:
        """The link went down: forget any partly received line, packet or frame."""

    # -- Emulation API -----------------------------------------------------------------------

    @property
    def now_s(self) -> float:
        return self._now

    def feed(self, data: bytes) -> None:
        if self._link_up and data:
            self._receive(data)

    def read(self) -> bytes:
        out = self._out
        now = self._now
        if not out or out[0][0] > now:
            return b""
        _, data, _ = out.popleft()
        self._out_bytes -= len(data)
        if not out or out[0][0] > now:
            return data  # the usual: one reply
        chunks = [data]
        while out and out[0][0] <= now:
            _, data, _ = out.popleft()
            self._out_bytes -= len(data)
            chunks.append(data)
        return b"".join(chunks)

    def set_link_up(self, up: bool) -> None:
        self._link_up = up
        if not up:
            self._out.clear()
            self._out_bytes = 0
            self._drop_partial_input()

    def garble_next_replies(self, n: int) -> None:
        self._garble = max(0, n)

    def mangle_next_replies(self, n: int, mangle: Callable[[bytes], bytes]) -> None:
        self._mangle = (n, mangle) if n > 0 else None

    def set_reply_delay_s(self, seconds: float) -> None:
        self._delay_s = max(0.0, seconds)

    # -- for the family's codec ----------------------------------------------------------------

    def _queue_reply(self, data: bytes, garble_at: int) -> None:
        """`_queue(_inject_faults(data, garble_at))`, the faults only called when one is
        pending: every reply comes this way, and with none pending (the usual) that call is
        a poll's cost for nothing."""
        if self._garble or self._mangle is not None:
            data = self._inject_faults(data, garble_at)
        self._queue(data)

    def _queue(self, data: bytes, *, reply: bool = True) -> None:
        """Queue pump->host bytes: a reply is due after the reply delay, an unsolicited
        message at once. A host that never reads: the oldest entries are dropped."""
        out = self._out
        out.append((self._now + self._delay_s if reply else self._now, data, reply))
        self._out_bytes += len(data)
        while self._out_bytes > self.max_outbound_bytes and len(out) > 1:
            _, old, _ = out.popleft()
            self._out_bytes -= len(old)

    def _reply_pending(self) -> bool:
        """Whether a reply is queued that the host has not read yet."""
        return any(is_reply for _, _, is_reply in self._out)

    def _inject_faults(self, data: bytes, garble_at: int) -> bytes:
        """One whole reply through the pending reply faults: a garble flips bit 6 of byte
        `garble_at` (the family picks a byte that keeps the framing), then a mangle."""
        if self._garble:
            self._garble -= 1
            data = data[:garble_at] + bytes((data[garble_at] ^ 0x40,)) + data[garble_at + 1 :]
        if self._mangle is not None:
            left, mangle = self._mangle
            self._mangle = (left - 1, mangle) if left > 1 else None
            data = mangle(data)
        return data
