"""KD Scientific Legato: a profile of the 11 Elite family. The recorded bytes of a real Legato 100
(firmware 3.0.6, poll on) against the emulation, the Legato codec against them, the driver
against a scripted transport, and what the profile shares with the Elite."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pumpctl.drivers.base import AlarmReason, CommandRejected, PumpError, PumpState
from pumpctl.drivers.harvard_elite import HarvardEliteDriver
from pumpctl.drivers.kds_legato import (
    LegatoDriver,
    encode_command,
    legato_frame_length,
    parse_reply,
    parse_version,
)
from pumpctl.families import family
from pumpctl.families.harvard_elite import EliteQuantizer
from pumpctl.simulator.devices.harvard_elite import HarvardEliteEmulation
from pumpctl.simulator.devices.kds_legato import LegatoEmulation

from . import scripted

#: request -> reply, as recorded from a Legato 100 at address 0 in poll-on mode
RECORDED = [
    (b"@poll on\r\n", b"\n:\x11"),
    (b"@irate 1 ml/min\r\n", b"\n:\x11"),
    (b"@irate\r\n", b"\n1 ml/min\r\n:\x11"),
    (b"@irate lim\r\n", b"\n25.0404 nl/min to 26.0035 ml/min\r\n:\x11"),
    (b"@irun\r\n", b"\n>\x11"),
    (b"@stp\r\n", b"\n:\x11"),
    (b"@version\r\n",
     b"\nFirmware:      v3.0.6\r\nPump address:  0\r\nSerial number: D101754\r\n:\x11"),
    (b"@force 15\r\n", b"\n:\x11"),
    (b"@force\r\n", b"\n15%\r\n:\x11"),
    (b"@load qs iw\r\n", b"\n:\x11"),
    (b"@load\r\n", b"\nQuick Start - Infuse/Withdraw (qs iw)\r\n:\x11"),
    (b"@time 05/08/23 14:48:23\r\n", b"\n05/08/23 2:48:23 PM\r\n:\x11"),
    (b"@diameter\r\n", b"\n7.2620 mm\r\n:\x11"),
    (b"@addr 2\r\n", b"\nPump address set to 2\r\n02:\x11"),
    (b"@addr 0\r\n", b"\nPump address set to 0\r\n:\x11"),  # USB: no address needed
]  # fmt: skip


def test_the_emulation_replays_the_recorded_legato_bytes() -> None:
    emu = LegatoEmulation()
    for request, reply in RECORDED:
        emu.feed(request)
        assert emu.read() == reply, request


def test_poll_off_answers_without_xon_and_a_non_zero_address_prefixes_every_line() -> None:
    emu = LegatoEmulation([12])
    emu.feed(b"12irat 3.2 u/m\r")
    assert emu.read() == b"\n12:"
    emu.feed(b"12irat\r")
    assert emu.read() == b"\n12:3.2 ul/min\r\n12:"
    emu.feed(b"12xyz\r")
    assert emu.read() == b"\n12:Command error: xyz\r\n12:   Unknown command\r\n12:"
    emu.feed(b"5irat\r")
    assert emu.read() == b""  # no pump 5 on this chain: silence


def test_an_out_of_range_target_reads_as_an_argument_error_saying_out_of_range() -> None:
    emu = LegatoEmulation()
    emu.feed(b"@poll on\r\n@svolume 10 ml\r\n")
    emu.read()
    emu.feed(b"@tvolume 200 ml\r\n")
    assert emu.read() == b"\nArgument error: 200 ml\r\n   Invalid argument\r\n:\x11"
    emu.feed(b"@irate 900 ml/min\r\n")
    assert b"out of range" in emu.read()


@pytest.mark.parametrize(("request_", "reply"), RECORDED)
def test_the_codec_frames_and_parses_every_recorded_reply(request_: bytes, reply: bytes) -> None:
    assert legato_frame_length(reply + b"\n:") == len(reply)
    for cut in range(len(reply)):
        assert legato_frame_length(reply[:cut]) is None
    parsed = parse_reply(reply, address=None)
    assert parsed.prompt in (":", ">") and parsed.error is None


def test_codec_addresses_prompts_and_errors() -> None:
    assert encode_command(0, "irate 5 ml/hr") == b"irate 5 ml/hr\r"
    assert encode_command(12, "irat 3.2 u/m") == b"12irat 3.2 u/m\r"
    reply = parse_reply(b"\n12:1 ml/min\r\n12>\x11", address=12)
    assert (reply.address, reply.prompt, reply.body) == (12, ">", "1 ml/min")
    err = parse_reply(b"\nArgument error: 200\r\n   Unknown syringe\r\n:\x11")
    assert err.error == "Argument error: 200\nUnknown syringe"
    assert parse_reply(b"\n>*\x11").prompt == ">*"
    with pytest.raises(PumpError, match="address 3"):
        parse_reply(b"\n03:\x11", address=0)
    with pytest.raises(PumpError):
        parse_reply(b"\n1 ml/min\r\n:")  # no XON: not a poll-on reply
    assert parse_version("Firmware:      v3.0.6\nPump address:  0\nSerial number: D101754") == (
        "Legato D101754",
        "3.0.6",
    )


@given(st.binary(max_size=60))
def test_the_parser_only_raises_typed_errors(raw: bytes) -> None:
    with contextlib.suppress(PumpError):
        parse_reply(raw, address=0)


def test_the_legato_is_a_profile_of_the_elite_not_a_copy() -> None:
    assert issubclass(LegatoDriver, HarvardEliteDriver)
    assert issubclass(LegatoEmulation, HarvardEliteEmulation)
    spec = family("kds-legato")
    assert spec.make_quantizer == family("harvard-elite").make_quantizer
    assert isinstance(spec.quantizer(inner_diameter_mm=26.7), EliteQuantizer)


class ScriptedTransport(scripted.ScriptedTransport):
    name = "fake://legato"
    baudrate = 115200
    trailing = b"\n:\x11"

    async def send(self, data: bytes) -> None:
        """The Legato driver's one send without a reply: the bare CR before `poll on`."""
        assert data == b"\r" and not self.sent
        self.sent.append(data)


