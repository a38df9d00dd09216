"""Driver <-> emulation over real wires: a pty, `socket://`, a socat pty link, and the whole
`pumpctl run` against `pumpctl simulate` in separate processes.

The simulator runs as its own process (as a rig would run it) at a high time scale, so minutes of
pumping take a fraction of a second; waits are event-driven with generous safety timeouts that
never decide a pass.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from pumpctl.clock import Clock, RealClock
from pumpctl.drivers.base import Direction, PumpState
from pumpctl.drivers.newera import NE1000Driver
from pumpctl.drivers.transport import SerialTransport

TIME_SCALE = 100.0
SAFETY_S = 30.0  # wall seconds; a hang fails the test instead of blocking the suite


@contextmanager
def simulator(*args: str, state: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start `pumpctl simulate` and yield its first announcement (PTY=... or TCP=...)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pumpctl", "simulate", "ne1000", "--state", str(state), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line, (
            f"simulator printed nothing; stderr: {proc.stderr.read() if proc.stderr else ''}"
        )
        yield line, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=SAFETY_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        assert rc == 0, proc.stderr.read() if proc.stderr else rc


def read_state(path: Path) -> dict[str, object]:
    snap = json.loads(path.read_text())["pumps"]["0"]
    assert isinstance(snap, dict)
    return snap


def wait_for_state(path: Path, predicate) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """The snapshot is rewritten off the reply path every ~0.2 s: wait for it to catch up."""
    deadline = time.monotonic() + SAFETY_S
    while True:
        try:
            snap = read_state(path)
            if predicate(snap):
                return snap
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"state file never satisfied the condition: {path.read_text()}")
        time.sleep(0.02)


async def wait_until(clock: Clock, predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(SAFETY_S):
        while not await predicate():
            await clock.sleep(0.05 * TIME_SCALE)  # 50 ms wall
    assert await predicate(), what


@asynccontextmanager
async def ne1000(port: str, clock: Clock) -> AsyncIterator[NE1000Driver]:
    async with NE1000Driver(SerialTransport(port, baudrate=19200, clock=clock)) as driver:
        yield driver


async def deliver_and_check(driver: NE1000Driver, clock: Clock, state: Path) -> None:
    """Configure, run to a target, pause/resume, stop, and compare with the pump's ground truth."""
    ident = await driver.identify()
    assert ident.model.startswith("NE1000")
    await driver.configure_syringe(26.7)
    await driver.clear_counters()
    await driver.set_rate(120.0, Direction.INFUSE)
    await driver.set_target_volume(0.5)
    await driver.start()
    assert (await driver.read_status()).state is PumpState.RUNNING

    async def stopped() -> bool:
        return (await driver.read_status()).state is PumpState.STOPPED

    await wait_until(clock, stopped, "pump stopped at its target")
    delivered = await driver.read_delivered()
    assert delivered.infused_ml == pytest.approx(0.5, abs=0.001)

    # a second run, paused half-way and stopped: the pump ends stopped, the counter agrees
    await driver.clear_counters()
    await driver.set_target_volume(5.0)
    await driver.start()
    await driver.pause()
    assert (await driver.read_status()).state is PumpState.PAUSED
    await driver.start()
    assert (await driver.read_status()).state is PumpState.RUNNING
    await driver.stop()
    assert (await driver.read_status()).state is PumpState.STOPPED
    second = (await driver.read_delivered()).infused_ml
    assert 0.0 <= second < 5.0

    async def state_caught_up() -> bool:
        try:
            snap = read_state(state)
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return False
        return snap["running"] is False and abs(float(snap["delivered_ml"]) - 0.5 - second) < 0.002  # type: ignore[arg-type]

    await wait_until(clock, state_caught_up, "state file shows the ground truth")


def run_async(main) -> None:  # type: ignore[no-untyped-def]
    clock = RealClock(time_scale=TIME_SCALE)
    asyncio.run(main(clock))


