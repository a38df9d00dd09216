"""`pumpctl simulate` paces by default: a real pump cannot answer faster than its line.

pumpy's `waituntiltarget()` (two VOL polls back to back, equal replies = stopped) relies on it.
Only lower bounds on wall time are asserted (pacing can make a reply late, never early).
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import termios
import tty
from collections.abc import Iterator
from contextlib import contextmanager

from pumpctl.clock import RealClock

SAFETY_S = 15.0  # guards against hangs only
#: harvard-legacy: 9600 baud, 8N2 = 11 bits a byte
BYTE_S = 11 / 9600


@contextmanager
def simulator(*args: str) -> Iterator[int]:
    """A `pumpctl simulate` subprocess; yields a raw fd on its pty. Always stopped after."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pumpctl", "simulate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(SAFETY_S), "simulator announced nothing"
        first = proc.stdout.readline().strip()
        assert first.startswith("PTY="), first
        fd = os.open(first.removeprefix("PTY="), os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd, termios.TCSANOW)
        try:
            yield fd
        finally:
            os.close(fd)
    finally:
        proc.terminate()
        try:
            proc.wait(SAFETY_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ask(fd: int, request: bytes, size: int) -> tuple[bytes, float]:
    """Write `request`, read `size` bytes; (reply, wall seconds from write to last byte)."""
    clock = RealClock()
    start = clock.now()
    os.write(fd, request)
    buf = bytearray()
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while len(buf) < size:
            assert sel.select(SAFETY_S), f"no reply to {request!r}; got {bytes(buf)!r}"
            buf += os.read(fd, 4096)
    return bytes(buf), clock.now() - start


def test_simulate_paces_by_default_and_no_pace_answers_the_same_bytes() -> None:
    with simulator("harvard-legacy") as fd:
        reply, wall_s = ask(fd, b"00VOL\r", 15)
        assert reply == b"\r\n  0.0000\r\n00:"
        assert wall_s >= (6 + 15) * BYTE_S  # 6 bytes in, 15 out, 11 bits each at 9600 baud
    with simulator("harvard-legacy", "--no-pace") as fd:
        assert ask(fd, b"00VOL\r", 15)[0] == b"\r\n  0.0000\r\n00:"
