"""Benchmark 6, a station over SiLA: N simulated pumps in one station process on one core, each
supervised at 1 Hz, and a SiLA client subscribed to every pump's SyringeFillLevel.

The station (each pump its own emulated line, `NE1000Driver`, `Supervisor` and journal) runs in
a `StationHost` with its SiLA server on localhost (insecure: TLS costs the handshake, not the
stream); the client is a plain `sila2.client.SilaClient` in the same process. The process is
pinned to one CPU before any thread starts, so station, gRPC server and client share one core:
the latency includes the client's own work and is an upper bound.
- latency: from the moment the station puts a new fill level into a pump's subscription queue
  (after a poll) to the client's callback receiving that value;
- poll lateness: every driver's `read_poll` is timed as in benchmark 3. Unlike benchmark 3, every
  pump journals (SQLite, fsync): the runs start together, so their 60 s checkpoints come together.
Informational (the issue sets no target): p50/p99/max latency, p99 poll lateness, CPU cores.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import pumpctl.station.sila  # noqa: F401  (sila2 first)
from bench import Row, cpu_s, median, percentile
from pumpctl.clock import wall_monotonic
from pumpctl.log import configure_logging
from pumpctl.station.service import SilaOptions, StationHost
from pumpctl.station.spec import load_station_text

NAME = "station"
PUMPS = 50
PROGRAM = """
program: bench-station
drug: {name: ketamine, concentration: 2 mg/mL}
patient: {weight: 70 kg, care_area: adult}
pump: {syringe: {inner_diameter: 26.7 mm, volume: 60 mL}}
phases:
  prime: {skip: true, reason: benchmark}
  maintenance: {rate: 0.2 mg/kg/h, duration: 4 h}
"""


def _station_text(n: int) -> str:
    pumps = "".join(
        f"  p{i:02d}: {{model: ne1000, port: /dev/ttyBENCH{i}, journal: p{i:02d}.sqlite}}\n"
        for i in range(n)
    )
    return f"station: bench\npumps:\n{pumps}"


def _pin_to_one_cpu() -> int | None:
    """Pin this (still single-threaded) process to one CPU; threads started later inherit it."""
    affinity = getattr(os, "sched_setaffinity", None)
    if affinity is None:
        return None
    cpu = min(os.sched_getaffinity(0))
    affinity(0, {cpu})
    return cpu


def _time_polls(host: StationHost, polls: dict[str, list[float]]) -> None:
    station = host.station
    assert station is not None
    for name, pump in station.pumps.items():
        driver = pump.driver
        assert driver is not None
        inner, times = driver.read_poll, polls.setdefault(name, [])

        async def read_poll(_inner: Any = inner, _times: list[float] = times) -> Any:
            _times.append(wall_monotonic())
            return await _inner()

        driver.read_poll = read_poll  # type: ignore[method-assign]


def _time_puts(queues: Any, sent: dict[tuple[str, float], float]) -> None:
    """Record when each new value goes into a pump's queue (first time only)."""
    for name, q in list(queues._queues.items()):
        put = q.put

        def timed(value: float, *a: Any, _name: str = name, _put: Callable[..., Any] = put) -> None:
            sent.setdefault((_name, value), wall_monotonic())
            _put(value, *a)

        q.put = timed


def _subscribe(
    client: Any, names: list[str], received: dict[tuple[str, float], float], lock: threading.Lock
) -> list[Any]:
    """Subscribe to every pump's SyringeFillLevel, recording when each value first arrives."""
    subscriptions = []
    for name in names:

        def got(value: float, _name: str = name) -> None:
            now = wall_monotonic()
            with lock:
                received.setdefault((_name, value), now)

        sub = client.PumpFluidDosingService.SyringeFillLevel.subscribe(
            metadata=[client.StationService.PumpName(name)]
        )
        sub.add_callback(got)
        subscriptions.append(sub)
    return subscriptions