VERSION = b"\nFirmware:      v3.0.6\r\nPump address:  0\r\nSerial number: D101754\r\n:\x11"


async def test_driver_turns_poll_on_reads_version_and_runs_the_elite_sequence() -> None:
    t = ScriptedTransport(
        (b"poll on\r", b"\n:\x11"),
        (b"version\r", VERSION),
        (b"diameter 26.7\r", b"\n:\x11"),
        (b"irate lim\r", b"\n338.4943 nl/min to 351.5133 ml/min\r\n:\x11"),
        (b"irate 7 ml/hr\r", b"\n:\x11"),
        (b"svolume\r", b"\n10 ml\r\n:\x11"),
        (b"tvolume 2 ml\r", b"\n:\x11"),
        (b"irun\r", b"\n>\x11"),
        (b"ivolume\r", b"\n0.1234 ml\r\n>\x11"),
        (b"ivolume\r", b"\n2 ml\r\n>*\x11"),
        (b"wrun\r", b"\nCommand error: wrun\r\n   Unknown command\r\n:\x11"),
    )
    d = LegatoDriver(t)
    await d.open()
    assert d.identity is not None and d.identity.firmware == "3.0.6"
    assert t.sent[:2] == [b"\r", b"poll on\r"]
    await d.configure_syringe(26.7)
    assert d.capabilities.max_rate_ml_per_h == pytest.approx(351.5133 * 60)
    assert await d.set_rate(7.0) == 7.0
    assert await d.set_target_volume(2.0) == 2.0
    await d.start()
    status, delivered = await d.read_poll()
    assert (status.state, delivered.infused_ml) == (PumpState.RUNNING, 0.1234)
    status, _ = await d.read_poll()
    assert (status.state, status.alarm) == (PumpState.ALARM, AlarmReason.EMPTY)  # limit switch
    with pytest.raises(CommandRejected, match="Command error"):
        await d._send("wrun")
    t.done()
