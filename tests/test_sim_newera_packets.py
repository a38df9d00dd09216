"""NE-1000 emulation: the per-poll shortcuts give what the long way gives (packets parsed once,
frames from tables, a one-packet read taken whole, unmoved counters)."""

from __future__ import annotations

import pytest

from pumpctl.simulator.devices.newera import NE1000Emulation
from pumpctl.simulator.devices.newera_wire import (
    ETX,
    STX,
    crc16_xmodem,
    format_number,
    frame_safe,
    framed_reply,
    parse_line,
    parse_packet,
)


def talk(emu: NE1000Emulation, data: bytes) -> bytes:
    emu.feed(data)
    return emu.read()


@pytest.mark.parametrize("n", [0, 1, 17, 250, 251])
def test_frame_safe_is_stx_len_data_crc_etx_for_every_length(n: int) -> None:
    data = bytes(range(n))
    expected = bytes((STX, n + 4)) + data + crc16_xmodem(data).to_bytes(2, "big") + bytes((ETX,))
    assert frame_safe(data) == expected


def test_frame_safe_refuses_data_that_len_cannot_count() -> None:
    with pytest.raises(ValueError):
        frame_safe(bytes(252))


def test_a_packet_is_parsed_as_its_line_and_a_bad_one_never_kept() -> None:
    good = frame_safe(b"0DIS")
    bad = good[:-3] + bytes((good[-3] ^ 0xFF,)) + good[-2:]
    for _ in range(2):  # the second time from the kept parse
        assert parse_packet(good) == parse_line("0DIS")
        assert parse_packet(bad) is None
        assert parse_packet(good[:-1] + b"\x04") is None  # no ETX


def test_a_bad_packet_after_good_ones_still_gets_com() -> None:
    emu = NE1000Emulation(safe_mode_timeout_s=10)
    emu.read()
    good = frame_safe(b"0VER")
    bad = good[:-3] + bytes((good[-3] ^ 0xFF,)) + good[-2:]
    assert talk(emu, good) == frame_safe(b"00A?R")
    for _ in range(2):
        assert talk(emu, good) == frame_safe(b"00SNE1000V3.928")
        assert talk(emu, bad) == frame_safe(b"00S?COM")
    assert emu.commands_seen == 5


def test_a_whole_packet_in_one_read_drops_a_partial_line_as_byte_by_byte() -> None:
    whole, split = NE1000Emulation(), NE1000Emulation()
    for emu in (whole, split):
        talk(emu, b"0\r")  # the power-up reset, acknowledged
        emu.feed(b"0RAT")  # a partial basic line an STX drops
    packet = frame_safe(b"0VER")
    whole.feed(packet)
    for b in packet:
        split.feed(bytes((b,)))
    assert whole.read() == split.read() == b"\x0200SNE1000V3.928\x03"  # basic mode: basic reply
    assert talk(whole, b"\r") == talk(split, b"\r")  # nothing left of "0RAT"
    assert whole.commands_seen == split.commands_seen


def test_dis_prints_unmoved_counters_as_format_number_does() -> None:
    emu = NE1000Emulation()
    talk(emu, b"0\r")
    assert talk(emu, b"0DIS\r") == b"\x0200SI0.000W0.000ML\x03"
    assert format_number(0.0) == "0.000"


@pytest.mark.parametrize("safe", [True, False])
def test_a_reply_is_framed_the_long_way_and_kept(safe: bool) -> None:
    data = b"07II1.234W0.000ML"
    expected = frame_safe(data) if safe else bytes((STX,)) + data + bytes((ETX,))
    assert framed_reply(7, "II1.234W0.000ML", safe) == expected
    assert framed_reply(7, "II1.234W0.000ML", safe) is framed_reply(7, "II1.234W0.000ML", safe)
