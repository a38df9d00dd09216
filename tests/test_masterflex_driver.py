"""MasterflexDriver: pure codec (exact bytes), a scripted transport, calibration maths, the
drive's known oddities (NAK to G0 while running, unreliable ENQ) and parser fuzzing."""

from __future__ import annotations

import asyncio
import contextlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pumpctl.drivers.base import (
    CommandRejected,
    Direction,
    FrameLength,
    ProtocolError,
    PumpError,
    PumpState,
    PumpTimeout,
    UnsupportedError,
)
from pumpctl.drivers.masterflex import (
    CALIBRATED_ACCURACY_PERCENT,
    NOMINAL_ACCURACY_PERCENT,
    NOMINAL_ML_PER_REV,
    MasterflexDriver,
    MFReply,
    encode_command,
    format_revolutions,
    format_speed,
    frame_length,
    ml_per_rev_from_calibration,
    parse_cumulative,
    parse_reply,
    parse_speed,
    parse_status,
    parse_to_go,
)
from pumpctl.drivers.transport import Transport

from . import scripted
from .scripted import Step

ACK = b"\x06"
NAK = b"\x15"
ENQ = b"\x05"


def data(text: str) -> bytes:
    return b"\x02" + text.encode() + b"\r"


def cmd(text: str) -> bytes:
    """A request to pump 01 (the tests spell out the bytes; the codec is tested on its own)."""
    return b"\x02P01" + text.encode() + b"\r"


def timeout() -> PumpTimeout:
    return PumpTimeout("no complete reply on fake at 4800 baud")


class ScriptedTransport(scripted.ScriptedTransport):
    """The shared scripted fake with Masterflex framing."""

    name = "fake://masterflex"
    trailing = b"\x02trailing\r"


OPEN: tuple[Step, ...] = ((ENQ, data("P01")), (cmd(""), ACK), (cmd("R"), ACK))


async def opened(
    *steps: Step, ml_per_rev: float | None = 0.8, **kwargs: bool
) -> tuple[MasterflexDriver, ScriptedTransport]:
    t = ScriptedTransport(*OPEN, *steps)
    driver = MasterflexDriver(t, address=1, **kwargs)  # type: ignore[arg-type]
    await driver.open()
    if ml_per_rev is not None:
        await driver.configure_tubing(ml_per_rev)
    return driver, t


# --------------------------------------------------------------------------- codec


def test_encode_command_golden_bytes() -> None:
    assert encode_command(1) == b"\x02P01\r"
    assert encode_command(1, "S+130.0") == b"\x02P01S+130.0\r"
    assert encode_command(89, "V00012.50") == b"\x02P89V00012.50\r"
    assert encode_command(7, "Z0") == b"\x02P07Z0\r"


@pytest.mark.parametrize("address", [0, 90, 99, -1])
def test_encode_command_pump_number_range(address: int) -> None:
    with pytest.raises(ValueError, match=r"1\.\.89"):
        encode_command(address, "I")


@pytest.mark.parametrize("letters", ["S +1", "I\r", "Ä"])
def test_encode_command_refuses_non_printable(letters: str) -> None:
    with pytest.raises(ValueError):
        encode_command(1, letters)


@pytest.mark.parametrize(
    ("rpm", "text"),
    [
        (130, "+130.0"),
        (-4, "-004.0"),
        (432.94, "+432.9"),
        (432.96, "+432.9"),  # rounded down: never faster than asked
        (600, "+600.0"),
        (0.05, "+000.0"),
        (0.15, "+000.1"),
        (-0.04, "+000.0"),  # no "-000.0"
    ],
)
def test_format_speed(rpm: float, text: str) -> None:
    assert format_speed(rpm) == text


@pytest.mark.parametrize("rpm", [1000.0, -1000.0, math.nan, math.inf])
def test_format_speed_refuses(rpm: float) -> None:
    with pytest.raises(ValueError):
        format_speed(rpm)


