"""The referees of issue #16's families: PyPI clients, unchanged, drive `pumpctl simulate` on a
pty (the harness protocol and rig of `test_thirdparty_clients`), and after each operation the
simulator's ground truth (`--state`) says what the pump did.

- labmcp-cavro (Tecan Cavro DT driver) on the XCalibur and the XLP 6000;
- pyHamiltonPSD (Hamilton's own PSD/4, PSD/6 library) on the PSD/4;
- python-syringe-pump (built from a real Legato 100's capture) and kdsautolib (write-only) on
  the Legato.
No Chemyx client is on PyPI; the Chemyx emulation is checked by its driver (conformance) only.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .test_thirdparty_clients import Client, Simulator, approx, rig

pytestmark = pytest.mark.thirdparty
__all__ = ["rig"]  # the fixture, used by name

Rig = Callable[..., tuple[Simulator, Client]]


@pytest.mark.parametrize(
    ("model", "labmcp_model", "stroke_steps", "fine"),
    [("tecan-xcalibur", "xcalibur", 3000, 24000), ("tecan-xlp6000", "xlp6000", 6000, 48000)],
)
def test_labmcp_cavro(
    rig: Rig,
    monkeypatch: pytest.MonkeyPatch,
    model: str,
    labmcp_model: str,
    stroke_steps: int,
    fine: int,
) -> None:
    monkeypatch.setenv("LABMCP_MODEL", labmcp_model)
    sim, labmcp = rig("harness_labmcp_cavro.py", model)
    step_ml = 1.0 / stroke_steps  # a 1 mL syringe in standard resolution (N0)
    labmcp.step("initialize")  # Q, Z0R, Q until ready, N0R
    pump = sim.wait(0, lambda p: p["initialized"], "initialized")
    assert (pump["plunger_steps"], pump["valve"], pump["alarm"]) == (0, "i", None)
    firmware = "XCALIBUR V1.04" if model == "tecan-xcalibur" else "XLP6000 V1.8"
    assert labmcp.step("identify")["firmware"] == firmware  # `&`
    labmcp.step("valve_input")
    assert labmcp.step("aspirate") == 600  # V1200P600R, then ? after Q reports ready
    pump = sim.wait(0, lambda p: not p["running"], "filled")
    assert pump["plunger_steps"] == 600 * fine // stroke_steps
    assert pump["syringe_liquid_ml"] == approx(600 * step_ml)
    assert pump["reservoir_ml"] == approx(500 - 600 * step_ml)
    assert labmcp.step("position") == 600
    labmcp.step("valve_output")
    assert sim.wait(0, lambda p: p["valve"] == "o", "turned to the output")["delivered_ml"] == 0.0
    assert labmcp.step("dispense") == 300  # V600D300R: half of it out of the output port
    pump = sim.wait(0, lambda p: not p["running"] and p["delivered_ml"] > 0, "dispensed")
    assert pump["delivered_ml"] == approx(300 * step_ml)
    assert labmcp.step("top_speed") == 600
    assert labmcp.step("terminate") is True


def test_pyhamiltonpsd_psd4(rig: Rig) -> None:
    sim, psd = rig("harness_psd.py", "hamilton-psd4")
    psd.step("connect")
    assert psd.step("initialize") == "/0@\x03\r\n"  # `/1ZR`, then `/1QR` until ready
    pump = sim.wait(0, lambda p: p["initialized"] and not p["running"], "initialized")
    assert (pump["plunger_steps"], pump["valve"]) == (0, "i")
    psd.step("aspirate")  # A1500R: 500 uL of its 1000 uL syringe, from the reservoir
    pump = sim.wait(0, lambda p: not p["running"], "filled")
    assert (pump["plunger_steps"], pump["syringe_liquid_ml"]) == (12000, approx(0.5))
    assert psd.step("position") == "/0`1500\x03\r\n"
    psd.step("valve_output")
    psd.step("dispense")  # D750R: 250 uL out of the output port
    pump = sim.wait(0, lambda p: not p["running"] and p["delivered_ml"] > 0, "dispensed")
    assert (pump["delivered_ml"], pump["plunger_steps"]) == (approx(0.25), 6000)
    psd.step("disconnect")


def test_python_syringe_pump_legato(rig: Rig) -> None:
    sim, psp = rig("harness_psp_legato.py", "kds-legato")
    psp.step("connect")  # poll on, nvram none, load qs iw, time: all answered, XON last
    assert psp.step("version") == {"firmware": "v3.0.6", "address": 0, "serial_number": "D101754"}
    low, high = psp.step("limits")  # litres per minute: the recorded pump's range at 7.262 mm
    assert (low, high) == (pytest.approx(25.0404e-9), pytest.approx(26.0035e-3))
    psp.step("diameter")
    psp.step("syringe_volume")
    psp.step("rate")
    assert sim.wait(0, lambda p: p["rate_ml_per_h"] == 180.0, "took 3 ml/min")["running"] is False
    assert psp.step("read_rate") == pytest.approx(3e-3)
    psp.step("clear")
    psp.step("target")
    assert psp.step("read_target") == pytest.approx(50e-6)
    sim.wait(0, lambda p: p["target_ml"] == 0.05, "took 50 ul")
    psp.step("run")
    sim.wait(0, lambda p: p["running"] and p["direction"] == "infuse", "infusing")
    pump = sim.wait(0, lambda p: not p["running"], "stopped at its target")
    assert (pump["delivered_ml"], pump["alarm"]) == (approx(0.05), None)
    assert psp.step("infused") == pytest.approx(50e-6)
    psp.step("stop")


def test_kdsautolib_legato_writes_without_reading(rig: Rig) -> None:
    """kdsautolib never reads a reply: the pump answers into a buffer nobody drains and must
    go on taking commands."""
    sim, kds = rig("harness_kdsautolib.py", "kds-legato")
    kds.step("connect")
    kds.step("syringe")  # diameter 14.57, svolume 10 ml
    kds.step("rate")  # irate 3 ml/min
    sim.wait(0, lambda p: p["rate_ml_per_h"] == 180.0, "took 3 ml/min")
    kds.step("clear")
    kds.step("target")  # tvolume 50 ul
    sim.wait(0, lambda p: p["target_ml"] == 0.05, "took 50 ul")
    kds.step("run")
    sim.wait(0, lambda p: p["running"], "infusing")
    pump = sim.wait(0, lambda p: not p["running"], "stopped at its target")
    assert pump["delivered_ml"] == approx(0.05)
    kds.step("stop")
