"""NE1000Driver against a scripted transport: exact bytes out, canned replies in."""

from __future__ import annotations

import math

import pytest

from pumpctl.clock import RealClock
from pumpctl.drivers.base import (
    AlarmReason,
    CommandRejected,
    Direction,
    ProtocolError,
    PumpAlarm,
    PumpError,
    PumpState,
    PumpTimeout,
    UnsupportedError,
)
from pumpctl.drivers.newera import NE1000Driver, crc16_xmodem
from pumpctl.drivers.registry import available_models, driver_class, open_transport
from pumpctl.drivers.transport import SerialTransport

from . import scripted
from .scripted import Step


def basic(text: str) -> bytes:
    return b"\x02" + text.encode() + b"\x03"


def safe(text: str) -> bytes:
    data = text.encode()
    return b"\x02" + bytes([len(data) + 4]) + data + crc16_xmodem(data).to_bytes(2, "big") + b"\x03"


def timeout() -> PumpTimeout:
    return PumpTimeout("no complete reply on fake at 19200 baud")


class ScriptedTransport(scripted.ScriptedTransport):
    """The shared scripted fake with NE-1000 framing."""

    name = "fake://ne1000"
    trailing = b"\x02trailing"


async def opened(*steps: Step, address: int = 0) -> tuple[NE1000Driver, ScriptedTransport]:
    t = ScriptedTransport((f"{address}\r".encode(), basic(f"{address:02d}S")), *steps)
    driver = NE1000Driver(t, address=address)
    await driver.open()
    return driver, t


# --------------------------------------------------------------------------- open


async def test_open_basic() -> None:
    driver, t = await opened()
    assert t.opened and not driver.safe_mode and driver.alarm_on_open is None
    t.done()


async def test_open_acknowledges_power_up_reset() -> None:
    t = ScriptedTransport((b"0\r", basic("00A?R")), (b"0\r", basic("00S")))
    driver = NE1000Driver(t)
    await driver.open()
    assert driver.alarm_on_open is AlarmReason.RESET
    t.done()


async def test_open_finds_a_pump_left_in_safe_mode() -> None:
    t = ScriptedTransport((b"5\r", timeout()), (safe("5"), safe("05A?T")), (safe("5"), safe("05S")))
    driver = NE1000Driver(t, address=5)
    await driver.open()
    assert driver.safe_mode and driver.alarm_on_open is AlarmReason.LINK_TIMEOUT
    t.expect((safe("5VER"), safe("05SNE1000V3.928")))
    assert (await driver.identify()).firmware == "3.928"
    t.done()


async def test_open_fails_and_closes_when_nobody_answers() -> None:
    t = ScriptedTransport((b"0\r", timeout()), (safe("0"), timeout()))
    with pytest.raises(PumpTimeout):
        await NE1000Driver(t).open()
    assert not t.opened
    t.done()


async def test_context_manager_closes() -> None:
    t = ScriptedTransport((b"0\r", basic("00S")))
    async with NE1000Driver(t) as driver:
        assert t.opened and driver.pump_id == "ne1000-0"
    assert not t.opened


def test_address_validated() -> None:
    for bad in (-1, 100):
        with pytest.raises(ValueError, match=r"0\.\.99"):
            NE1000Driver(ScriptedTransport(), address=bad)


async def test_reply_from_another_address_is_never_acted_on() -> None:
    driver, t = await opened((b"0RUN\r", basic("01I")))
    with pytest.raises(ProtocolError, match="address 1"):
        await driver.start()
    t.done()


# --------------------------------------------------------------------------- commands


async def test_identify() -> None:
    driver, t = await opened((b"12VER\r", basic("12SNE1000V3.928")), address=12)
    ident = await driver.identify()
    assert (ident.model, ident.firmware, ident.address) == ("NE1000", "3.928", 12)
    t.done()


async def test_configure_syringe_and_capabilities() -> None:
    driver, t = await opened((b"0DIA26.59\r", basic("00S")))
    await driver.configure_syringe(26.59)
    caps = driver.capabilities
    assert caps.max_rate_ml_per_h == pytest.approx(1699.0)
    assert caps.min_rate_ml_per_h == pytest.approx(0.00073 * (26.59 / 4.699) ** 2)
    assert caps.volume_resolution_ml == 1e-3
    assert caps.has_link_watchdog and caps.can_withdraw and caps.accuracy_percent == 1.0
    t.expect((b"0DIA4.699\r", basic("00S")))
    await driver.configure_syringe(4.699)
    assert driver.capabilities.min_rate_ml_per_h == pytest.approx(0.00073)
    assert driver.capabilities.volume_resolution_ml == 1e-6
    t.done()


