"""The Cavro driver against a scripted transport: the exact bytes of a leg of dispense-and-refill
strings, what it counts and when, pause and stop by `T`, a lost answer (SR21: `?16`), a power
loss (error 7), and OEM resends with the repeat bit."""

from __future__ import annotations

import pytest

from pumpctl.drivers.base import (
    AlarmReason,
    CommandRejected,
    Direction,
    ProtocolError,
    PumpState,
    PumpTimeout,
    UnsupportedError,
)
from pumpctl.drivers.cavro import ValvePorts, XCaliburDriver, XCaliburOemDriver
from pumpctl.drivers.cavro_codec import encode_oem

from . import scripted
from .scripted import Step


class ScriptedTransport(scripted.ScriptedTransport):
    name = "fake://cavro"
    trailing = b"/0`\x03\r\n"


class OemTransport(scripted.ScriptedTransport):
    name = "fake://cavro-oem"
    trailing = bytes.fromhex("02 30 60 03 51")


def a(status: str, data: str = "") -> bytes:
    """A DT answer: `/0`, the status character, data, ETX CR LF."""
    return f"/0{status}{data}".encode() + b"\x03\r\n"


def poll(position: int, valve: str, q: str = "@") -> list[Step]:
    return [(b"/1?\r", a(q, str(position))), (b"/1?6\r", a(q, valve)), (b"/1Q\r", a(q))]


CONFIGURE: list[Step] = [(b"/1Q\r", a("g")), (b"/1N1R\r", a("g"))]  # power-up: error 7


async def leg(*steps: Step, target_ml: float = 1.5) -> tuple[XCaliburDriver, ScriptedTransport]:
    """Configured for a 1 mL syringe at 60 mL/h (V105), target set, started (first string)."""
    t = ScriptedTransport(
        *CONFIGURE,
        *poll(0, "i", "`"),
        (b"/1?16\r", a("`", "0")),
        (b"/1Z0IV3000P24000OV105D24000IV3000P12000OR\r", a("@")),
        *steps,
    )
    driver = XCaliburDriver(t)
    await driver.configure_tubing(1.0)
    assert await driver.set_rate(60.0) == pytest.approx(3600 / (6000 / 105 + 3.0))
    assert await driver.set_target_volume(target_ml) == target_ml
    await driver.start()
    return driver, t


async def test_a_leg_initializes_fills_dispenses_and_refills_in_bounded_strings() -> None:
    driver, t = await leg(
        *poll(24000, "o"),  # dispensing from full: nothing out yet
        *poll(18000, "o"),  # a quarter out
        *poll(6000, "i"),  # refilling: the whole syringe is out
        *poll(12000, "o", "`"),  # done: next string dispenses the last 0.5 mL, no refill
        (b"/1?16\r", a("`", "3")),
        (b"/1OV105D12000R\r", a("@")),
        *poll(3000, "o"),
        *poll(0, "o", "`"),
        *poll(0, "o", "`"),
    )
    delivered = [(await driver.read_poll()) for _ in range(6)]
    states = [s.state for s, _ in delivered]
    volumes = [d.infused_ml for _, d in delivered]
    assert states[:5] == [PumpState.RUNNING] * 5 and states[5] is PumpState.STOPPED
    assert volumes == pytest.approx([0.0, 0.25, 1.0, 1.0, 1.375, 1.5])
    # the status says when the pump draws from the reservoir: busy, valve at the input port
    assert [s.refilling for s, _ in delivered] == [False, False, True, False, False, False]
    assert (await driver.read_delivered()).infused_ml == pytest.approx(1.5)
    t.done()


async def test_pause_terminates_and_books_what_the_plunger_moved_resume_sends_a_new_string() -> (
    None
):
    driver, t = await leg(
        *poll(20000, "o"),
        (b"/1T\r", a("`")),
        *poll(19000, "o", "`"),
        *poll(19000, "o", "`"),
        *poll(19000, "o", "`"),
        (b"/1?16\r", a("`", "2")),
        (b"/1OV105D19000IV3000P12000OR\r", a("@")),
    )
    assert (await driver.read_delivered()).infused_ml == pytest.approx(4000 / 24000)
    await driver.pause()
    status, counted = await driver.read_poll()
    assert status.state is PumpState.PAUSED and counted.infused_ml == pytest.approx(5000 / 24000)
    await driver.start()  # 31000 increments left: the 19000 held, then 12000 refilled
    t.done()


async def test_stop_is_t_and_idempotent_and_a_stopped_leg_sends_nothing() -> None:
    driver, t = await leg(
        (b"/1T\r", a("`")),
        *poll(24000, "o", "`"),
        (b"/1T\r", a("`")),
        *poll(24000, "o", "`"),
    )
    await driver.stop()
    await driver.stop()
    status, counted = await driver.read_poll()
    assert (status.state, counted.infused_ml) == (PumpState.STOPPED, 0.0)
    t.done()


