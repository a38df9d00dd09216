"""The referee: the third-party `nesp-lib`, unchanged, drives `pumpctl simulate ne1000` on a pty.

If nesp-lib cannot tell the simulator from a pump, the emulation's framing, number formats,
alarms and pause/stop semantics match what real host software relies on.
"""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pumpctl.clock import RealClock

nesp_lib = pytest.importorskip(
    "nesp_lib", reason="nesp-lib (test extra) is not installed; cannot run the third-party client"
)

pytestmark = pytest.mark.thirdparty

SAFETY_S = 15.0  # guards against hangs only


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    state_file = tmp_path / "state.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pumpctl", "simulate", "ne1000", "--state", str(state_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(SAFETY_S), "simulator announced nothing"
        first = proc.stdout.readline().strip()
        assert first.startswith("PTY=/dev/"), first
        yield first.removeprefix("PTY="), state_file, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return state


def wait_state(path: Path, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Poll the state file until `predicate(pump 0)` holds; the deadline is a safety net only."""
    clock = RealClock()
    deadline = clock.now() + SAFETY_S
    while clock.now() < deadline:
        state = read_state(path)
        if state is not None and predicate(state["pumps"]["0"]):
            pump: dict[str, Any] = state["pumps"]["0"]
            return pump
        _block(0.02)
    raise AssertionError(f"state file never matched; last: {read_state(path)}")


def _block(seconds: float) -> None:
    with selectors.DefaultSelector() as sel:
        sel.select(seconds)


def test_nesp_lib_configures_runs_pauses_stops_and_reads_back(
    simulator: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    path, state_file, proc = simulator
    Pump, Port, Status = nesp_lib.Pump, nesp_lib.Port, nesp_lib.Status
    with Port(path, 19200) as port:
        pump = Pump(port)  # its first SAF0 meets the power-up A?R and is re-sent
        assert pump.model_number == 1000
        assert pump.firmware_version == (3, 928)
        assert pump.firmware_upgrade == 0

        pump.syringe_diameter_mm = 26.59
        assert pump.syringe_diameter_mm == 26.59
        pump.pumping_direction = nesp_lib.PumpingDirection.INFUSE
        assert pump.pumping_direction == nesp_lib.PumpingDirection.INFUSE
        pump.pumping_volume_ml = 56.0
        assert pump.pumping_volume_ml == 56.0
        pump.pumping_rate_ml_per_min = 25.0  # 1500 mL/h
        assert pump.pumping_rate_ml_per_min == 25.0
        pump.volume_infused_clear()
        pump.volume_withdrawn_clear()

        pump.run(wait_while_running=False)
        assert pump.status == Status.INFUSING
        assert pump.running
        running = wait_state(state_file, lambda p: p["running"] and p["delivered_ml"] > 0.05)
        assert running["rate_ml_per_h"] == 1500.0
        assert running["target_ml"] == 56.0
        assert running["direction"] == "infuse"
        assert running["alarm"] is None

        pump.stop(wait_while_running=False)  # first STP pauses
        assert pump.status == Status.PAUSED
        assert not pump.running
        paused = wait_state(state_file, lambda p: not p["running"])
        infused = pump.volume_infused_ml
        assert pump.volume_withdrawn_ml == 0.0
        # the pump's counter truncates to its display precision: within 1 µL of ground truth
        assert 0 <= paused["delivered_ml"] - infused < 0.001

        pump.stop()  # second STP ends the program
        assert pump.status == Status.STOPPED

        pump.safe_mode_timeout_s = 20  # safe mode round trip: CRC framing both ways
        assert pump.safe_mode_timeout_s == 20
        assert pump.status == Status.STOPPED
        assert pump.volume_infused_ml == infused
        pump.safe_mode_timeout_s = 0
        assert pump.safe_mode_timeout_s == 0

        pump.volume_infused_clear()
        assert pump.volume_infused_ml == 0.0
    assert read_state(state_file) is not None
    assert (read_state(state_file) or {})["pumps"]["0"]["delivered_ml"] == paused["delivered_ml"]

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=SAFETY_S) == 0
    assert proc.stderr is not None
    assert "Traceback" not in proc.stderr.read()
