"""Fault injection for the simulator: what goes wrong, when, and for how long.

A spec is `KIND[/ADDRESS]@WHEN[:DURATION][=ARG]`, e.g. `stall@300s`, `link-drop@10m:30s`,
`near-empty/1@1h=2`, `garble@#120=3`, `baud@90s=9600`. WHEN is the pump's simulated time since
the simulator started (`300s`, `10m`, `1h`, `250ms`) or a command count (`#120`: once the pump
has received 120 command frames, so the fault affects the 121st on). DURATION (same time units)
ends a fault: the link comes back, the occlusion is released, the delay or the baud reverts.
ADDRESS picks one pump on a shared link (default: every pump).

The schedule is applied by whoever advances the emulation (the in-memory transport and the
pty/TCP endpoints), at exact simulated times: endpoints split their advances at `next_due_s()`.
Random choices (which bytes a garble fault hits) come from the `random.Random` the schedule is
given, so a seeded run replays byte for byte.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pumpctl.log import get_logger
from pumpctl.simulator.devices.base import Emulation

__all__ = [
    "BAUD_RATES",
    "Fault",
    "FaultKind",
    "FaultSchedule",
    "FaultSpecError",
    "garble_bytes",
    "parse_fault",
]

#: standard UART rates a `baud` fault may switch to
BAUD_RATES = (300, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
_UNITS_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_TIME = r"\d+(?:\.\d+)?(?:ms|s|m|h)?"
_SPEC = re.compile(
    rf"(?P<kind>[a-z-]+)(?:/(?P<address>\d{{1,2}}))?"
    rf"@(?P<when>#\d+|{_TIME})(?::(?P<duration>{_TIME}))?(?:=(?P<arg>[0-9.]+))?"
)


class FaultKind(StrEnum):
    STALL = "stall"  # occlusion: pressure rises until the pump stalls with its alarm
    NEAR_EMPTY = "near-empty"  # ARG mL (default 1) left in the syringe
    EMPTY = "empty"  # nothing left: an infusing pump stops with its alarm
    LINK_DROP = "link-drop"  # no bytes either way (cable pulled)
    GARBLE = "garble"  # ARG (default 1) replies get random bytes flipped
    CRC = "crc"  # ARG (default 1) safe-mode replies get a wrong CRC
    TRUNCATE = "truncate"  # ARG (default 1) replies lose their second half
    SLOW = "slow"  # every reply ARG s (default 1) late
    RESET = "reset"  # power loss: program and counters lost, reset alarm; DURATION: off that
    # long, the whole link silent meanwhile
    BAUD = "baud"  # the pump's baud becomes ARG (required)


#: kinds whose ARG counts replies; with a DURATION they hit every reply in the window instead
_COUNTED = frozenset({FaultKind.GARBLE, FaultKind.CRC, FaultKind.TRUNCATE})
_PER_PUMP = frozenset({FaultKind.STALL, FaultKind.NEAR_EMPTY, FaultKind.EMPTY, FaultKind.RESET})
_NO_ARG = frozenset({FaultKind.STALL, FaultKind.EMPTY, FaultKind.LINK_DROP, FaultKind.RESET})
_DEFAULT_ARG = {
    FaultKind.NEAR_EMPTY: 1.0,
    FaultKind.GARBLE: 1.0,
    FaultKind.CRC: 1.0,
    FaultKind.TRUNCATE: 1.0,
    FaultKind.SLOW: 1.0,
}
_EVERY_REPLY = 1_000_000_000  # "all replies" for a counted fault bounded by a duration


class FaultSpecError(ValueError):
    """A fault spec that cannot be parsed; the message names the spec and what is allowed."""


class Fault(BaseModel):
    """One scheduled fault: at simulated `at_s` or after `at_command` commands, for
    `duration_s` (None: for good / one-shot), on pump `address` (None: every pump)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FaultKind
    at_s: float | None = Field(None, ge=0)
    at_command: int | None = Field(None, ge=0)
    duration_s: float | None = Field(None, gt=0)
    argument: float | None = None
    address: int | None = Field(None, ge=0, le=99)

    @model_validator(mode="after")
    def _check(self) -> Fault:
        if (self.at_s is None) == (self.at_command is None):
            raise ValueError("give exactly one of at_s (time) or at_command (command count)")
        arg = self.argument
        if self.kind is FaultKind.BAUD and (
            arg is None or int(arg) != arg or arg not in BAUD_RATES
        ):
            raise ValueError(f"baud wants one of {', '.join(map(str, BAUD_RATES))}, got {arg}")
        if self.kind in _COUNTED and arg is not None and (arg < 1 or int(arg) != arg):
            raise ValueError(f"{self.kind} wants a whole number of replies >= 1, got {arg}")
        if self.kind is FaultKind.NEAR_EMPTY and arg is not None and arg < 0:
            raise ValueError(f"near-empty wants the mL left (>= 0), got {arg}")
        if self.kind is FaultKind.SLOW and arg is not None and arg <= 0:
            raise ValueError(f"slow wants the reply delay in s (> 0), got {arg}")
        if self.kind in _NO_ARG and arg is not None:
            raise ValueError(f"{self.kind} takes no argument")
        if self.kind in (FaultKind.NEAR_EMPTY, FaultKind.EMPTY) and self.duration_s is not None:
            raise ValueError(f"{self.kind} has no duration (the syringe stays as it is)")
        if self.address is not None and self.kind not in _PER_PUMP:
            raise ValueError(f"{self.kind} acts on the whole link, not on one pump address")
        return self

    @property
    def value(self) -> float:
        """The argument, or the kind's default."""
        return self.argument if self.argument is not None else _DEFAULT_ARG.get(self.kind, 0.0)

    def __str__(self) -> str:
        where = f"/{self.address}" if self.address is not None else ""
        when = f"#{self.at_command}" if self.at_s is None else f"{_plain(self.at_s)}s"
        span = f":{_plain(self.duration_s)}s" if self.duration_s is not None else ""
        arg = f"={_plain(self.argument)}" if self.argument is not None else ""
        return f"{self.kind}{where}@{when}{span}{arg}"