async def test_set_rate_when_stopped_sends_direction_and_unit() -> None:
    driver, t = await opened(
        (b"0DIA26.59\r", basic("00S")), (b"0DIRINF\r", basic("00S")), (b"0RAT5MH\r", basic("00S"))
    )
    await driver.configure_syringe(26.59)
    await driver.set_rate(5.0)
    t.expect((b"0DIRWDR\r", basic("00S")), (b"0RAT1.234MH\r", basic("00S")))
    await driver.set_rate(1.2345, Direction.WITHDRAW)
    t.done()


async def test_set_rate_small_syringe_unit() -> None:
    driver, t = await opened(
        (b"0DIA4.699\r", basic("00S")),
        (b"0DIRINF\r", basic("00S")),
        (b"0RAT0.73UH\r", basic("00S")),
    )
    await driver.configure_syringe(4.699)
    await driver.set_rate(0.00073)
    t.done()


async def test_set_rate_while_running_keeps_the_unit() -> None:
    driver, t = await opened(
        (b"0DIRINF\r", basic("00S")),
        (b"0RAT5MH\r", basic("00S")),
        (b"0RUN\r", basic("00I")),
        (b"0RAT7.5\r", basic("00I")),
    )
    await driver.set_rate(5.0)
    await driver.start()
    assert await driver.set_rate(7.5) == 7.5
    # 0.0002 mL/h in MH would be "0" (100 % off): refused, nothing sent
    with pytest.raises(UnsupportedError, match="stop first"):
        await driver.set_rate(0.0002)
    t.done()


async def test_set_rate_while_running_learns_the_unit_from_the_pump() -> None:
    t = ScriptedTransport((b"0\r", basic("00I")))
    driver = NE1000Driver(t)
    await driver.open()
    t.expect(
        (b"0DIRINF\r", basic("00I")),
        (b"0RAT\r", basic("00I250.0UH")),
        (b"0RAT300\r", basic("00I")),
    )
    assert await driver.set_rate(0.3) == 0.3
    # rounded down in the unit in force, and returned as sent
    t.expect((b"0RAT456.7\r", basic("00I")))
    assert await driver.set_rate(0.45678) == pytest.approx(0.4567)
    t.done()


async def test_set_rate_rejected_out_of_range() -> None:
    driver, t = await opened((b"0DIRINF\r", basic("00S")), (b"0RAT2500MH\r", basic("00S?OOR")))
    with pytest.raises(CommandRejected) as info:
        await driver.set_rate(2500.0)
    assert (info.value.code, info.value.command) == ("?OOR", "RAT2500MH")
    t.done()


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
async def test_set_rate_refuses_nonsense(bad: float) -> None:
    driver, t = await opened()
    with pytest.raises(ValueError):
        await driver.set_rate(bad)
    t.done()


async def test_target_volume_units_follow_diameter() -> None:
    driver, t = await opened(
        (b"0DIA26.59\r", basic("00S")),
        (b"0VOLML\r", basic("00S")),
        (b"0VOL12.34\r", basic("00S")),  # rounded down: never more than asked
        (b"0DIA4.699\r", basic("00S")),
        (b"0VOLUL\r", basic("00S")),
        (b"0VOL500\r", basic("00S")),
        (b"0VOL0\r", basic("00S")),
    )
    await driver.configure_syringe(26.59)
    assert await driver.set_target_volume(12.346) == 12.34
    await driver.configure_syringe(4.699)
    assert await driver.set_target_volume(0.5) == 0.5
    assert await driver.set_target_volume(None) is None
    with pytest.raises(UnsupportedError):
        await driver.set_target_volume(12.0)  # 12000 µL does not fit 4 digits
    with pytest.raises(ValueError):
        await driver.set_target_volume(0.0)  # 0 would mean "run forever": use None
    t.done()


async def test_issue_11_loading_volume_is_never_rounded_up() -> None:
    """71.3 kg, 0.35 mg/kg at 2 mg/mL = 12.4775 mL: the old driver sent `VOL12.48` (to nearest,
    over-delivery). Now the target and the rate are rounded down, returned as sent, and a value
    already in the pump's format is sent exactly."""
    driver, t = await opened(
        (b"0DIA26.7\r", basic("00S")),
        (b"0DIRINF\r", basic("00S")),
        (b"0RAT74.86MH\r", basic("00S")),
        (b"0VOLML\r", basic("00S")),
        (b"0VOL12.47\r", basic("00S")),
        (b"0RAT73.5MH\r", basic("00S")),
        (b"0VOLML\r", basic("00S")),
        (b"0VOL12.25\r", basic("00S")),
    )
    await driver.configure_syringe(26.7)
    assert await driver.set_rate(74.865) == 74.86
    assert await driver.set_target_volume(12.4775) == 12.47
    assert await driver.set_rate(73.5) == 73.5
    assert await driver.set_target_volume(12.25) == 12.25
    assert driver.quantizer.floor_volume_ml(12.4775) == 12.47
    t.done()


