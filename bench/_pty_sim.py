"""Helper process for the pty benchmarks: one NE-1000 emulation on a new pty, real time.

`python -m bench._pty_sim [--baud N]` prints `PTY=/dev/pts/N PACED=0|1` and serves until
stdin closes. Runs in its own process so the emulation does not share the client's CPU. With
`--baud`, sets the pump's UART to that baud (8N1) and has the pty endpoint pace the bytes both
ways at it (`pace=True`), when the endpoint supports pacing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import logging
import selectors
import subprocess
import sys
from collections.abc import Iterator

from pumpctl.clock import Clock, run_with_clock
from pumpctl.log import configure_logging
from pumpctl.simulator.devices.newera import NE1000Emulation
from pumpctl.simulator.endpoints import PtyEndpoint


def can_pace() -> bool:
    """Whether the pty endpoint paces output at the emulation's baud (`pace=True`)."""
    return "pace" in inspect.signature(PtyEndpoint).parameters and hasattr(
        NE1000Emulation, "set_baud_rate"
    )


async def _serve(clock: Clock, baud: int | None) -> None:
    emulation = NE1000Emulation([0])
    paced = baud is not None and can_pace()
    if paced:
        assert baud is not None
        emulation.set_baud_rate(baud)  # the pump's UART: the client must open at this baud
    endpoint = PtyEndpoint(emulation, clock, pace=paced)
    path = await endpoint.start()
    print(f"PTY={path} PACED={int(paced)}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    await endpoint.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baud", type=int, default=None)
    args = parser.parse_args()
    configure_logging(console=True, level=logging.WARNING, stream=sys.stderr)
    run_with_clock(lambda clock: _serve(clock, args.baud))


@contextlib.contextmanager
def spawned(argv: list[str], *, safety_s: float = 20.0) -> Iterator[tuple[str, dict[str, str]]]:
    """Run a simulator process whose first line is `PTY=path [KEY=value...]`; yields the path and
    those announcements.

    On exit its stdin is closed and it is sent SIGTERM. `safety_s` only guards against a hang at start.
    """
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if not sel.select(safety_s):
                raise RuntimeError(f"{argv} announced nothing")
        line = proc.stdout.readline().strip()
        if not line.startswith("PTY="):
            raise RuntimeError(f"{argv} announced {line!r} (exit {proc.poll()})")
        announced = dict(tok.partition("=")[::2] for tok in line.split())
        yield announced["PTY"], announced
    finally:
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