async def test_a_lost_answer_to_a_string_is_assumed_run_unless_the_move_counter_stood_still() -> (
    None
):
    t = ScriptedTransport(
        *CONFIGURE,
        *poll(0, "i", "`"),
        (b"/1?16\r", a("`", "7")),
        (b"/1Z0IV3000P24000OV105D24000IV3000P12000OR\r", PumpTimeout("lost")),
        *poll(0, "i", "`"),
        (b"/1?16\r", a("`", "7")),  # it never started: sent again
        (b"/1?16\r", a("`", "7")),
        (b"/1Z0IV3000P24000OV105D24000IV3000P12000OR\r", a("@")),
    )
    driver = XCaliburDriver(t)
    await driver.configure_tubing(1.0)
    await driver.set_rate(60.0)
    await driver.set_target_volume(1.5)
    await driver.start()  # the answer is lost: no error, the next poll re-reads
    status, counted = await driver.read_poll()
    assert (status.state, counted.infused_ml) == (PumpState.RUNNING, 0.0)
    t.done()


async def test_error_7_after_a_run_began_is_a_power_loss_and_the_count_is_lost() -> None:
    driver, t = await leg(*poll(18000, "o"), *poll(0, "o", "g"))
    assert (await driver.read_delivered()).infused_ml == pytest.approx(0.25)
    status, counted = await driver.read_poll()
    assert (status.state, status.alarm, counted.infused_ml) == (
        PumpState.ALARM,
        AlarmReason.RESET,
        0.0,
    )
    t.done()


async def test_an_overload_is_a_stall_alarm_and_the_count_stays_where_the_plunger_stopped() -> None:
    driver, t = await leg(*poll(12000, "o", "i"))
    status, counted = await driver.read_poll()
    assert (status.state, status.alarm) == (PumpState.ALARM, AlarmReason.STALL)
    assert counted.infused_ml == pytest.approx(0.5)
    t.done()


async def test_rates_refused_and_speed_changed_on_the_fly() -> None:
    driver, t = await leg((b"/1V110R\r", a("@")))
    with pytest.raises(UnsupportedError, match="below"):
        await driver.set_rate(0.5)
    with pytest.raises(UnsupportedError):
        await driver.set_rate(60.0, Direction.WITHDRAW)
    await driver.set_rate(62.6)  # V110, sent at once: a dispense is running
    with pytest.raises(UnsupportedError, match="stroke volume"):
        await driver.configure_syringe(14.5)
    t.done()


async def test_an_immediate_error_is_a_refusal() -> None:
    t = ScriptedTransport((b"/1N1R\r", a("c")))
    driver = XCaliburDriver(t)
    with pytest.raises(CommandRejected, match="invalid operand"):
        await driver._command("N1R")
    t.done()


async def test_distribution_valve_ports() -> None:
    ports = ValvePorts.distribution(reservoir=1, output=3)
    assert (ports.reservoir_command, ports.output_command, ports.output_report) == ("I1", "I3", "3")
    with pytest.raises(ValueError):
        ValvePorts.distribution(2, 2)


async def test_oem_resends_a_lost_block_with_the_repeat_bit_and_the_same_sequence() -> None:
    t = OemTransport(
        (encode_oem(0, 1, "&"), PumpTimeout("lost")),
        (encode_oem(0, 1, "&", repeat=True), _oem_answer(0x60, "XC1")),
        (encode_oem(0, 2, "Q"), _oem_answer(0x60, "")),
    )
    driver = XCaliburOemDriver(t)
    identity = await driver.identify()
    assert (identity.model, identity.firmware) == ("XCalibur", "XC1")
    assert (await driver._raw("Q", query=True)).ready  # the next block: the next sequence
    t.done()


def _oem_answer(status: int, data: str) -> bytes:
    block = bytes([0x02, 0x30, status]) + data.encode() + b"\x03"
    check = 0
    for b in block:
        check ^= b
    return block + bytes([check])


async def test_a_pump_naming_another_model_is_not_this_model() -> None:
    t = ScriptedTransport((b"/1&\r", a("`", "XLP6000 V1.8")), (b"/1&\r", a("`", "XCALIBUR V1.04")))
    driver = XCaliburDriver(t)
    with pytest.raises(ProtocolError, match="a tecan-xlp6000, not a tecan-xcalibur"):
        await driver.identify()
    assert (await driver.identify()).firmware == "XCALIBUR V1.04"
    t.done()


async def test_open_identifies_and_silence_names_the_line() -> None:
    t = ScriptedTransport(*[(b"/1&\r", PumpTimeout("silent"))] * 3)
    with pytest.raises(PumpTimeout, match="no Cavro-protocol \\(DT\\) pump at address switch 0"):
        await XCaliburDriver(t).open()
    assert not t.opened
    t.done()
