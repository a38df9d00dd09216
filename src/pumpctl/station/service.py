"""Running a station: open it, serve it over SiLA 2, start its programs, stop it safely.

`serve_station` is the whole life of `pumpctl serve` and of `StationHost` (a station on a
background thread, for scripts, notebooks, tests and benchmarks). Shutdown order matters:
runs first (each supervisor stops its pump and confirms it), then the SiLA server (its `stop()`
waits for the commands that follow those runs, and must not run on the loop), then the lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from pumpctl.clock import Clock, run_with_clock
from pumpctl.infusion.supervisor import SupervisorConfig
from pumpctl.log import get_logger
from pumpctl.station.pump import RunWatch
from pumpctl.station.spec import StationSpec
from pumpctl.station.station import Station

__all__ = ["SilaOptions", "StationHost", "serve_station"]

log = get_logger("pumpctl.station.service")


@dataclass(frozen=True)
class SilaOptions:
    """Where and how the SiLA server listens (`--sila HOST:PORT`, `--insecure`, ...)."""

    host: str = "127.0.0.1"
    port: int = 50052
    insecure: bool = False
    discovery: bool = True
    key_pem: bytes | None = None
    cert_pem: bytes | None = None
    server_uuid: UUID | None = None


async def serve_station(
    station: Station,
    *,
    sila: SilaOptions | None,
    stop: asyncio.Event,
    announce: Callable[[str, Any], None] = lambda what, value: None,
    start_programs: bool = True,
    until_runs_end: bool = False,
) -> dict[str, RunWatch]:
    """Serve until `stop` is set (or, with `until_runs_end`, the station's programs ended).

    `announce(what, value)` as each is up: "station" (Station), "server" (StationServer),
    "sila" (Endpoint), "runs" (watches).
    Raises ProgramRefused (before any port is opened) when a station program fails its check.
    """
    plans = station.station_programs() if start_programs else {}  # SR01: before anything opens
    await station.open()
    announce("station", station)
    server = None
    try:
        if sila is not None:
            from pumpctl.station.sila.bridge import LoopBridge
            from pumpctl.station.sila.server import StationServer

            server = StationServer(
                station, LoopBridge(asyncio.get_running_loop()), server_uuid=sila.server_uuid
            )
            announce("server", server)
            endpoint = await asyncio.to_thread(
                server.serve,
                sila.host,
                sila.port,
                insecure=sila.insecure,
                discovery=sila.discovery,
                key_pem=sila.key_pem,
                cert_pem=sila.cert_pem,
            )
            announce("sila", endpoint)
        watches = await station.start_programs(plans, who="station file")
        announce("runs", watches)
        await _until(station.clock, stop, watches if until_runs_end else None)
        return watches
    finally:
        # each supervisor stops its pump and confirms it (SR18), all at once
        await asyncio.gather(*(p.shutdown("station shut down") for p in station.pumps.values()))
        if server is not None:
            await asyncio.to_thread(server.shutdown)
        await station.close()


async def _until(clock: Clock, stop: asyncio.Event, watches: Mapping[str, RunWatch] | None) -> None:
    while not stop.is_set():
        if watches is not None and all(w.done for w in watches.values()):
            return
        with contextlib.suppress(TimeoutError):
            async with clock.wall_timeout(0.2):
                await stop.wait()


class StationHost:
    """A station (and its SiLA server) on a background thread: `with StationHost(...) as h:`.

    For scripts, notebooks, tests and benchmarks; `pumpctl serve` runs the same
    `serve_station` on the main thread instead.
    """

    def __init__(
        self,
        spec: StationSpec,
        *,
        sila: SilaOptions | None = None,
        simulate: bool = True,
        faults: Mapping[str, Sequence[str]] | None = None,
        time_scale: float = 1.0,
        config: SupervisorConfig | None = None,
        cwd: Path | None = None,
        start_programs: bool = False,
        ready_timeout_s: float = 30.0,
    ) -> None:
        self.spec, self.sila, self.simulate, self.faults = spec, sila, simulate, faults
        self.time_scale, self.config, self.cwd = time_scale, config, cwd
        self.start_programs = start_programs
        self.ready_timeout_s = ready_timeout_s
        self.station: Station | None = None
        self.endpoint: Any = None
        self.server: Any = None
        self.watches: dict[str, RunWatch] = {}
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="station-host", daemon=True)

    def _announce(self, what: str, value: Any) -> None:
        if what == "sila":
            self.endpoint = value
        elif what == "server":
            self.server = value
        elif what == "runs":
            self.watches = value
            self._ready.set()

    def _main(self) -> None:
        async def main(clock: Clock) -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self.station = Station(
                self.spec,
                clock,
                simulate=self.simulate,
                faults=self.faults,
                config=self.config,
                cwd=self.cwd,
            )
            await serve_station(
                self.station,
                sila=self.sila,
                stop=self._stop,
                announce=self._announce,
                start_programs=self.start_programs,
            )
            await self._stop.wait()

        try:
            run_with_clock(main, time_scale=self.time_scale)
        except BaseException as exc:  # handed to the starting thread
            self._error = exc
            log.error("station.host_failed", error=repr(exc))
        finally:
            self._ready.set()

    def start(self) -> StationHost:
        self._thread.start()
        if not self._ready.wait(self.ready_timeout_s) or self._error is not None:
            self.stop()
            raise RuntimeError(f"the station did not start: {self._error!r}") from self._error
        return self

    def call(self, coro: Any, timeout_s: float = 30.0) -> Any:
        """Run a coroutine on the station's loop from this thread (e.g. `station.pump(n).stop`)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop every run (safe stop), the server and the station; wait for the thread."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def __enter__(self) -> StationHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