def test_driver_and_emulation_over_a_pty(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with simulator("--time-scale", str(TIME_SCALE), state=state) as (line, _):
        assert line.startswith("PTY=/dev/")
        port = line.removeprefix("PTY=")

        async def main(clock: Clock) -> None:
            async with ne1000(port, clock) as driver:
                await deliver_and_check(driver, clock, state)

        run_async(main)


def test_driver_and_emulation_over_socket_url(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with simulator("--tcp", "127.0.0.1:0", "--time-scale", str(TIME_SCALE), state=state) as (
        line,
        _,
    ):
        assert line.startswith("TCP=127.0.0.1:")
        url = "socket://" + line.removeprefix("TCP=")

        async def main(clock: Clock) -> None:
            async with ne1000(url, clock) as driver:
                await deliver_and_check(driver, clock, state)

        run_async(main)


@pytest.mark.socat
def test_driver_over_a_socat_pty_link_to_the_tcp_simulator(tmp_path: Path) -> None:
    socat = shutil.which("socat")
    if socat is None:  # .ci/run installs it; a developer machine may not have it
        pytest.skip("socat is not installed (CI installs it from .ci/run)")
    state = tmp_path / "state.json"
    link = tmp_path / "ttyPUMP"
    with simulator("--tcp", "127.0.0.1:0", "--time-scale", str(TIME_SCALE), state=state) as (
        line,
        _,
    ):
        tcp = line.removeprefix("TCP=")
        bridge = subprocess.Popen(
            [socat, f"pty,raw,echo=0,link={link}", f"tcp:{tcp}"],
            stderr=subprocess.PIPE,
        )
        try:
            deadline = 0
            while not link.exists() and deadline < 600:
                deadline += 1
                try:
                    bridge.wait(timeout=0.05)
                    raise AssertionError("socat exited early")
                except subprocess.TimeoutExpired:
                    pass
            assert link.exists(), "socat did not create the pty link"

            async def main(clock: Clock) -> None:
                async with ne1000(os.fspath(link), clock) as driver:
                    await deliver_and_check(driver, clock, state)

            run_async(main)
        finally:
            bridge.terminate()
            bridge.wait(timeout=SAFETY_S)


SHORT_ACUTE = """\
program: acute-pain-short
drug: {name: ketamine, concentration: 2 mg/mL}
patient: {weight: 70 kg, care_area: adult}
library: LIBRARY
pump: {syringe: {inner_diameter: 26.7 mm, volume: 60 mL}}
phases:
  prime: {volume: 0.5 mL}
  loading: {dose: 0.35 mg/kg, over: 10 min}
  maintenance: {rate: 0.2 mg/kg/h, duration: 20 min}
"""


@pytest.mark.slow
def test_pumpctl_run_completes_the_acute_program_against_pumpctl_simulate(tmp_path: Path) -> None:
    """The integrator's path: two processes, a real pty, the same time scale on both sides.

    The acute program with a 20-min maintenance at 150x: 30 virtual minutes in ~12 s wall. Two
    real clocks drift apart by their wall jitter times the scale; at 150x that stays far inside
    the pump's 255 s watchdog even on a loaded machine (at 1200x a 0.2 s stall tripped it).
    """
    from pumpctl import check_program

    root = Path(__file__).resolve().parents[1]
    program = tmp_path / "acute-short.yaml"
    library = root / "examples" / "library" / "ketamine.yaml"
    program.write_text(SHORT_ACUTE.replace("LIBRARY", str(library)))
    checked = check_program(program, model="ne1000")
    assert checked.plan is not None, checked.violations
    expected_ml = checked.plan.total_volume_ml
    assert expected_ml is not None
    scale = "150"
    state = tmp_path / "state.json"
    journal = tmp_path / "run.sqlite"
    with simulator("--time-scale", scale, state=state) as (line, _):
        port = line.removeprefix("PTY=")
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "pumpctl",
                "run",
                str(program),
                "--model",
                "ne1000",
                "--port",
                port,
                "--time-scale",
                scale,
                "--poll",
                "5",
                "--journal",
                str(journal),
            ],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=root,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "program acute-pain-short: completed" in run.stdout
        snap = wait_for_state(state, lambda s: s["running"] is False)
        assert float(snap["delivered_ml"]) == pytest.approx(expected_ml, abs=0.003)  # type: ignore[arg-type]
        assert expected_ml == pytest.approx(0.5 + 12.25 + 7.0 / 3, abs=0.002)


def test_baud_mismatch_is_a_timeout_naming_port_and_baud(tmp_path: Path) -> None:
    """The emulated pump listens at 19200; a controller set to 9600 hears only garbage, as it
    would from a real pump, and says so in terms a person can act on."""
    from pumpctl.drivers.base import PumpTimeout

    state = tmp_path / "state.json"
    with simulator(state=state) as (line, _):
        port = line.removeprefix("PTY=")

        async def main(clock: Clock) -> None:
            driver = NE1000Driver(SerialTransport(port, baudrate=9600, clock=clock))
            driver.reply_timeout_s = 0.3
            with pytest.raises(PumpTimeout) as info:
                await driver.open()
            assert port in str(info.value) and "9600" in str(info.value)

        run_async(main)
