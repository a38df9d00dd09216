"""The referees: third-party client libraries, unchanged, drive `pumpctl simulate` on a pty.

Each client runs in its own venv (`tests/thirdparty/requirements.txt`, built by `make
thirdparty`, which `make test` depends on) as a subprocess harness that performs one operation,
reports it and waits; after every operation the test checks the simulator's ground truth (the
`--state` file). Where a client has a bug of its own (pylabrobot never awaits some calls), the
test asserts what the pump saw. Over a pty in real time: few operations, short runs.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pumpctl.clock import RealClock

pytestmark = pytest.mark.thirdparty

HERE = Path(__file__).parent / "thirdparty"
ROOT = Path(__file__).resolve().parents[1]
SAFETY_S = 20.0  # guards against hangs only, never decides pass or fail
Pump = dict[str, Any]


def thirdparty_python() -> str:
    """The client venv's python: `$PUMPCTL_THIRDPARTY_PYTHON`, else the Makefile's venv."""
    python = os.environ.get("PUMPCTL_THIRDPARTY_PYTHON") or str(
        ROOT / ".venv-thirdparty" / "bin" / "python"
    )
    if not Path(python).is_file():
        pytest.fail(
            f"third-party client venv missing ({python}): build it with `make thirdparty` "
            "(make test does), or point PUMPCTL_THIRDPARTY_PYTHON at one built from "
            "tests/thirdparty/requirements.txt",
            pytrace=False,
        )
    return python


def _block(seconds: float) -> None:
    with selectors.DefaultSelector() as sel:
        sel.select(seconds)


def _readline(stream: Any, what: str) -> str:
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(SAFETY_S):
            raise AssertionError(f"{what}: nothing within {SAFETY_S} s")
    line: str = stream.readline()
    return line


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(SAFETY_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Simulator:
    """`pumpctl simulate MODEL ...` (paced, the default) with a state file."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.state_file = tmp_path / "state.json"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pumpctl", "simulate", *args, "--state", str(self.state_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first = _readline(self.proc.stdout, "simulator announcement").strip()
        assert first.startswith("PTY=/dev/"), first
        self.path = first.removeprefix("PTY=")

    def pump(self, address: int) -> Pump | None:
        try:
            state = json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        pump: Pump | None = state["pumps"].get(str(address))
        return pump

    def wait(self, address: int, predicate: Callable[[Pump], bool], what: str) -> Pump:
        """Poll the state file until pump `address` satisfies `predicate` (deadline: safety)."""
        clock = RealClock()
        deadline = clock.now() + SAFETY_S
        while clock.now() < deadline:
            pump = self.pump(address)
            if pump is not None and predicate(pump):
                return pump
            _block(0.02)
        raise AssertionError(f"pump {address} never {what}; last state: {self.pump(address)}")

    def close(self) -> str:
        """SIGTERM; the simulator must exit 0. Returns its stderr."""
        _stop(self.proc)
        assert self.proc.stderr is not None
        assert self.proc.returncode == 0, self.proc.returncode
        return self.proc.stderr.read()


class Client:
    """A harness under the third-party venv, one operation per `step()`."""

    def __init__(self, script: str, path: str) -> None:
        self.proc = subprocess.Popen(
            [thirdparty_python(), str(HERE / script), path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=HERE,
        )
        self._started = False

    def step(self, name: str) -> Any:
        """Let the harness go on to its next operation, `name`; return what it returned."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if self._started:
            self.proc.stdin.write("go\n")
            self.proc.stdin.flush()
        self._started = True
        line = _readline(self.proc.stdout, f"client step {name!r}")
        if not line:
            self.proc.wait(SAFETY_S)
            assert self.proc.stderr is not None
            raise AssertionError(f"client exited before {name!r}:\n{self.proc.stderr.read()}")
        record = json.loads(line)
        assert record["step"] == name, record
        if "error" in record:
            raise AssertionError(f"{name}: {record['error']}\n{record['tb']}")
        return record["result"]

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()  # EOF: the harness exits at its next wait
        _stop(self.proc)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Callable[..., tuple[Simulator, Client]]]:
    sims: list[Simulator] = []
    clients: list[Client] = []

    def start(script: str, *args: str) -> tuple[Simulator, Client]:
        sim = Simulator(tmp_path, *args)
        sims.append(sim)  # before the client: a client that cannot start leaves no simulator
        client = Client(script, sim.path)
        clients.append(client)
        return sim, client

    yield start
    for client in clients:
        client.close()
    for sim in sims:
        assert "Traceback" not in sim.close()


def approx(value: float, abs_ml: float = 1e-6) -> Any:
    return pytest.approx(value, abs=abs_ml)


def test_nesp_lib_ne1000(rig: Callable[..., tuple[Simulator, Client]]) -> None:
    sim, nesp = rig("harness_nesp.py", "ne1000")
    nesp.step("connect")
    pump = sim.wait(0, lambda p: True, "appeared")
    assert (pump["running"], pump["delivered_ml"]) == (False, 0.0)
    assert nesp.step("configure") == {
        "model": 1000, "firmware": [3, 928], "diameter_mm": 26.59, "volume_ml": 0.5,
        "rate_ml_per_min": 25.0,
    }  # fmt: skip
    # the state file is rewritten every ~0.2 s: it may show the target before the rate
    pump = sim.wait(
        0, lambda p: p["target_ml"] == 0.5 and p["rate_ml_per_h"] > 0, "took target and rate"
    )
    assert (pump["rate_ml_per_h"], pump["running"], pump["direction"]) == (1500.0, False, "infuse")

    assert nesp.step("run") == "INFUSING"
    pump = sim.wait(0, lambda p: p["running"], "started")
    assert (pump["rate_ml_per_h"], pump["alarm"]) == (1500.0, None)

    assert nesp.step("pause") == "PAUSED"
    paused = sim.wait(0, lambda p: not p["running"], "paused")
    infused = nesp.step("paused_volume")
    assert 0 < infused < 0.5
    # the pump's counter truncates to its display: within 1 µL below the plunger's truth
    assert 0 <= paused["delivered_ml"] - infused < 0.001

    assert nesp.step("run_to_target") == 0.5  # run() polls until the pump stops by itself
    pump = sim.wait(0, lambda p: not p["running"] and p["delivered_ml"] > infused, "finished")
    assert (pump["delivered_ml"], pump["alarm"]) == (approx(0.5), None)

    assert nesp.step("safe_mode") == [20, "STOPPED", 0.5, 0]  # CRC packets both ways
    assert sim.wait(0, lambda p: True, "kept")["delivered_ml"] == approx(0.5)


RUN_S = 50 / 3000 * 60  # pumpy's runs: 50 µL at 3000 µL/min


def test_pumpy_pump11_and_phd2000_chain(rig: Callable[..., tuple[Simulator, Client]]) -> None:
    """pumpy's `waituntiltarget()` sends two VOL polls back to back and takes equal replies
    for "stopped". Paced (the default) a poll is 6 + 15 bytes at 11 bits = 24 ms, and 3000
    µL/min moves 1.2 µL per poll: above the last digit of the Pump 11's µL field (0.0001 µL at
    10 mm) and of the PHD2000's mL field (0.1 µL), so equal replies do mean stopped."""
    sim, pumpy = rig("harness_pumpy.py", "harvard-legacy", "--address", "0", "--phd-address", "1")
    pumpy.step("pump11")  # VER; pumpy checks the address in its last 3 bytes
    pumpy.step("pump11_diameter")
    pumpy.step("pump11_rate")
    assert (
        sim.wait(0, lambda p: p["rate_ml_per_h"] == 180.0, "took 3000 µL/min")["running"] is False
    )
    pumpy.step("pump11_long_target")  # `00MLT12.345`: rounded to 12.35 µL, not OOR
    sim.wait(0, lambda p: p["target_ml"] == 0.01235, "took 12.35 µL")
    pumpy.step("pump11_target")
    sim.wait(0, lambda p: p["target_ml"] == 0.05, "took 50 µL (a 10 mm syringe counts in µL)")
    pumpy.step("pump11_infuse")
    sim.wait(0, lambda p: p["running"] and p["direction"] == "infuse", "started")
    # 50 µL at 3000 µL/min take 1 s: returning sooner is the bug (two equal polls too early)
    assert pumpy.step("pump11_wait") >= RUN_S  # seconds from before RUN to its return
    pump = sim.wait(0, lambda p: not p["running"], "stopped at its target")
    assert (pump["delivered_ml"], pump["alarm"]) == (approx(0.05), None)
    pumpy.step("pump11_stop")
    assert sim.wait(0, lambda p: not p["running"], "stopped")["delivered_ml"] == approx(0.05)

    pumpy.step("phd")  # `\r\nPHD2000V20\r\n\r1:`: unpadded address after an extra CR
    pumpy.step("phd_diameter")
    pumpy.step("phd_rate")
    sim.wait(1, lambda p: p["rate_ml_per_h"] == 180.0, "took 3000 µL/min")
    pumpy.step("phd_target")  # `01MLT0.05`: a PHD2000 counts in mL whatever the syringe
    sim.wait(1, lambda p: p["target_ml"] == 0.05, "took 0.05 mL")
    pumpy.step("phd_infuse")
    sim.wait(1, lambda p: p["running"], "started")
    assert pumpy.step("phd_wait") >= RUN_S
    pump = sim.wait(1, lambda p: not p["running"], "stopped at its target")
    assert (pump["delivered_ml"], pump["alarm"]) == (approx(0.05), None)
    assert sim.wait(0, lambda p: True, "kept")["delivered_ml"] == approx(0.05)  # untouched


def test_flowchem_elite11(rig: Callable[..., tuple[Simulator, Client]]) -> None:
    sim, flowchem = rig("harness_flowchem.py", "harvard-elite")
    assert flowchem.step("autodiscover") == 0  # CR LF answered by the prompt line `\n00:`
    flowchem.step("initialize")
    pump = sim.wait(0, lambda p: True, "appeared")
    assert (pump["running"], pump["target_ml"]) == (False, None)
    flowchem.step("set_flow_rate")  # `irate lim`, then `irate 3.0000000000 m/m`
    sim.wait(0, lambda p: p["rate_ml_per_h"] == 180.0, "took 3 ml/min")
    flowchem.step("set_target_volume")  # `cvolume`, `tvolume 0.05 m`
    sim.wait(0, lambda p: p["target_ml"] == 0.05, "took 0.05 mL")
    flowchem.step("infuse")
    sim.wait(0, lambda p: p["running"] and p["direction"] == "infuse", "started")
    # `crate`: `Infusing at 3 ml/min` (manual); flowchem raised on the bare `3 ml/min`
    assert flowchem.step("current_flow_rate") == 3.0
    flowchem.step("wait_until_idle")  # polls the prompt until it is no longer `>`
    pump = sim.wait(0, lambda p: not p["running"], "stopped at its target")
    assert (pump["delivered_ml"], pump["alarm"]) == (approx(0.05), None)

    flowchem.step("set_withdrawing_flow_rate")
    flowchem.step("clear_target")  # `ctvolume`: a continuous withdrawal
    sim.wait(0, lambda p: p["target_ml"] is None, "cleared its target")
    flowchem.step("withdraw")
    pump = sim.wait(0, lambda p: p["running"], "withdrawing")
    assert (pump["direction"], pump["rate_ml_per_h"]) == ("withdraw", 90.0)
    assert flowchem.step("current_withdraw_rate") == -1.5  # `Withdrawing at 1.5 ml/min`
    flowchem.step("stop")
    pump = sim.wait(0, lambda p: not p["running"], "stopped")
    assert 0 < 0.05 - pump["delivered_ml"] < 0.05  # some of it came back, not all
    assert pump["alarm"] is None


def test_pylabrobot_masterflex(rig: Callable[..., tuple[Simulator, Client]]) -> None:
    """pylabrobot never reads a reply; the emulation must never block on that, and the test
    judges by what the drive did (`--state`). 0.8 mL per revolution (the emulation's tubing)."""
    sim, plr = rig("harness_pylabrobot.py", "masterflex-ls", "--address", "2")
    plr.step("setup")  # ENQ, ENQ P02 CR: pylabrobot's way of taking the drive under control
    pump = sim.wait(2, lambda p: True, "appeared")
    assert (pump["running"], pump["speed_rpm"]) == (False, 0.0)
    plr.step("frontend_run_continuously")  # pylabrobot bug: the frontend never awaits it...
    plr.step("run_continuously_cw")  # ...so this is the first command the drive sees
    pump = sim.wait(2, lambda p: p["running"], "ran S+120G0 (NAK is the documented G0 quirk)")
    assert (pump["direction"], pump["speed_rpm"], pump["continuous"]) == ("infuse", 120.0, True)
    assert pump["rate_ml_per_h"] == approx(120 * 0.8 * 60)
    plr.step("run_continuously_ccw")  # S-50G0: variable-width numbers are what a drive takes
    pump = sim.wait(2, lambda p: p["direction"] == "withdraw", "reversed")
    assert (pump["running"], pump["speed_rpm"]) == (True, 50.0)
    plr.step("run_continuously_zero")  # pylabrobot bug: halt() not awaited, nothing is sent
    plr.step("halt")  # so the drive was still running until this H
    pump = sim.wait(2, lambda p: not p["running"], "halted")
    assert pump["speed_rpm"] == 50.0
    plr.step("run_continuously_slow")
    sim.wait(2, lambda p: p["running"] and p["direction"] == "infuse", "ran S+60G0")
    plr.step("halt_again")
    before = sim.wait(2, lambda p: not p["running"], "halted")["delivered_ml"]
    plr.step("run_revolutions")  # V1G: one revolution at 60 rpm, then the drive stops itself
    pump = sim.wait(
        2, lambda p: not p["running"] and p["delivered_ml"] > before, "ran one revolution"
    )
    assert pump["delivered_ml"] - before == approx(0.8, abs_ml=1e-3)
    assert (pump["revs_to_go"], pump["target_ml"], pump["alarm"]) == (0.0, 0.8, None)
    plr.step("stop")  # closes the port; the drive answered every frame into an unread buffer