@pytest.mark.parametrize(
    ("revolutions", "text"),
    [
        (0.05, "00000.05"),
        (12.5, "00012.50"),
        (12.345, "00012.34"),
        (12.355, "00012.35"),  # rounded down: never more than asked
        (12.349999999999, "00012.35"),  # float noise of 12.35 is 12.35
        (99999.99, "99999.99"),
        (0.004, "00000.00"),
    ],
)
def test_format_revolutions(revolutions: float, text: str) -> None:
    assert format_revolutions(revolutions) == text


@pytest.mark.parametrize("revolutions", [100000.0, 1e6, -0.01, math.nan])
def test_format_revolutions_refuses(revolutions: float) -> None:
    with pytest.raises(ValueError):
        format_revolutions(revolutions)


@pytest.mark.parametrize(
    ("buf", "length"),
    [
        (b"", None),
        (ACK, 1),
        (NAK + b"\x06", 1),
        (b"\x02P01I10030", None),
        (b"\x02P01I10030\r\x06", 11),
        (b"xy\x06", 2),
        (b"xy\x02P01\r", 2),
        (b"junk", 4),
        (b"\x02" + b"9" * 70, 71),  # no CR after 64 bytes: garbage, not a slow reply
    ],
)
def test_frame_length(buf: bytes, length: int | None) -> None:
    assert frame_length(buf) == length


def test_parse_reply() -> None:
    assert parse_reply(ACK) == MFReply("ack")
    assert parse_reply(NAK) == MFReply("nak")
    assert parse_reply(data("P01"), address=1) == MFReply("data", 1, "", "", "P01")
    assert parse_reply(data("P01I10030"), address=1) == MFReply(
        "data", 1, "I", "10030", "P01I10030"
    )
    # the manual's replies without the pump number (S, C, E, A, K)
    assert parse_reply(data("S+432.9"), address=1) == MFReply(
        "data", None, "S", "+432.9", "S+432.9"
    )
    assert parse_reply(data("C0000012.50")).value == "0000012.50"


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (data("P02I10030"), "pump 2, expected 1"),
        (b"\x02P01I1\x0130\r", "non-printable"),
        (b"\x02P01I10030", "neither"),
        (b"\x06\x06", "neither"),
        (data(""), "lacks"),
        (data("+432.9"), "lacks"),
        (b"", "neither"),
    ],
)
def test_parse_reply_rejects(raw: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match) as info:
        parse_reply(raw, address=1)
    assert info.value.raw == raw


def test_parse_values() -> None:
    assert parse_speed("+432.9") == 432.9
    assert parse_speed("-004.0") == -4.0
    assert parse_speed("+0130") == 130.0
    assert parse_cumulative("0000012.50") == 12.5
    assert parse_cumulative("9999999.99") == 9999999.99
    assert parse_to_go("00004.25") == 4.25
    assert parse_to_go("-0000.03") == -0.03  # overshoot
    assert parse_to_go("00004.25 ") == 4.25  # the manual shows a space before CR
    status = parse_status("10030")
    assert (status.remote, status.motor, status.running, status.raw) == (True, 3, True, "10030")
    assert not parse_status("01120").remote and not parse_status("01120").running


@pytest.mark.parametrize(
    ("parser", "value"),
    [
        (parse_speed, "0432.9"),
        (parse_speed, "+0432.95"),
        (parse_speed, "+"),
        (parse_cumulative, "-0000001.00"),
        (parse_cumulative, "12.345"),
        (parse_cumulative, ""),
        (parse_to_go, "1e3"),
        (parse_status, "103"),  # too short: 4 or 5 digits
        (parse_status, "20030"),  # mode digit is 0 or 1
        (parse_status, "10040"),  # motor digit is 1..3
        (parse_status, "1003x"),
    ],
)
def test_parse_values_reject(parser: object, value: str) -> None:
    assert callable(parser)
    with pytest.raises(ProtocolError):
        parser(value)


def test_calibration_maths() -> None:
    assert ml_per_rev_from_calibration(10, 8.2) == pytest.approx(0.82)
    assert ml_per_rev_from_calibration(0.01, 0.0006) == pytest.approx(0.06)
    for revolutions, measured in [(0.0, 1.0), (0.009, 1.0), (10, 0.0), (10, -1.0), (math.nan, 1)]:
        with pytest.raises(ValueError):
            ml_per_rev_from_calibration(revolutions, measured)