def _measure(n: int, window_s: float, journal_dir: str | None = None) -> dict[str, Any]:
    from sila2.client import SilaClient

    folder = Path(tempfile.mkdtemp(prefix="pumpctl-bench-station-", dir=journal_dir))
    spec = load_station_text(_station_text(n), folder)
    sent: dict[tuple[str, float], float] = {}
    received: dict[tuple[str, float], float] = {}
    polls: dict[str, list[float]] = {}
    lock = threading.Lock()
    with StationHost(
        spec, sila=SilaOptions(port=0, insecure=True, discovery=False), cwd=folder
    ) as host:
        station = host.station
        assert station is not None
        plan = station.checked(PROGRAM, {})
        _time_polls(host, polls)
        watches = [host.call(station.start(name, plan, who="bench")) for name in station.pumps]
        client = SilaClient("127.0.0.1", host.endpoint.port, insecure=True)
        subscriptions = _subscribe(client, list(station.pumps), received, lock)
        dosing = host.server.feature_servicers["PumpFluidDosingService"].implementation
        deadline = wall_monotonic() + 30.0
        while len(dosing.queues["SyringeFillLevel"]._queues) < n and wall_monotonic() < deadline:
            threading.Event().wait(0.05)
        _time_puts(dosing.queues["SyringeFillLevel"], sent)
        threading.Event().wait(2.0)  # settle
        t0, cpu0 = wall_monotonic(), cpu_s()
        threading.Event().wait(window_s)
        t1, cpu1 = wall_monotonic(), cpu_s()
        threading.Event().wait(1.0)  # let the last values arrive
        for sub in subscriptions:
            with contextlib.suppress(Exception):
                sub.cancel()
        client.close()
        running = sum(1 for w in watches if not w.done)
    latency_ms = [
        (received[key] - t) * 1000.0 for key, t in sent.items() if t0 <= t < t1 and key in received
    ]
    lost = sum(1 for key, t in sent.items() if t0 <= t < t1 and key not in received)
    lateness_ms = [
        (cur - prev - 1.0) * 1000.0
        for times in polls.values()
        for prev, cur in itertools.pairwise(times)
        if t0 <= cur < t1
    ]
    return {
        "pumps": n,
        "window_s": t1 - t0,
        "updates": len(latency_ms),
        "updates_lost": lost,
        "p50_latency_ms": median(latency_ms),
        "p99_latency_ms": percentile(latency_ms, 99),
        "max_latency_ms": max(latency_ms) if latency_ms else None,
        "polls": len(lateness_ms),
        "p50_poll_lateness_ms": median(lateness_ms),
        "p99_poll_lateness_ms": percentile(lateness_ms, 99),
        "max_poll_lateness_ms": max(lateness_ms) if lateness_ms else None,
        "process_cores": (cpu1 - cpu0) / (t1 - t0),
        "still_running": running,
    }


def run(*, quick: bool = False) -> dict[str, Any]:
    configure_logging(console=False, level=logging.INFO)
    logging.getLogger().setLevel(logging.CRITICAL)  # sila2 logs every call at INFO
    cpu = _pin_to_one_cpu() if not quick else None  # the smoke test shares its process
    # 65 s: the window holds every run's first journal checkpoint (60 s after its start), as
    # a station whose pumps started together lives through every minute
    res = _measure(3 if quick else PUMPS, 2.0 if quick else 65.0)
    res.update(
        {
            "what": "N simulated NE-1000s (own line, driver, supervisor, journal each) in one "
            "StationHost with its SiLA server; a sila2 client in the same process subscribed "
            "to every pump's SyringeFillLevel; 1 Hz polls",
            "judged_by": "SiLA property subscription latency p99 (queue put -> client callback)",
            "pinned_cpu": cpu,
            "quick": quick,
            "met": None,
        }
    )
    return res


def rows(res: dict[str, Any]) -> list[Row]:
    return [
        Row(
            NAME,
            f"N={res['pumps']}: subscription latency p50 / p99 / max",
            f"{res['p50_latency_ms']:.1f} / {res['p99_latency_ms']:.1f} / "
            f"{res['max_latency_ms'] or 0:.1f} ms ({res['updates']} updates, "
            f"{res['updates_lost']} lost)",
            "- (reported)",
            None,
        ),
        Row(
            NAME,
            f"N={res['pumps']}: poll lateness p99 / process cores",
            f"{res['p99_poll_lateness_ms']:.1f} ms (max {res['max_poll_lateness_ms'] or 0:.0f})"
            f" / {res['process_cores']:.2f}",
            "-",
            None,
        ),
    ]
