"""Issue #11 fidelity fixes seen from pumpctl's own drivers: each driver still agrees with its
emulation after the emulation was changed to what third-party clients expect (in memory, on the
virtual clock)."""

from __future__ import annotations

import pytest

from pumpctl.clock import Clock, run_with_clock
from pumpctl.drivers.base import PumpState
from pumpctl.drivers.harvard_elite import HarvardEliteDriver
from pumpctl.drivers.harvard_legacy import HarvardLegacyDriver
from pumpctl.simulator.devices.harvard_elite import HarvardEliteEmulation
from pumpctl.simulator.devices.harvard_legacy import HarvardLegacyEmulation
from pumpctl.simulator.endpoints import InMemoryTransport


@pytest.mark.parametrize(
    ("diameter_mm", "phd", "target_text"),
    [(10.0, False, " 50.0000"), (14.0, False, " 50.0000"), (14.43, False, "  0.0500"),
     (10.0, True, "  0.0500")],
)  # fmt: skip
def test_legacy_driver_follows_the_pump11_volume_unit(
    diameter_mm: float, phd: bool, target_text: str
) -> None:
    """Up to 14.00 mm a Pump 11 counts MLT/VOL in µL (a PHD2000 never): the driver sends the
    target in the pump's unit and reads VOL back in mL, so 0.05 mL is exactly what runs."""
    emu = HarvardLegacyEmulation((), phd_addresses=(0,)) if phd else HarvardLegacyEmulation((0,))

    async def main(clock: Clock) -> float:
        async with HarvardLegacyDriver(InMemoryTransport(emu, clock), address=0) as driver:
            await driver.identify()
            await driver.configure_syringe(diameter_mm)
            await driver.clear_counters()
            await driver.set_rate(3.0)  # 50 µL/min
            await driver.set_target_volume(0.05)
            await driver.start()
            while (await driver.read_status()).state is PumpState.RUNNING:
                await clock.sleep(1.0)
            return (await driver.read_delivered()).infused_ml

    delivered = run_with_clock(main, virtual=True)
    assert delivered == pytest.approx(0.05, abs=1e-6)
    truth = emu.snapshot()[0]
    assert (truth.running, truth.target_ml) == (False, 0.05)
    assert truth.delivered_ml == pytest.approx(0.05, abs=1e-6)
    emu.feed(b"0TAR\r")
    assert target_text in emu.read().decode()


def test_elite_driver_reads_the_manual_form_of_crate() -> None:
    emu = HarvardEliteEmulation((0,))

    async def main(clock: Clock) -> tuple[float, float]:
        async with HarvardEliteDriver(InMemoryTransport(emu, clock), address=0) as driver:
            await driver.configure_syringe(14.5)
            idle = await driver.read_rate()
            await driver.set_rate(180.0)
            await driver.start()
            return idle, await driver.read_rate()

    idle, running = run_with_clock(main, virtual=True)
    assert (idle, running) == (0.0, 180.0)
    emu.feed(b"crate\r")
    assert emu.read() == b"\n00>Infusing at 180 ml/hr\r\n"


@pytest.mark.parametrize(
    ("model", "request_bytes", "reply"),
    [
        ("ne1000", b"0SAF\xb2\r", b"\x0200S?OOR\x03"),  # `²` (Latin-1 B2h) passes isdigit()
        ("ne1000", b"0*ADR\xb2\r", b"\x0200S?OOR\x03"),
        ("harvard-elite", b"address \xb2\r", b"\n00:Argument error\r\n"),
        ("harvard-legacy", b"\xb2VER\r", b"\r\n?\r\n00:"),
    ],
)
def test_non_ascii_digits_are_refused_as_the_pump_would(
    model: str, request_bytes: bytes, reply: bytes
) -> None:
    """Issue #17: an emulation never raises on any bytes (`int('²')` did); the conformance
    suite fuzzes this for every family, these are the golden answers."""
    from pumpctl.simulator.server import build_emulation

    emu = build_emulation(model, [0])
    emu.read()  # a power-up announcement, if any
    if model == "ne1000":
        emu.feed(b"0\r")  # acknowledge the power-up reset alarm
        emu.read()
    emu.feed(request_bytes)
    assert emu.read() == reply