def test_nominal_tubing_table() -> None:
    assert sorted(NOMINAL_ML_PER_REV) == [13, 14, 15, 16, 17, 18, 24, 25, 35, 36]
    assert NOMINAL_ML_PER_REV[13] == 0.06 and NOMINAL_ML_PER_REV[16] == 0.8
    assert NOMINAL_ML_PER_REV[36] == 4.8


# --------------------------------------------------------------------------- open / close


async def test_open_enq_assign_remote() -> None:
    driver, t = await opened()
    assert t.opened and t.sent == [ENQ, b"\x02P01\r", b"\x02P01R\r"]
    assert driver.pump_id == "masterflex-ls-1"
    t.done()


@pytest.mark.parametrize(
    "enq_reply",
    [timeout(), b"\x02P0?\r", data("P07"), ACK],
    ids=["silent", "garbled", "other-pump", "ack"],
)
async def test_open_falls_back_to_status_when_enq_is_inconclusive(
    enq_reply: bytes | PumpError,
) -> None:
    t = ScriptedTransport(
        (ENQ, enq_reply), (cmd(""), ACK), (cmd("I"), data("P01I00010")), (cmd("R"), ACK)
    )
    await MasterflexDriver(t).open()
    t.done()


async def test_open_tolerates_an_unanswered_number_assignment() -> None:
    t = ScriptedTransport((ENQ, data("P01")), (cmd(""), timeout()), (cmd("R"), ACK))
    await MasterflexDriver(t).open()
    t.expect((ENQ, data("P01")), (cmd(""), NAK), (cmd("R"), ACK))
    await MasterflexDriver(t).open()
    t.done()


async def test_open_fails_and_closes_when_nobody_answers() -> None:
    t = ScriptedTransport(
        (ENQ, timeout()),
        (cmd(""), timeout()),
        *[(cmd("I"), timeout()) for _ in range(3)],
    )
    with pytest.raises(PumpTimeout):
        await MasterflexDriver(t).open()
    assert not t.opened
    t.done()


async def test_open_fails_when_remote_is_refused() -> None:
    t = ScriptedTransport((ENQ, data("P01")), (cmd(""), ACK), (cmd("R"), NAK))
    with pytest.raises(CommandRejected) as info:
        await MasterflexDriver(t).open()
    assert (info.value.code, info.value.command) == ("NAK", "R")
    assert not t.opened
    t.done()


async def test_context_manager_hands_back_local_control() -> None:
    t = ScriptedTransport(*OPEN, (cmd("L"), ACK))
    async with MasterflexDriver(t) as driver:
        assert t.opened and driver.address == 1
    assert not t.opened
    t.done()


async def test_close_closes_the_port_even_when_l_is_lost() -> None:
    driver, t = await opened((cmd("L"), timeout()))
    await driver.close()
    assert not t.opened
    t.done()


def test_pump_number_validated() -> None:
    for bad in (0, 90):
        with pytest.raises(ValueError, match=r"1\.\.89"):
            MasterflexDriver(ScriptedTransport(), address=bad)
    with pytest.raises(ValueError, match="min_rpm"):
        MasterflexDriver(ScriptedTransport(), min_rpm=10, max_rpm=5)


def test_serial_defaults() -> None:
    assert MasterflexDriver.family == "masterflex-ls"
    assert (
        MasterflexDriver.default_baudrate,
        MasterflexDriver.default_bytesize,
        MasterflexDriver.default_parity,
        MasterflexDriver.default_stopbits,
    ) == (4800, 7, "O", 1)


async def test_reply_from_another_pump_is_never_acted_on() -> None:
    driver, t = await opened(*[(cmd("I"), data("P02I10030")) for _ in range(3)])
    with pytest.raises(ProtocolError, match="pump 2"):
        await driver.read_status()
    t.done()


# --------------------------------------------------------------------------- tubing


async def test_identify_and_no_syringe() -> None:
    driver, t = await opened((cmd("I"), data("P01I10010")))
    ident = await driver.identify()
    assert (ident.model, ident.address) == ("Masterflex L/S", 1)
    with pytest.raises(UnsupportedError, match="configure_tubing"):
        await driver.configure_syringe(26.59)
    t.done()


