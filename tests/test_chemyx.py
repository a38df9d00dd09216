"""Chemyx Fusion: the codec byte for byte (echo, body, `>`), the driver against a scripted
transport, the emulation alone, and a run on the virtual clock. Reply shapes are the ones host
software and a terminal transcript of a real pump show (the Chemyx KB gives command names)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pumpctl.clock import Clock, run_with_clock
from pumpctl.drivers.base import (
    AlarmReason,
    CommandRejected,
    Direction,
    ProtocolError,
    PumpError,
    PumpState,
    UnsupportedError,
)
from pumpctl.drivers.chemyx import (
    ChemyxFusionDriver,
    chemyx_frame_length,
    encode_command,
    parse_assignment,
    parse_limits,
    parse_reply,
    status_for_code,
)
from pumpctl.families.chemyx import ChemyxQuantizer
from pumpctl.simulator.devices.chemyx import ChemyxFusionEmulation
from pumpctl.simulator.endpoints import InMemoryTransport

from . import scripted

# --------------------------------------------------------------------------- codec


def test_requests_are_lower_case_words_and_cr_with_a_channel_prefix() -> None:
    assert encode_command(0, "set units 1") == bytes.fromhex("73 65 74 20 75 6e 69 74 73 20 31 0d")
    assert encode_command(2, "start") == b"2 start\r"
    with pytest.raises(ValueError):
        encode_command(3, "start")
    with pytest.raises(ValueError):
        encode_command(0, "start\r")


@pytest.mark.parametrize(
    ("command", "raw", "lines"),
    [
        ("set units 0", b"set units 0\runits = 0\r\n>", ("units = 0",)),
        ("1 set diameter 20", b"1 set diameter 20\rdiameter = 20.000\r\n>", ("diameter = 20.000",)),
        ("pump status", b"pump status\r1\r\n>", ("1",)),
        ("start", b"start\rPump start running...\r\n>", ("Pump start running...",)),
    ],
)
def test_replies_are_echo_cr_body_crlf_prompt(command: str, raw: bytes, lines: tuple[str]) -> None:
    assert chemyx_frame_length(raw + b"pump") == len(raw)
    for cut in range(len(raw)):
        assert chemyx_frame_length(raw[:cut]) is None
    assert parse_reply(raw, command=command).lines == lines


def test_invalid_command_is_a_refusal_and_a_wrong_echo_is_never_acted_on() -> None:
    with pytest.raises(CommandRejected, match="Invalid Command"):
        parse_reply(b"foo\rInvalid Command!\r\n>", command="foo")
    with pytest.raises(ProtocolError, match="echo"):
        parse_reply(b"stop\rPump stop!\r\n>", command="start")
    with pytest.raises(ProtocolError):
        parse_reply(b"start\rPump start running...\r\n", command="start")


def test_numbers_limits_and_status() -> None:
    assert parse_assignment("rate = 0.650000,0.650000", "rate") == [0.65, 0.65]
    assert parse_assignment("dispensed volume = 0.1234", "dispensed volume") == [0.1234]
    with pytest.raises(ProtocolError):
        parse_assignment("rate = fast", "rate")
    assert parse_limits("125.9622 0.0002 106.0288 0.0141") == (125.9622, 0.0002, 106.0288, 0.0141)
    assert status_for_code("4", Direction.INFUSE).alarm is AlarmReason.STALL
    assert status_for_code("2", Direction.INFUSE).state is PumpState.PAUSED
    assert status_for_code("1", Direction.WITHDRAW).direction is Direction.WITHDRAW
    with pytest.raises(ProtocolError):
        status_for_code("5", Direction.INFUSE)


@given(st.binary(max_size=60))
def test_the_parser_only_raises_typed_errors(raw: bytes) -> None:
    with contextlib.suppress(PumpError):
        parse_reply(raw, command="pump status")


def test_quantizer_floors_to_the_kb_decimals() -> None:
    q = ChemyxQuantizer()
    assert q.volume_setting(12.4775).text == "12.4775"
    assert q.volume_setting(0.123456789).text == "0.12345"
    assert q.rate_setting(7.00009).text == "7"
    assert q.floor_rate_ml_per_h(q.floor_rate_ml_per_h(73.512345)) == 73.5123


# --------------------------------------------------------------------------- driver


class ScriptedTransport(scripted.ScriptedTransport):
    name = "fake://chemyx"
    trailing = b"pump status\r0\r\n>"


def r(command: str, *body: str) -> tuple[bytes, bytes]:
    text = command + "\r" + "".join(f"{b}\r\n" for b in body) + ">"
    return (command + "\r").encode(), text.encode()


async def test_a_leg_is_units_diameter_limits_stop_rate_volume_start() -> None:
    t = ScriptedTransport(
        r("pump status", "0"),
        r("set units 1", "units = 1"),
        r("set diameter 26.700", "diameter = 26.700"),
        r("read limit parameter", "13067.4500 0.4032 67.1882 0.0001"),
        r("stop", "Pump stop!"),
        r("set rate 73.5", "rate = 73.500000"),
        r("set volume 12.25", "volume = 12.250000"),
        r("start", "Pump start running..."),
        r("pump status", "1"),
        r("dispensed volume", "dispensed volume = 0.1234"),
    )
    d = ChemyxFusionDriver(t)
    await d.open()
    await d.configure_syringe(26.7)
    assert (d.capabilities.min_rate_ml_per_h, d.capabilities.max_rate_ml_per_h) == (
        0.4032,
        13067.45,
    )
    await d.clear_counters()
    assert (await d.read_delivered()).infused_ml == 0.0  # nothing asked between clear and start
    assert await d.set_rate(73.5) == 73.5
    assert await d.set_target_volume(12.25) == 12.25
    await d.start()
    status, delivered = await d.read_poll()
    assert (status.state, delivered.infused_ml) == (PumpState.RUNNING, 0.1234)
    t.done()


async def test_a_clamped_echo_is_a_refusal_and_withdraw_is_a_negative_volume() -> None:
    t = ScriptedTransport(
        r("set units 1", "units = 1"),
        r("set rate 99999", "rate = 13067.450000"),
        r("set rate 5", "rate = 5.000000"),
        r("set volume -1.5", "volume = -1.500000"),
    )
    d = ChemyxFusionDriver(t)
    with pytest.raises(CommandRejected, match="outside its limits"):
        await d.set_rate(99999)
    await d.set_rate(5, Direction.WITHDRAW)
    assert await d.set_target_volume(1.5) == 1.5
    with pytest.raises(UnsupportedError, match="syringe volume"):
        await d.set_target_volume(None)
    t.done()


# --------------------------------------------------------------------------- emulation


def say(emu: ChemyxFusionEmulation, line: str) -> bytes:
    emu.feed(line.encode() + b"\r")
    return emu.read()


def test_emulation_answers_the_transcript_shapes() -> None:
    emu = ChemyxFusionEmulation()
    assert say(emu, "set units 0") == b"set units 0\runits = 0\r\n>"
    assert say(emu, "1 set diameter 20") == b"1 set diameter 20\rdiameter = 20.000\r\n>"
    assert say(emu, "set rate 0.65") == b"set rate 0.65\rrate = 0.650000\r\n>"
    assert say(emu, " 1 set units 0") == b" 1 set units 0\rInvalid Command!\r\n>"
    assert say(emu, "foo") == b"foo\rInvalid Command!\r\n>"
    assert say(emu, "pump status") == b"pump status\r0\r\n>"
    emu.feed(b"pump status\n")  # KB: an LF alone ends nothing
    assert emu.read() == b""


def test_emulation_runs_pauses_resumes_and_a_new_start_counts_from_zero() -> None:
    emu = ChemyxFusionEmulation()
    for line in ("set units 1", "set diameter 26.7", "set rate 60", "set volume 1"):
        say(emu, line)
    assert say(emu, "start") == b"start\rPump start running...\r\n>"
    emu.advance(30.0)
    assert say(emu, "dispensed volume") == b"dispensed volume\rdispensed volume = 0.5000\r\n>"
    assert say(emu, "pause") == b"pause\rPump pause!\r\n>"
    emu.advance(100.0)
    assert say(emu, "pump status") == b"pump status\r2\r\n>"
    say(emu, "start")  # resumes the same run
    emu.advance(60.0)
    assert say(emu, "pump status") == b"pump status\r0\r\n>"  # stopped at its volume
    assert say(emu, "dispensed volume").endswith(b"= 1.0000\r\n>")
    assert emu.snapshot()[0].delivered_ml == pytest.approx(1.0)
    say(emu, "start")
    assert say(emu, "dispensed volume").endswith(b"= 0.0000\r\n>")


def test_emulation_clamps_the_rate_to_the_diameter_limits_and_stalls_on_occlusion() -> None:
    emu = ChemyxFusionEmulation()
    say(emu, "set units 1")
    assert say(emu, "set rate 999999").startswith(b"set rate 999999\rrate = 13067.4")
    say(emu, "set rate 60")
    say(emu, "set volume 10")
    say(emu, "start")
    emu.set_occlusion(0, True)
    emu.advance(60.0)
    assert say(emu, "pump status") == b"pump status\r4\r\n>"
    assert emu.snapshot()[0].alarm == "stall"


def test_driver_and_emulation_meet_on_the_wire_on_the_virtual_clock() -> None:
    async def main(clock: Clock) -> tuple[float, float]:
        emu = ChemyxFusionEmulation()
        t = InMemoryTransport(emu, clock, name="sim://chemyx-fusion")
        async with ChemyxFusionDriver(t) as d:
            await d.configure_syringe(26.7)
            await d.clear_counters()
            await d.set_rate(60.0)
            await d.set_target_volume(0.5)
            await d.start()
            while (await d.read_status()).state is not PumpState.STOPPED:
                await clock.sleep(1.0)
            counted = (await d.read_delivered()).infused_ml
        emu.advance(0.0)
        return counted, emu.snapshot()[0].delivered_ml

    counted, truth = run_with_clock(main, virtual=True)
    assert counted == 0.5 and truth == pytest.approx(0.5)
