"""`pumpctl simulate` as a rig runs it: a subprocess on a pty, a raw client, faults from the CLI,
the state file; and usage errors for bad specs (exit 2, the spec named)."""

from __future__ import annotations

import json
import os
import random
import selectors
import subprocess
import sys
import termios
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pumpctl.clock import RealClock
from pumpctl.families import models
from pumpctl.simulator.faults import garble_bytes

SAFETY_S = 15.0  # guards against hangs only, never decides pass/fail


def basic(text: str) -> bytes:
    return b"\x02" + text.encode() + b"\x03"


def _block(seconds: float) -> None:
    with selectors.DefaultSelector() as sel:
        sel.select(seconds)


class Simulator:
    """A `pumpctl simulate` subprocess and a raw client on its pty."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pumpctl", "simulate", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            assert sel.select(SAFETY_S), "simulator announced nothing"
        first = self.proc.stdout.readline().strip()
        assert first.startswith("PTY=/dev/"), first
        self.fd = os.open(first.removeprefix("PTY="), os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd, termios.TCSANOW)

    def ask(self, command: bytes) -> bytes:
        """Send one command, return the reply up to its ETX (blocking, with a safety net)."""
        os.write(self.fd, command)
        buf = bytearray()
        with selectors.DefaultSelector() as sel:
            sel.register(self.fd, selectors.EVENT_READ)
            while 0x03 not in buf:
                assert sel.select(SAFETY_S), f"no reply to {command!r}; got {bytes(buf)!r}"
                buf += os.read(self.fd, 4096)
        return bytes(buf)

    def close(self) -> None:
        os.close(self.fd)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(SAFETY_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def launch() -> Iterator[Any]:
    started: list[Simulator] = []

    def start(*args: str) -> Simulator:
        sim = Simulator(list(args))
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.close()


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return state


def wait_state(path: Path, key: str, value: object) -> dict[str, Any]:
    """Poll the state file until pump 0's `key` equals `value` (safety deadline only)."""
    clock = RealClock()
    deadline = clock.now() + SAFETY_S
    while clock.now() < deadline:
        state = read_state(path)
        if state is not None and state["pumps"]["0"][key] == value:
            pump: dict[str, Any] = state["pumps"]["0"]
            return pump
        _block(0.02)
    raise AssertionError(f"state file never had {key}={value!r}; last: {read_state(path)}")


def test_stall_fault_from_the_cli_on_the_wire_and_in_the_state_file(
    launch: Any, tmp_path: Path
) -> None:
    state_file = tmp_path / "state.json"
    sim = launch("ne1000", "--fault", "stall@2s", "--time-scale", "20", "--state", str(state_file))
    assert sim.ask(b"0\r") == basic("00A?R")
    for cmd in (b"0DIA26.59\r", b"0RAT60MH\r", b"0VOL0\r"):
        assert sim.ask(cmd) == basic("00S")
    assert sim.ask(b"0RUN\r") == basic("00I")
    running = wait_state(state_file, "running", True)
    assert (running["rate_ml_per_h"], running["alarm"]) == (60.0, None)
    # occluded at 2 s of pump time (0.1 s wall), stalled 19.2 s later: poll until it shows
    replies = [sim.ask(b"0\r")]
    clock = RealClock()
    deadline = clock.now() + SAFETY_S
    while replies[-1] == basic("00I") and clock.now() < deadline:
        _block(0.01)
        replies.append(sim.ask(b"0\r"))
    assert replies[-1] == basic("00A?S")
    assert sim.ask(b"0\r") == basic("00S")  # the alarm was acknowledged by that reply
    stalled = wait_state(state_file, "alarm", "stall")
    assert stalled["running"] is False
    assert stalled["delivered_ml"] >= 19.2 / 60  # at least what filled the line


def test_seeded_garble_fault_and_pacing_from_the_cli(launch: Any) -> None:
    sim = launch("ne1000", "--fault", "garble@#1", "--seed", "3", "--pace")
    assert sim.ask(b"0\r") == basic("00A?R")
    assert sim.ask(b"0\r") == garble_bytes(basic("00S"), random.Random(3))
    assert sim.ask(b"0\r") == basic("00S")


def test_unknown_model_is_one_line_naming_the_models() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pumpctl", "simulate", "nosuchpump"],
        capture_output=True,
        text=True,
        timeout=SAFETY_S * 2,
        check=False,
    )
    assert done.returncode == 64  # a usage error, never a refusal's or a soft limit's code
    assert done.stdout == ""  # nothing announced
    assert done.stderr == (
        "error: unknown pump model 'nosuchpump'; valid models: " + ", ".join(models()) + "\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ne1000", "--fault", "stall@2"], "'stall@2': time '2' needs a unit: ms, s, m or h"),
        (["ne1000", "--fault", "flood@2s"], "unknown fault kind 'flood' in 'flood@2s'; kinds:"),
        (["ne1000", "--fault", "stall/4@2s"], "stall/4@2s: no pump at address 4"),
        (["ne1000", "--phd-address", "3"], "--phd-address is for harvard-legacy, not ne1000"),
    ],
)
def test_bad_options_exit_64_naming_the_problem(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pumpctl", "simulate", *args],
        capture_output=True,
        text=True,
        timeout=SAFETY_S * 2,
        check=False,
    )
    assert done.returncode == 64  # usage error (EX_USAGE); 2 is a soft limit in pumpctl
    assert done.stdout == ""  # nothing announced
    assert message in " ".join(done.stderr.split())
