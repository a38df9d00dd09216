"""Benchmark 2, wire floor: status+volume polls per second over a pty vs bytes on the wire.

An NE-1000 emulation is served on a pty by a helper process (`bench._pty_sim`); the real
`NE1000Driver` on a `SerialTransport` polls it (`read_poll`: one `DIS` exchange, safe mode with
the link watchdog, as the supervisor does) as fast as it can. Every frame both ways is
counted, so the theoretical maximum is `(baud / 10) / bytes_per_poll` polls/s (8N1: 10 bits a
byte, no turnaround time). Judged by achieved / theoretical at 9600 and 19200 baud with the
emulation pacing its output at that baud; target >= 95 %. Unpaced, the median and p99 latency of
one exchange over the pty is the floor that pacing adds to.

When the pty endpoint cannot pace (no baud parameter), the paced numbers are reported as not
measured: pacing on the client side would not be the same thing.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from bench import Row, median, percentile
from bench._pty_sim import can_pace, spawned
from pumpctl.clock import Clock, RealClock, wall_monotonic
from pumpctl.drivers.base import FrameLength
from pumpctl.drivers.newera import NE1000Driver
from pumpctl.drivers.transport import SerialTransport
from pumpctl.log import configure_logging

NAME = "wire_floor"
BAUDS = (9600, 19200)
BITS_PER_BYTE = 10  # 8N1: start + 8 data + stop
TARGET_FRACTION = 0.95
#: wall seconds of paced polling per round (at the wire limit)
PACED_ROUND_S = 3.0


class _CountingTransport(SerialTransport):
    """Counts bytes both ways and times each exchange (wall seconds)."""

    def __init__(self, port: str, *, baudrate: int, clock: Clock) -> None:
        super().__init__(port, baudrate=baudrate, clock=clock)
        self.bytes = 0
        self.latencies_s: list[float] = []

    async def exchange(self, request: bytes, frame_length: FrameLength, timeout_s: float) -> bytes:
        t0 = wall_monotonic()
        reply = await super().exchange(request, frame_length, timeout_s)
        self.latencies_s.append(wall_monotonic() - t0)
        self.bytes += len(request) + len(reply)
        return reply


async def _poll_loop(path: str, baud: int, polls: int, rounds: int) -> dict[str, Any]:
    clock = RealClock()
    transport = _CountingTransport(path, baudrate=baud, clock=clock)
    driver = NE1000Driver(transport, address=0)
    async with driver:
        await driver.enable_link_watchdog(10.0)
        await driver.read_status()  # warm-up
        rates: list[float] = []
        bytes_per_poll = 0.0
        for _ in range(rounds):
            transport.bytes = 0
            transport.latencies_s.clear()
            t0 = wall_monotonic()
            for _ in range(polls):
                await driver.read_poll()
            elapsed = wall_monotonic() - t0
            rates.append(polls / elapsed)
            bytes_per_poll = transport.bytes / polls
        latencies = list(transport.latencies_s)
        await driver.disable_link_watchdog()
    return {
        "polls_per_s_each": rates,
        "polls_per_s": median(rates),
        "bytes_per_poll": bytes_per_poll,
        "exchange_latency_ms_p50": median(latencies) * 1000.0,
        "exchange_latency_ms_p99": percentile(latencies, 99) * 1000.0,
    }


def _measure(baud: int | None, polls: int, rounds: int) -> tuple[dict[str, Any], bool]:
    argv = [sys.executable, "-m", "bench._pty_sim"]
    if baud is not None:
        argv += ["--baud", str(baud)]
    with spawned(argv) as (path, announced):
        res = asyncio.run(_poll_loop(path, baud or 19200, polls, rounds))
    return res, announced.get("PACED") == "1"


def run(*, quick: bool = False) -> dict[str, Any]:
    configure_logging(console=False, level=logging.INFO)
    polls, rounds = (20, 1) if quick else (300, 3)
    unpaced, _ = _measure(None, polls * 3, rounds)
    out: dict[str, Any] = {
        "what": "NE1000Driver (safe mode) on SerialTransport polling read_poll (one DIS exchange) "
        "back to back against NE1000Emulation on a pty served by another process",
        "judged_by": "achieved polls/s / ((baud/10) / bytes per poll), emulation pacing its "
        "output at the baud",
        "quick": quick,
        "unpaced": unpaced,
    }
    pacing = can_pace()
    for baud in BAUDS:
        wire_limit = baud / BITS_PER_BYTE / unpaced["bytes_per_poll"]
        wire_s = 1.0 / wire_limit
        overhead_s = 1.0 / unpaced["polls_per_s"]
        entry: dict[str, Any] = {
            "baud": baud,
            "bytes_per_poll": unpaced["bytes_per_poll"],
            "wire_limit_polls_per_s": wire_limit,
            # if pacing only adds wire time to today's unpaced round trip:
            "estimated_fraction_if_paced": wire_s / (wire_s + overhead_s),
        }
        if pacing:
            paced_polls = max(5, round(wire_limit * (0.5 if quick else PACED_ROUND_S)))
            paced, paced_ok = _measure(baud, paced_polls, rounds)
            entry.update(
                measured=paced_ok,
                achieved_polls_per_s=paced["polls_per_s"],
                fraction_of_wire_limit=paced["polls_per_s"] / wire_limit,
                paced=paced,
            )
            entry["met"] = entry["fraction_of_wire_limit"] >= TARGET_FRACTION
        else:
            entry.update(
                measured=False,
                achieved_polls_per_s=None,
                fraction_of_wire_limit=None,
                why_not_measured="the pty endpoint has no byte pacing (no `pace` option): "
                "unpaced bytes arrive faster than any baud, and pacing in the client would not "
                "measure the driver against a real line",
                met=None,
            )
        out[str(baud)] = entry
    return out


def rows(res: dict[str, Any]) -> list[Row]:
    un = res["unpaced"]
    out = [
        Row(
            NAME,
            "unpaced pty: exchange latency p50 / p99; polls/s",
            f"{un['exchange_latency_ms_p50']:.3f} / {un['exchange_latency_ms_p99']:.3f} ms; "
            f"{un['polls_per_s']:,.0f}",
            "",
            None,
        )
    ]
    for baud in BAUDS:
        e = res[str(baud)]
        if e["fraction_of_wire_limit"] is None:
            value = (
                f"not measured (no pacing); wire limit {e['wire_limit_polls_per_s']:.1f}/s, "
                f"estimate {e['estimated_fraction_if_paced']:.1%}"
            )
        else:
            value = (
                f"{e['fraction_of_wire_limit']:.1%} ({e['achieved_polls_per_s']:.1f} of "
                f"{e['wire_limit_polls_per_s']:.1f} polls/s)"
            )
        out.append(Row(NAME, f"{baud} baud: fraction of wire limit", value, ">= 95 %", e["met"]))
    return out
