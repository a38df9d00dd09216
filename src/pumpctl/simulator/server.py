"""`pumpctl simulate`: build an emulation, serve it on a pty or TCP, keep a state file.

The state file (`--state FILE`) is the rig's ground truth, in exactly this shape:
`{"pumps": {"0": {"running": ..., "direction": ..., "rate_ml_per_h": ..., "delivered_ml": ...,
"target_ml": ..., "alarm": ...}}}`. Snapshots are taken on the event loop every
`STATE_INTERVAL_S` (never on the reply path) and written, only when changed, by a worker thread:
temp file in the same directory, then `os.replace`, so readers never see a partial file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import random
import signal
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from pumpctl.clock import Clock, run_with_clock
from pumpctl.families import UnknownModel, family
from pumpctl.log import get_logger
from pumpctl.simulator.devices.base import Emulation
from pumpctl.simulator.endpoints import PtyEndpoint, TcpEndpoint
from pumpctl.simulator.faults import FaultSchedule, parse_fault
from pumpctl.simulator.registry import default_address, emulation_class, emulation_models


class _FactoryAddress:
    """Read-only `model -> factory address` view of the family specs (old table's API)."""

    def get(self, model: str, default: int = 0) -> int:
        return default_address(model) if model in emulation_models() else default

    def __getitem__(self, model: str) -> int:
        return default_address(model)


__all__ = [
    "FACTORY_ADDRESS",
    "StateWriter",
    "build_emulation",
    "build_faults",
    "run_simulator",
    "serve",
    "state_json",
]

#: the address a pump answers at from the factory, where it is not 0 (from the family specs)
FACTORY_ADDRESS = _FactoryAddress()
STATE_INTERVAL_S = 0.2  # wall seconds between state snapshots

log = get_logger("pumpctl.simulator.server")


def build_emulation(
    model: str,
    addresses: Sequence[int],
    *,
    phd_addresses: Sequence[int] = (),
    faults: FaultSchedule | None = None,
) -> Emulation:
    """The emulation for `model` with pumps at `addresses` (and PHD2000s at `phd_addresses`,
    for a family with a `phd2000` variant); ValueError lists valid models, or says why the
    faults cannot apply."""
    try:
        cls = emulation_class(model)
    except ModuleNotFoundError as exc:
        raise ValueError(f"the {model} emulation is not available in this build: {exc}") from None
    if phd_addresses and not _has_phd(model):
        raise ValueError(f"--phd-address is for harvard-legacy, not {model}")
    emulation: Emulation = (
        cls(list(addresses), phd_addresses=list(phd_addresses))  # type: ignore[call-arg]
        if _has_phd(model)
        else cls(list(addresses))  # type: ignore[call-arg]
    )
    if faults is not None:
        faults.check(emulation)
    return emulation


def _has_phd(model: str) -> bool:
    try:
        return any(v.name == "phd2000" for v in family(model).variants)
    except UnknownModel:
        return False


def build_faults(specs: Sequence[str], seed: int = 0) -> FaultSchedule | None:
    """A schedule from `--fault` specs (None without any); FaultSpecError names a bad spec."""
    if not specs:
        return None
    return FaultSchedule([parse_fault(s) for s in specs], random.Random(seed))


def state_json(emulation: Emulation) -> str:
    """The state-file text for the emulation's current ground truth."""
    pumps = {str(a): s.model_dump() for a, s in emulation.snapshot().items()}
    return json.dumps({"pumps": pumps}, separators=(", ", ": "))


class StateWriter:
    """Writes state-file texts atomically from a worker thread; the newest text wins."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._run, name="state-writer", daemon=True)
        self._thread.start()

    def submit(self, text: str) -> None:
        with contextlib.suppress(queue.Empty):
            self._queue.get_nowait()  # an older, unwritten snapshot is obsolete
        self._queue.put_nowait(text)

    def close(self) -> None:
        """Write whatever is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (text := self._queue.get()) is not None:
            self._write(text)

    def _write(self, text: str) -> None:
        directory = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            Path(tmp).replace(self.path)
        except OSError as exc:
            log.error("state.write_failed", path=str(self.path), error=str(exc))
            with contextlib.suppress(OSError):
                Path(tmp).unlink()


def _parse_tcp(tcp: str) -> tuple[str, int]:
    host, sep, port = tcp.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--tcp wants HOST:PORT, got {tcp!r}")
    return host or "127.0.0.1", int(port)


async def serve(
    model: str,
    *,
    port: str | None,
    tcp: str | None,
    addresses: list[int],
    state_file: Path | None,
    clock: Clock,
    announce: Callable[[str], None],
    stop: asyncio.Event,
    emulation: Emulation | None = None,
    faults: FaultSchedule | None = None,
    pace: bool = True,
) -> None:
    """Serve until `stop` is set (the async core of `run_simulator`; tests call it directly).
    `pace` (default, as `pumpctl simulate`): bytes no faster than the pump's line."""
    if port is not None and tcp is not None:
        raise ValueError("give a pty path or a TCP address, not both")
    emu = emulation or build_emulation(model, addresses, faults=faults)
    endpoint: PtyEndpoint | TcpEndpoint
    if tcp is not None:
        host, tcp_port = _parse_tcp(tcp)
        endpoint = TcpEndpoint(emu, clock, host=host, port=tcp_port, faults=faults, pace=pace)
        bound_host, bound_port = await endpoint.start()
        announce(f"TCP={bound_host}:{bound_port}")
    else:
        endpoint = PtyEndpoint(emu, clock, path=port, faults=faults, pace=pace)
        path = await endpoint.start()
        announce(f"PTY={path}")
    writer = StateWriter(state_file) if state_file is not None else None
    last = ""
    try:
        while not stop.is_set():
            if writer is not None:
                text = state_json(emu)
                if text != last:
                    writer.submit(text)
                    last = text
            with contextlib.suppress(TimeoutError):
                async with clock.timeout(STATE_INTERVAL_S * clock.time_scale):
                    await stop.wait()
    finally:
        await endpoint.stop()
        if writer is not None:
            final = state_json(emu)
            if final != last:
                writer.submit(final)
            await asyncio.get_running_loop().run_in_executor(None, writer.close)


def run_simulator(
    model: str,
    *,
    port: str | None,
    tcp: str | None,
    addresses: list[int],
    state_file: Path | None,
    time_scale: float = 1.0,
    announce: Callable[[str], None],
    faults: Sequence[str] = (),
    seed: int = 0,
    pace: bool = True,
    phd_addresses: Sequence[int] = (),
) -> None:
    """Block serving the simulator until SIGINT or SIGTERM, then return cleanly.

    `faults` are specs (`stall@300s`, see `pumpctl.simulator.faults`) drawn from a
    `random.Random(seed)`; `pace` (default) delivers bytes no faster than the pump's line: a
    real pump cannot answer faster than its baud (pumpy's `waituntiltarget` relies on it). ValueError (FaultSpecError
    included) before anything is announced when the model, addresses or faults are wrong.
    """
    schedule = build_faults(faults, seed)
    emulation = build_emulation(model, addresses, phd_addresses=phd_addresses, faults=schedule)

    async def main(clock: Clock) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.add_signal_handler(sig, stop.set)  # main thread only
        await serve(
            model,
            port=port,
            tcp=tcp,
            addresses=addresses,
            state_file=state_file,
            clock=clock,
            announce=announce,
            stop=stop,
            emulation=emulation,
            faults=schedule,
            pace=pace,
        )

    run_with_clock(main, time_scale=time_scale)