async def test_target_volume_reads_diameter_when_unknown() -> None:
    driver, t = await opened(
        (b"0DIA\r", basic("00S14.43")), (b"0VOLML\r", basic("00S")), (b"0VOL5\r", basic("00S"))
    )
    await driver.set_target_volume(5.0)
    t.done()


async def test_target_volume_refuses_a_nonsense_diameter() -> None:
    driver, t = await opened((b"0DIA\r", basic("00SNaN")))
    with pytest.raises(ProtocolError, match="DIA"):
        await driver.set_target_volume(5.0)
    t.done()


async def test_start_pause_resume_stop() -> None:
    driver, t = await opened(
        (b"0RUN\r", basic("00I")),
        (b"0\r", basic("00I")),
        (b"0STP\r", basic("00P")),
        (b"0\r", basic("00P")),  # second pause: already paused, no second STP
        (b"0RUN\r", basic("00I")),
        (b"0STP\r", basic("00P")),
        (b"0STP\r", basic("00S")),
        (b"0STP\r", basic("00S?NA")),  # stop is idempotent
    )
    await driver.start()
    await driver.pause()
    await driver.pause()
    await driver.start()
    await driver.stop()
    await driver.stop()
    t.done()


async def test_stop_gives_up_after_three_stp() -> None:
    driver, t = await opened(*[(b"0STP\r", basic("00X")) for _ in range(3)])
    with pytest.raises(PumpError, match="after 3 STP"):
        await driver.stop()
    t.done()


@pytest.mark.parametrize(
    ("reply", "state", "direction", "alarm"),
    [
        ("00I", PumpState.RUNNING, Direction.INFUSE, None),
        ("00W", PumpState.RUNNING, Direction.WITHDRAW, None),
        ("00S", PumpState.STOPPED, None, None),
        ("00P", PumpState.PAUSED, None, None),
        ("00T", PumpState.OTHER, None, None),
        ("00U", PumpState.OTHER, None, None),
        ("00X", PumpState.OTHER, None, None),
        ("00A?S", PumpState.ALARM, None, AlarmReason.STALL),
    ],
)
async def test_read_status(
    reply: str, state: PumpState, direction: Direction | None, alarm: AlarmReason | None
) -> None:
    driver, t = await opened((b"0\r", basic(reply)))
    status = await driver.read_status()
    assert (status.state, status.direction, status.alarm, status.raw) == (
        state,
        direction,
        alarm,
        reply,
    )
    t.done()


async def test_read_delivered_and_clear() -> None:
    driver, t = await opened(
        (b"0DIS\r", basic("00SI1.250W0.000ML")),
        (b"0CLDINF\r", basic("00S")),
        (b"0CLDWDR\r", basic("00S")),
        (b"0DIS\r", basic("00SI0.000W0.000ML")),
    )
    assert (await driver.read_delivered()).infused_ml == 1.25
    await driver.clear_counters()
    assert (await driver.read_delivered()).net_ml == 0.0
    t.done()


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("R", AlarmReason.RESET),
        ("S", AlarmReason.STALL),
        ("T", AlarmReason.LINK_TIMEOUT),
        ("E", AlarmReason.PROGRAM_ERROR),
        ("O", AlarmReason.OUT_OF_RANGE),
    ],
)
async def test_alarm_reply_to_a_command(code: str, reason: AlarmReason) -> None:
    driver, t = await opened((b"0RUN\r", basic(f"00A?{code}")))
    with pytest.raises(PumpAlarm) as info:
        await driver.start()
    assert info.value.reason is reason
    t.done()


# --------------------------------------------------------------------------- watchdog


async def test_link_watchdog_enable_and_disable() -> None:
    driver, t = await opened(
        (safe("0SAF3"), safe("00S")),
        (safe("0"), safe("00S")),
        (safe("0SAF0"), basic("00S")),
        (b"0\r", basic("00S")),
    )
    await driver.enable_link_watchdog(2.5)
    assert driver.safe_mode and driver.link_watchdog_s == 3
    await driver.read_status()
    await driver.disable_link_watchdog()
    assert not driver.safe_mode and driver.link_watchdog_s is None
    await driver.read_status()
    t.done()