async def test_capabilities_follow_the_calibration() -> None:
    driver, t = await opened(ml_per_rev=None)
    caps = driver.capabilities
    assert caps.family == "masterflex-ls"
    assert caps.min_rate_ml_per_h == pytest.approx(1 * 60 * 0.06)  # L/S 13 at 1 rpm
    assert caps.max_rate_ml_per_h == pytest.approx(600 * 60 * 4.8)  # L/S 36 at 600 rpm
    assert caps.accuracy_percent == NOMINAL_ACCURACY_PERCENT
    await driver.configure_tubing(0.8)
    caps = driver.capabilities
    assert (caps.min_rate_ml_per_h, caps.max_rate_ml_per_h) == pytest.approx((48.0, 28800.0))
    assert caps.volume_resolution_ml == pytest.approx(0.008)
    assert caps.rate_resolution_ml_per_h == pytest.approx(4.8)
    assert caps.accuracy_percent == CALIBRATED_ACCURACY_PERCENT == 2.0
    assert caps.can_withdraw and not caps.sets_syringe_volume
    assert not caps.has_link_watchdog
    await driver.configure_tubing_size(13)
    assert driver.ml_per_rev == 0.06 and not driver.calibrated
    assert driver.capabilities.accuracy_percent == NOMINAL_ACCURACY_PERCENT == 10.0
    with pytest.raises(ValueError, match="known"):
        await driver.configure_tubing_size(19)
    with pytest.raises(ValueError):
        await driver.configure_tubing(0.0)
    t.done()


async def test_quantizer_follows_the_calibration() -> None:
    driver, t = await opened()
    q = driver.quantizer  # 0.8 mL/rev: 0.01 rev = 0.008 mL, 0.1 rpm = 4.8 mL/h
    assert (q.volume_step_ml(10.0), q.rate_step_ml_per_h(240.0)) == (0.008, 4.8)
    assert q.floor_volume_ml(10.005) == 10.0
    assert q.floor_rate_ml_per_h(244.0) == pytest.approx(240.0)
    uncalibrated = MasterflexDriver(ScriptedTransport()).quantizer
    assert uncalibrated.volume_step_ml(1.0) == pytest.approx(0.0006)  # finest nominal tubing
    t.done()


async def test_100_rpm_drive_range() -> None:
    t = ScriptedTransport(*OPEN)
    driver = MasterflexDriver(t, max_rpm=100.0)
    await driver.open()
    await driver.configure_tubing(0.8)
    assert driver.capabilities.max_rate_ml_per_h == pytest.approx(4800.0)
    with pytest.raises(UnsupportedError, match=r"1\.\.100 rpm"):
        await driver.set_rate(4900.0)
    t.done()


async def test_calibrate_stores_the_measured_value() -> None:
    driver, t = await opened(ml_per_rev=None)
    await driver.configure_tubing_size(16)
    assert await driver.calibrate(revolutions=10, measured_ml=8.2) == pytest.approx(0.82)
    assert driver.ml_per_rev == pytest.approx(0.82) and driver.calibrated
    assert driver.capabilities.accuracy_percent == CALIBRATED_ACCURACY_PERCENT
    t.done()


async def test_two_step_calibration_uses_the_counted_revolutions() -> None:
    driver, t = await opened(
        (cmd("Z0"), ACK),
        (cmd("S+100.0"), ACK),
        (cmd("V00020.00"), ACK),
        (cmd("G"), ACK),
        (cmd("I"), data("P01I10030")),
        (cmd("I"), data("P01I10010")),
        (cmd("C"), data("C0000020.50")),
        ml_per_rev=None,
    )
    with pytest.raises(PumpError, match="no calibration run"):
        await driver.finish_calibration(16.4)
    await driver.start_calibration_run(20, rpm=100)
    with pytest.raises(PumpError, match="still running"):
        await driver.finish_calibration(16.4)
    assert await driver.finish_calibration(16.4) == pytest.approx(16.4 / 20.5)
    assert driver.calibrated
    with pytest.raises(UnsupportedError):
        await driver.start_calibration_run(20, rpm=700)
    t.done()


# --------------------------------------------------------------------------- rate and volume