def _plain(value: float) -> str:
    """`300.0 -> "300"`, `0.25 -> "0.25"`: no exponent, so the text parses back."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _seconds(text: str, spec: str, what: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text)
    if m is None or m.group(2) is None:
        raise FaultSpecError(
            f"fault {spec!r}: {what} {text!r} needs a unit: ms, s, m or h (e.g. 300s, 10m, 1h)"
        )
    return float(m.group(1)) * _UNITS_S[m.group(2)]


def parse_fault(spec: str) -> Fault:
    """`"link-drop@10m:30s"` -> Fault; FaultSpecError names the spec and the allowed forms."""
    text = spec.strip().lower()
    m = _SPEC.fullmatch(text)
    kinds = ", ".join(k.value for k in FaultKind)
    if m is None:
        raise FaultSpecError(
            f"bad fault {spec!r}: want KIND[/ADDRESS]@WHEN[:DURATION][=ARG], WHEN a simulated "
            f"time (300s, 10m, 1h, 250ms) or a command count (#120); kinds: {kinds}"
        )
    try:
        kind = FaultKind(m.group("kind"))
    except ValueError:
        raise FaultSpecError(
            f"unknown fault kind {m.group('kind')!r} in {spec!r}; kinds: {kinds}"
        ) from None
    when = m.group("when")
    at_s = None if when.startswith("#") else _seconds(when, spec, "time")
    at_command = int(when[1:]) if when.startswith("#") else None
    duration = m.group("duration")
    duration_s = _seconds(duration, spec, "duration") if duration else None
    arg = m.group("arg")
    try:
        argument = float(arg) if arg else None
    except ValueError:
        raise FaultSpecError(f"bad fault {spec!r}: argument {arg!r} is not a number") from None
    try:
        address = int(m.group("address")) if m.group("address") else None
        return Fault(
            kind=kind,
            at_s=at_s,
            at_command=at_command,
            duration_s=duration_s,
            argument=argument,
            address=address,
        )
    except ValidationError as exc:
        reason = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise FaultSpecError(f"bad fault {spec!r}: {reason}") from None


def garble_bytes(data: bytes, rng: random.Random) -> bytes:
    """Flip one random bit in each of 1-3 random bytes, never the first (STX) or last (ETX) so
    the reply still frames: the host sees a complete reply with wrong content or checksum."""
    if len(data) < 3:
        return data
    out = bytearray(data)
    for i in rng.sample(range(1, len(data) - 1), min(len(data) - 2, rng.randint(1, 3))):
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def _truncate(data: bytes) -> bytes:
    """Keep the first half (at least one byte): a reply cut off mid-frame."""
    return data[: max(1, len(data) // 2)]


class _Active(BaseModel):
    model_config = ConfigDict(frozen=True)

    fault: Fault
    ends_s: float
    restore: float | None = None  # what the fault's end puts back (the baud before it)


class FaultSchedule:
    """Faults waiting to start and running ones waiting to end, applied to one emulation.

    `apply_due(emulation, now_s, commands_seen)` starts every fault due by then and ends every
    timed fault whose duration is over; callers advance the emulation no further than
    `next_due_s()` between calls so faults act at their exact simulated time.
    """

    def __init__(self, faults: Iterable[Fault], rng: random.Random) -> None:
        self.rng = rng
        self._pending = list(faults)
        self._active: list[_Active] = []
        self.log = get_logger("pumpctl.simulator.faults")
        #: every start/end applied, as (simulated s, "start"/"end", fault text), for rigs and tests
        self.history: list[tuple[float, str, str]] = []

    @classmethod
    def from_specs(cls, specs: Iterable[str], seed: int = 0) -> FaultSchedule:
        return cls([parse_fault(s) for s in specs], random.Random(seed))

    @property
    def faults(self) -> list[Fault]:
        return [*self._pending, *(a.fault for a in self._active)]

    @property
    def done(self) -> bool:
        return not self._pending and not self._active

    def check(self, emulation: Emulation) -> None:
        """ValueError if a fault cannot act on this emulation (unknown address, no syringe)."""
        addresses = set(emulation.snapshot())
        for f in self._pending:
            if f.address is not None and f.address not in addresses:
                raise ValueError(f"fault {f}: no pump at address {f.address} on this link")
            if (
                f.kind in (FaultKind.NEAR_EMPTY, FaultKind.EMPTY)
                and not type(emulation).supports_contents()
            ):
                raise ValueError(f"fault {f}: the {emulation.model} emulation has no syringe")

    def next_due_s(self) -> float | None:
        """Earliest simulated time at which something starts or ends (time-triggered only)."""
        times = [f.at_s for f in self._pending if f.at_s is not None]
        times += [a.ends_s for a in self._active]
        return min(times) if times else None

    def apply_due(self, emulation: Emulation, now_s: float, commands_seen: int) -> list[str]:
        """Start and end what is due; returns what happened (e.g. `["start stall@300s"]`)."""
        events: list[str] = []
        for active in [a for a in self._active if a.ends_s <= now_s]:
            self._active.remove(active)
            self._end(emulation, active)
            events.append(self._record(now_s, "end", active.fault))
        for fault in list(self._pending):
            due = (fault.at_s is not None and fault.at_s <= now_s) or (
                fault.at_command is not None and fault.at_command <= commands_seen
            )
            if not due:
                continue
            self._pending.remove(fault)
            restore = self._start(emulation, fault)
            events.append(self._record(now_s, "start", fault))
            if fault.duration_s is not None:
                ends_s = now_s + fault.duration_s
                self._active.append(_Active(fault=fault, ends_s=ends_s, restore=restore))
        return events

    def _record(self, now_s: float, what: str, fault: Fault) -> str:
        self.history.append((now_s, what, str(fault)))
        self.log.warning(f"fault.{what}", fault=str(fault), sim_s=round(now_s, 6))
        return f"{what} {fault}"

    @staticmethod
    def _targets(emulation: Emulation, fault: Fault) -> list[int]:
        return [fault.address] if fault.address is not None else sorted(emulation.snapshot())

    def _start(self, emulation: Emulation, fault: Fault) -> float | None:
        kind = fault.kind
        n = _EVERY_REPLY if fault.duration_s is not None else int(fault.value)
        if kind is FaultKind.STALL:
            for a in self._targets(emulation, fault):
                emulation.set_occlusion(a, True)
        elif kind in (FaultKind.NEAR_EMPTY, FaultKind.EMPTY):
            left = fault.value if kind is FaultKind.NEAR_EMPTY else 0.0
            for a in self._targets(emulation, fault):
                emulation.set_syringe_remaining_ml(a, left)
        elif kind is FaultKind.LINK_DROP:
            emulation.set_link_up(False)
        elif kind is FaultKind.GARBLE:
            rng = self.rng
            emulation.mangle_next_replies(n, lambda data: garble_bytes(data, rng))
        elif kind is FaultKind.CRC:
            emulation.corrupt_next_checksums(n)
        elif kind is FaultKind.TRUNCATE:
            emulation.mangle_next_replies(n, _truncate)
        elif kind is FaultKind.SLOW:
            emulation.set_reply_delay_s(fault.value)
        elif kind is FaultKind.RESET:
            if fault.duration_s is not None:
                emulation.set_link_up(False)  # powered off: silent until power returns
            for a in self._targets(emulation, fault):
                emulation.power_cycle(a)
        elif kind is FaultKind.BAUD:
            before = emulation.uart_settings().baud
            emulation.set_baud_rate(int(fault.value))
            return before
        return None

    def _end(self, emulation: Emulation, active: _Active) -> None:
        fault = active.fault
        kind = fault.kind
        if kind is FaultKind.STALL:
            for a in self._targets(emulation, fault):
                emulation.set_occlusion(a, False)  # the stored bolus goes at once (SR27)
        elif kind is FaultKind.LINK_DROP:
            emulation.set_link_up(True)
        elif kind in (FaultKind.GARBLE, FaultKind.TRUNCATE):
            emulation.mangle_next_replies(0, _truncate)
        elif kind is FaultKind.CRC:
            emulation.corrupt_next_checksums(0)
        elif kind is FaultKind.SLOW:
            emulation.set_reply_delay_s(0.0)
        elif kind is FaultKind.RESET:
            emulation.set_link_up(True)
            for a in self._targets(emulation, fault):
                emulation.power_cycle(a)  # power returns: the power-up reset alarm (and A?R)
        elif kind is FaultKind.BAUD and active.restore is not None:
            emulation.set_baud_rate(int(active.restore))
        # near-empty / empty: the syringe stays as it is