@pytest.mark.parametrize("bad", [0.0, -1.0, 255.5, 300.0, math.nan])
async def test_link_watchdog_range(bad: float) -> None:
    driver, t = await opened()
    with pytest.raises(ValueError):
        await driver.enable_link_watchdog(bad)
    t.done()


async def test_pump_that_stays_basic_after_saf_is_detected() -> None:
    driver, t = await opened((safe("0SAF10"), basic("00S")))
    with pytest.raises(ProtocolError, match="safe mode not entered"):
        await driver.enable_link_watchdog(10)
    assert not driver.safe_mode
    t.done()


async def test_com_in_safe_mode_retries_a_query_only() -> None:
    driver, t = await opened(
        (safe("0SAF5"), safe("00S")),
        (safe("0DIS"), safe("00S?COM")),
        (safe("0DIS"), safe("00SI1.000W0.000UL")),
        (safe("0RUN"), safe("00S?COM")),
    )
    await driver.enable_link_watchdog(5)
    assert (await driver.read_delivered()).infused_ml == pytest.approx(0.001)
    with pytest.raises(ProtocolError, match="COM"):
        await driver.start()
    t.done()


# --------------------------------------------------------------------------- SR21


async def test_command_is_never_resent_after_a_timeout() -> None:
    driver, t = await opened((b"0RUN\r", timeout()))
    with pytest.raises(PumpTimeout):
        await driver.start()
    assert t.sent.count(b"0RUN\r") == 1
    t.done()


async def test_garbled_reply_to_a_command_is_not_resent() -> None:
    driver, t = await opened((b"0STP\r", b"\x0200Z\x03"))
    with pytest.raises(ProtocolError):
        await driver.stop()
    assert t.sent.count(b"0STP\r") == 1
    t.done()


async def test_query_is_retried_after_timeout_and_garble() -> None:
    driver, t = await opened(
        (b"0DIS\r", timeout()),
        (b"0DIS\r", b"\x0200SI1.0W\xff\x03"),
        (b"0DIS\r", basic("00SI2.000W0.000ML")),
    )
    assert (await driver.read_delivered()).infused_ml == 2.0
    t.done()


# --------------------------------------------------------------------------- registry


def test_registry() -> None:
    assert driver_class("ne1000") is NE1000Driver
    assert "ne1000" in available_models()
    with pytest.raises(ValueError, match=r"valid models: .*ne1000"):
        driver_class("ne9999")


def test_open_transport_defaults_to_the_model_baud() -> None:
    clock = RealClock()
    t = open_transport("loop://", baudrate=None, clock=clock, model="ne1000")
    assert isinstance(t, SerialTransport) and t.baudrate == 19200 and not t.is_open
    assert open_transport("loop://", baudrate=9600, clock=clock).baudrate == 9600


async def test_read_poll_is_one_dis_exchange_with_status_and_volumes() -> None:
    driver, t = await opened(
        (b"0DIS\r", basic("00II3.500W0.000ML")),  # infusing, 3.5 mL so far
        (b"0DIS\r", basic("00A?S")),  # stalled: the alarm is the status, no volumes to act on
    )
    status, delivered = await driver.read_poll()
    assert status.state is PumpState.RUNNING and delivered.infused_ml == 3.5
    status, _ = await driver.read_poll()
    assert status.state is PumpState.ALARM and status.alarm is AlarmReason.STALL
    t.done()


async def test_a_polls_status_is_its_prompt_one_object_per_prompt() -> None:
    """`raw` is the prompt (the volumes are decoded apart); the frozen status is shared by every
    reply with that prompt, and an alarm keeps its whole text."""
    driver, t = await opened(
        (b"0DIS\r", basic("00II3.500W0.000ML")),
        (b"0DIS\r", basic("00II3.503W0.000ML")),
        (b"0DIS\r", basic("00SI3.600W0.000ML")),
        (b"0DIS\r", basic("00A?S")),
    )
    first, v1 = await driver.read_poll()
    second, v2 = await driver.read_poll()
    stopped, _ = await driver.read_poll()
    alarm, _ = await driver.read_poll()
    assert (first.raw, v1.infused_ml, v2.infused_ml) == ("00I", 3.5, 3.503)
    assert second is first and first.direction is Direction.INFUSE
    assert (stopped.state, stopped.raw) == (PumpState.STOPPED, "00S")
    assert (alarm.state, alarm.raw) == (PumpState.ALARM, "00A?S")
    t.done()