async def test_rate_needs_a_calibration_first() -> None:
    driver, t = await opened(ml_per_rev=None)
    with pytest.raises(UnsupportedError, match="configure_tubing"):
        await driver.set_rate(48.0)
    with pytest.raises(UnsupportedError, match="configure_tubing"):
        await driver.set_target_volume(1.0)
    t.done()


async def test_set_rate_converts_to_rpm() -> None:
    driver, t = await opened((cmd("S+001.0"), ACK), (cmd("S+050.0"), ACK), (cmd("S+123.4"), ACK))
    await driver.set_rate(48.0)  # 48 mL/h / 60 / 0.8 mL/rev = 1 rpm
    await driver.set_rate(2400.0)
    assert await driver.set_rate(5927.0) == pytest.approx(123.4 * 60 * 0.8)  # 123.479 rpm
    assert driver.rate_ml_per_h_sent == pytest.approx(123.4 * 60 * 0.8)
    t.done()


# 28801 mL/h is 600.02 rpm, which is sent as 600.0 (in range): 28850 is 601.04 rpm
@pytest.mark.parametrize("rate", [47.0, 28850.0])
async def test_set_rate_outside_the_rpm_range(rate: float) -> None:
    driver, t = await opened()
    with pytest.raises(UnsupportedError, match=r"1\.\.600 rpm"):
        await driver.set_rate(rate)
    t.done()


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
async def test_set_rate_refuses_nonsense(bad: float) -> None:
    driver, t = await opened()
    with pytest.raises(ValueError):
        await driver.set_rate(bad)
    t.done()


async def test_set_rate_rejected_by_the_drive() -> None:
    driver, t = await opened((cmd("S+050.0"), NAK))
    with pytest.raises(CommandRejected) as info:
        await driver.set_rate(2400.0)
    assert (info.value.code, info.value.command) == ("NAK", "S+050.0")
    t.done()


async def test_direction_sign_and_counter_split() -> None:
    driver, t = await opened(
        (cmd("S+050.0"), ACK),
        (cmd("C"), data("C0000010.00")),  # banked to infuse before reversing
        (cmd("S-050.0"), ACK),
        (cmd("C"), data("C0000014.00")),
    )
    await driver.set_rate(2400.0)
    await driver.set_rate(2400.0, Direction.WITHDRAW)
    delivered = await driver.read_delivered()
    assert delivered.infused_ml == pytest.approx(8.0)
    assert delivered.withdrawn_ml == pytest.approx(3.2)
    t.expect((cmd("Z0"), ACK), (cmd("C"), data("C0000000.00")))
    await driver.clear_counters()
    assert (await driver.read_delivered()).net_ml == 0.0
    t.done()


async def test_pump_head_mounted_the_other_way() -> None:
    driver, t = await opened((cmd("S-050.0"), ACK), infuse_clockwise=False)
    await driver.set_rate(2400.0)
    t.done()


async def test_target_volume_in_revolutions() -> None:
    driver, t = await opened((cmd("V00012.50"), ACK), (cmd("V00000.01"), ACK))
    assert await driver.set_target_volume(10.0) == 10.0  # 10 mL / 0.8 mL/rev
    assert await driver.set_target_volume(0.01) == pytest.approx(0.008)  # 0.0125 rev -> 0.01
    assert await driver.set_target_volume(None) is None  # continuous: nothing sent now
    with pytest.raises(UnsupportedError, match="cannot be expressed"):
        await driver.set_target_volume(0.003)
    with pytest.raises(UnsupportedError, match=r"99999\.99"):
        await driver.set_target_volume(80_000.0)
    with pytest.raises(ValueError):
        await driver.set_target_volume(0.0)
    t.done()


async def test_read_delivered_is_revolutions_times_calibration() -> None:
    driver, t = await opened((cmd("C"), data("C0000012.50")), (cmd("C"), data("P01C0000000.01")))
    assert (await driver.read_delivered()).infused_ml == pytest.approx(10.0)
    assert (await driver.read_delivered()).infused_ml == pytest.approx(0.008)
    t.done()


# --------------------------------------------------------------------------- run control


async def test_target_run_pause_resume_stop() -> None:
    driver, t = await opened(
        (cmd("V00012.50"), ACK),
        (cmd("G"), ACK),  # the preset is still armed: no second V
        (cmd("I"), data("P01I10030")),
        (cmd("H"), ACK),
        (cmd("E"), data("E00004.25")),
        (cmd("I"), data("P01I10020")),
        (cmd("I"), data("P01I10020")),  # second pause: stopped already, nothing sent
        (cmd("V00004.25"), ACK),  # resume: what was left, then G
        (cmd("G"), ACK),
        (cmd("I"), data("P01I10030")),
        (cmd("H"), ACK),
        (cmd("Z"), ACK),
        (cmd("I"), data("P01I10010")),
        (cmd("V00012.50"), ACK),  # start after stop: the whole target again
        (cmd("G"), ACK),
    )
    await driver.set_target_volume(10.0)
    await driver.start()
    await driver.pause()
    assert (await driver.read_status()).state is PumpState.PAUSED
    await driver.pause()
    await driver.start()
    status = await driver.read_status()
    assert (status.state, status.direction, status.raw) == (PumpState.RUNNING, None, "I10030")
    await driver.stop()
    assert (await driver.read_status()).state is PumpState.STOPPED
    await driver.start()
    t.done()


async def test_resume_after_the_target_was_reached_while_paused() -> None:
    driver, t = await opened(
        (cmd("V00012.50"), ACK),
        (cmd("G"), ACK),
        (cmd("I"), data("P01I10030")),
        (cmd("H"), ACK),
        (cmd("E"), data("E-0000.02")),  # overshoot: nothing left to run
        (cmd("I"), data("P01I10010")),
    )
    await driver.set_target_volume(10.0)
    await driver.start()
    await driver.pause()
    await driver.start()  # sends nothing
    assert (await driver.read_status()).state is PumpState.STOPPED
    t.done()


async def test_continuous_run_and_the_g0_nak_oddity() -> None:
    driver, t = await opened(
        (cmd("S+050.0"), ACK),
        (cmd("G0"), NAK),  # real drives NAK G0 although the motor runs
        (cmd("I"), data("P01I10030")),
        (cmd("I"), data("P01I10030")),
        (cmd("H"), ACK),
        (cmd("I"), data("P01I10010")),
        (cmd("G0"), ACK),
    )
    await driver.set_rate(2400.0)
    await driver.set_target_volume(None)
    await driver.start()
    await driver.pause()  # continuous: no E needed
    assert (await driver.read_status()).state is PumpState.PAUSED
    await driver.start()
    t.done()


async def test_g0_nak_with_the_motor_stopped_is_a_rejection() -> None:
    driver, t = await opened((cmd("G0"), NAK), (cmd("I"), data("P01I10010")))
    with pytest.raises(CommandRejected) as info:
        await driver.start()
    assert info.value.command == "G0"
    t.done()


async def test_g_nak_is_a_rejection() -> None:
    driver, t = await opened((cmd("V00012.50"), ACK), (cmd("G"), NAK))
    await driver.set_target_volume(10.0)
    with pytest.raises(CommandRejected):
        await driver.start()
    t.done()


async def test_stop_is_idempotent_and_checks_a_nak() -> None:
    driver, t = await opened(
        (cmd("H"), ACK),
        (cmd("Z"), ACK),
        (cmd("H"), NAK),
        (cmd("Z"), ACK),
        (cmd("I"), data("P01I10010")),
        (cmd("H"), NAK),
        (cmd("Z"), NAK),
        (cmd("I"), data("P01I10030")),
    )
    await driver.stop()
    await driver.stop()
    with pytest.raises(PumpError, match="still runs"):
        await driver.stop()
    t.done()


@pytest.mark.parametrize(
    ("digits", "state", "direction"),
    [
        ("10010", PumpState.STOPPED, None),
        ("10020", PumpState.STOPPED, None),
        ("10030", PumpState.RUNNING, Direction.INFUSE),
        ("00030", PumpState.OTHER, None),  # local: the front panel is in charge
        ("00010", PumpState.OTHER, None),
    ],
)
async def test_read_status(digits: str, state: PumpState, direction: Direction | None) -> None:
    driver, t = await opened((cmd("S+050.0"), ACK), (cmd("I"), data(f"P01I{digits}")))
    await driver.set_rate(2400.0)
    status = await driver.read_status()
    assert (status.state, status.direction, status.alarm, status.raw) == (
        state,
        direction,
        None,
        f"I{digits}",
    )
    t.done()


# --------------------------------------------------------------------------- SR20 / SR21


async def test_command_is_never_resent_after_a_timeout() -> None:
    driver, t = await opened((cmd("V00012.50"), ACK), (cmd("G"), timeout()))
    await driver.set_target_volume(10.0)
    with pytest.raises(PumpTimeout):
        await driver.start()
    assert t.sent.count(cmd("G")) == 1
    t.done()


async def test_data_reply_to_a_command_is_not_acted_on() -> None:
    driver, t = await opened((cmd("H"), data("P01I10030")))
    with pytest.raises(ProtocolError, match="data reply"):
        await driver.stop()
    assert t.sent.count(cmd("H")) == 1
    t.done()


async def test_query_is_retried_after_timeout_and_garble() -> None:
    driver, t = await opened(
        (cmd("C"), timeout()),
        (cmd("C"), data("E00001.00")),  # wrong letter
        (cmd("C"), data("C0000002.00")),
    )
    assert (await driver.read_delivered()).infused_ml == pytest.approx(1.6)
    t.done()


# --------------------------------------------------------------------------- fuzz


@given(st.binary(max_size=80))
def test_framer_never_overruns(buf: bytes) -> None:
    n = frame_length(buf)
    assert n is None or 1 <= n <= len(buf)


@given(st.binary(max_size=40), st.sampled_from([None, 1, 89]))
def test_parse_reply_fuzz(raw: bytes, address: int | None) -> None:
    try:
        reply = parse_reply(raw, address=address)
    except ProtocolError:
        return
    assert reply.kind in ("ack", "nak", "data")


@given(st.text(max_size=14))
def test_value_parsers_fuzz(value: str) -> None:
    for parser in (parse_speed, parse_cumulative, parse_to_go, parse_status):
        with contextlib.suppress(ProtocolError):
            parser(value)


@given(st.floats(min_value=-999.9, max_value=999.9))
def test_speed_round_trip(rpm: float) -> None:
    sent = parse_speed(format_speed(rpm))
    assert -1e-9 <= abs(rpm) - abs(sent) <= 0.1 + 1e-9  # down, but for float noise


@given(st.floats(min_value=0, max_value=99999.99))
def test_revolutions_round_trip(revolutions: float) -> None:
    sent = parse_to_go(format_revolutions(revolutions))
    assert -1e-6 <= revolutions - sent <= 0.01 + 1e-9


class _AnyReply(Transport):
    """Answers every request with the same bytes (the fuzzed reply)."""

    name = "fake://fuzz"

    def __init__(self, reply: bytes) -> None:
        self.reply = reply

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def exchange(self, request: bytes, frame_length: FrameLength, timeout_s: float) -> bytes:
        n = frame_length(self.reply)
        if n is None:
            raise timeout()
        return self.reply[:n]

    async def send(self, data: bytes) -> None: ...


@given(
    st.one_of(
        st.binary(max_size=24),
        st.builds(data, st.text(alphabet="P01ICESV+-.0123456789 ", max_size=14)),
    )
)
def test_only_pump_errors_escape_the_driver(reply: bytes) -> None:
    async def run() -> None:
        driver = MasterflexDriver(_AnyReply(reply))
        await driver.configure_tubing(0.8)
        for action in (
            driver.read_status,
            driver.read_delivered,
            driver.identify,
            driver.start,
            driver.pause,
            driver.stop,
        ):
            with contextlib.suppress(PumpError):
                await action()

    asyncio.run(run())


@pytest.mark.parametrize(("digits", "running"), [("1003", True), ("10030", True), ("1001", False)])
def test_status_accepts_both_reported_lengths(digits: str, running: bool) -> None:
    # reports differ on 4 or 5 digits; the 1st (mode) and 4th (motor) mean the same in both
    status = parse_status(digits)
    assert status.remote is True
    assert status.running is running
