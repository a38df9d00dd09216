"""The Cavro emulation alone, byte for byte: DT and OEM answers from the XCalibur manual
(733085-B §3.2, §3.6), initialization, immediate and kept errors, the busy bit, reports,
group addresses, the protocol lock, and the liquid (reservoir, syringe, air, occlusion)."""

from __future__ import annotations

import pytest

from pumpctl.simulator.devices.cavro import (
    CavroSnapshot,
    Psd4Emulation,
    XCaliburEmulation,
    Xlp6000Emulation,
    Xlp6000OemEmulation,
    tokenize,
)


class AutoXlp6000(Xlp6000Emulation):
    """The real pump: it takes whichever protocol it sees first (XC §3.2)."""

    protocols = ("dt", "oem")


def dt(emu: XCaliburEmulation, command: str, address: str = "1") -> bytes:
    emu.feed(f"/{address}{command}\r".encode())
    return emu.read()


def ready(emu: XCaliburEmulation, address: int = 0) -> XCaliburEmulation:
    """Initialized (Z), fine positioning (N1), settled."""
    emu.feed(f"/{chr(0x31 + address)}N1Z0R\r".encode())
    emu.advance(5.0)
    emu.read()
    return emu


def snap(emu: XCaliburEmulation, address: int = 0) -> CavroSnapshot:
    s = emu.snapshot()[address]
    assert isinstance(s, CavroSnapshot)
    return s


def test_tokenizer_takes_numbers_and_comma_operands() -> None:
    assert tokenize("Z0,1,2R") == [("Z", (0, 1, 2)), ("R", ())]
    assert tokenize("V1200P600R") == [("V", (1200,)), ("P", (600,)), ("R", ())]
    assert tokenize("?16") == [("?", (16,))]
    assert tokenize("Zx") is None and tokenize("A1,,2") is None


def test_power_up_reports_not_initialized_and_refuses_moves_until_z() -> None:
    emu = XCaliburEmulation()
    assert dt(emu, "Q") == b"/0g\x03\r\n"  # ready, error 7
    assert dt(emu, "A100R") == b"/0g\x03\r\n"
    assert dt(emu, "ZR") == b"/0@\x03\r\n"  # accepted, busy, error cleared
    emu.advance(0.25)
    assert dt(emu, "Q") == b"/0@\x03\r\n"
    emu.advance(1.0)
    assert dt(emu, "Q") == b"/0`\x03\r\n"
    assert dt(emu, "?") == b"/0`0\x03\r\n"
    assert dt(emu, "?6") == b"/0`i\x03\r\n"
    assert dt(emu, "?15") == b"/0`1\x03\r\n"


def test_immediate_errors_come_in_the_answer_and_are_not_kept() -> None:
    emu = ready(XCaliburEmulation())
    dt(emu, "N0R")
    assert dt(emu, "A4000R") == b"/0c\x03\r\n"  # XC p.3-52: beyond 3000, error 3 at once
    assert dt(emu, "Q") == b"/0`\x03\r\n"  # ... and not when queried
    assert dt(emu, "E2000R") == b"/0b\x03\r\n"  # a 3-port valve has no extra port: invalid
    assert dt(emu, "Xyz") == b"/0b\x03\r\n"
    assert dt(emu, "BA100R") == b"/0k\x03\r\n"  # plunger move in bypass (error 11)
    assert dt(emu, "V7000R") == b"/0c\x03\r\n"


def test_a_move_runs_at_the_top_speed_and_busy_pumps_take_only_v_on_the_fly() -> None:
    emu = ready(XCaliburEmulation())
    dt(emu, "N0R")
    assert dt(emu, "V1200P600R") == b"/0@\x03\r\n"  # labmcp-cavro's move: 1200 pulses/s
    emu.advance(0.5)  # 600 N0 increments = 1200 pulses: 1 s
    assert dt(emu, "?") == b"/0@300\x03\r\n"
    assert dt(emu, "A0R") == b"/0O\x03\r\n"  # busy: command overflow (15)
    assert dt(emu, "V600R") == b"/0@\x03\r\n"  # V on the fly: the rest at half speed
    emu.advance(0.5)
    assert dt(emu, "?") == b"/0@450\x03\r\n"
    emu.advance(0.5)
    assert dt(emu, "Q") == b"/0`\x03\r\n"
    assert dt(emu, "?") == b"/0`600\x03\r\n"
    assert dt(emu, "?16") == b"/0`1\x03\r\n"


def test_terminate_stops_the_plunger_on_a_whole_increment() -> None:
    emu = ready(XCaliburEmulation())
    dt(emu, "IV3000P24000R")  # N1: a full stroke in 2 s
    emu.advance(1.0001)
    assert dt(emu, "T") == b"/0`\x03\r\n"
    assert dt(emu, "?") == b"/0`12002\x03\r\n"
    emu.advance(5.0)
    assert dt(emu, "?") == b"/0`12002\x03\r\n"


def test_loops_repeat_and_string_without_r_is_stored_until_r() -> None:
    emu = ready(XCaliburEmulation())
    assert dt(emu, "IV6000gP100D100G5P50") == b"/0`\x03\r\n"  # stored
    assert dt(emu, "F") == b"/0`1\x03\r\n"
    assert dt(emu, "R") == b"/0@\x03\r\n"
    emu.advance(2.0)
    assert dt(emu, "?") == b"/0`50\x03\r\n"
    assert dt(emu, "?16") == b"/0`11\x03\r\n"


def test_the_syringe_fills_from_the_reservoir_and_dispenses_liquid_to_the_output() -> None:
    emu = ready(XCaliburEmulation())
    emu.set_reservoir_ml(0, 0.6)
    dt(emu, "IV6000P24000OR")  # 1 mL drawn from a 0.6 mL bottle: 0.4 mL is air
    emu.advance(2.0)
    s = snap(emu)
    assert (s.valve, s.syringe_liquid_ml, s.reservoir_ml) == ("o", 0.6, 0.0)
    dt(emu, "V6000D24000R")  # air leaves first (the valve sits on top)
    emu.advance(2.0)
    s = snap(emu)
    assert s.delivered_ml == pytest.approx(0.6) and s.plunger_steps == 0


def test_an_occluded_output_stalls_the_plunger_with_error_9_until_it_is_initialized() -> None:
    emu = ready(XCaliburEmulation())
    dt(emu, "IV6000P24000OR")
    emu.advance(2.0)
    emu.set_occlusion(0, True)
    dt(emu, "V600D24000R")  # 0.1 mL/s into the line: 0.32 mL stalls it
    emu.advance(10.0)
    assert dt(emu, "Q") == b"/0i\x03\r\n"
    s = snap(emu)
    assert s.alarm == "stall" and s.delivered_ml == pytest.approx(0.32) and not s.running
    assert dt(emu, "D100R") == b"/0i\x03\r\n"  # the next move repeats the overload
    emu.set_occlusion(0, False)
    assert dt(emu, "ZR") == b"/0@\x03\r\n"


def oem(emu: Xlp6000Emulation, sequence: int, command: str, *, repeat: bool = False) -> bytes:
    block = bytes([0x02, 0x31, 0x30 | sequence | (0x08 if repeat else 0)]) + command.encode()
    block += b"\x03"
    check = 0
    for b in block:
        check ^= b
    emu.feed(block + bytes([check]))
    return emu.read()


def test_oem_blocks_are_answered_and_a_repeated_block_is_not_executed_twice() -> None:
    emu = AutoXlp6000()
    emu.feed(bytes.fromhex("02 31 31 5a 52 03 00"))
    assert emu.read() == b""  # a wrong checksum is not answered: the host resends
    assert oem(emu, 1, "N1Z0R") == bytes.fromhex("02 30 40 03 71")  # busy, error cleared
    emu.advance(1.0)
    assert oem(emu, 2, "IV6000P600R") == bytes.fromhex("02 30 40 03 71")
    emu.advance(1.0)
    assert oem(emu, 2, "IV6000P600R", repeat=True) == bytes.fromhex("02 30 60 03 51")
    assert snap(emu).plunger_steps == 600  # acknowledged, not moved again
    assert oem(emu, 3, "?") == bytes.fromhex("02 30 60 36 30 30 03 67")
    emu.feed(b"/1Q\r")
    assert emu.read() == b""  # the pump took OEM at power-up: DT is ignored
    oem_only = Xlp6000OemEmulation()
    oem_only.feed(b"/1Q\r")
    assert oem_only.read() == b""  # the tecan-xlp6000-oem model speaks OEM only


def test_group_and_broadcast_addresses_execute_unanswered() -> None:
    emu = Psd4Emulation([0, 1, 2])
    assert dt(emu, "ZR", "_") == b""  # `_`: every pump
    emu.advance(2.0)
    assert all(s.initialized for s in emu.snapshot().values())
    assert dt(emu, "N1IV3000P3000R", "A") == b""  # `A`: switches 0 and 1
    emu.advance(5.0)
    assert [s.plunger_steps for s in emu.snapshot().values()] == [3000, 3000, 0]
    assert dt(emu, "?", "3") == b"/0`0\x03\r\n"


def test_power_cycle_loses_the_position_count_and_settings() -> None:
    emu = ready(XCaliburEmulation())
    dt(emu, "IV3000P24000R")
    emu.advance(0.5)
    emu.power_cycle(0)
    s = snap(emu)
    assert (s.alarm, s.initialized, s.running) == ("reset", False, False)
    assert dt(emu, "?") == b"/0g0\x03\r\n"
    assert dt(emu, "?28") == b"/0g0\x03\r\n"  # back to N0


def test_garbled_answers_keep_their_framing_and_oem_checksums_can_be_wrong() -> None:
    emu = ready(XCaliburEmulation())
    emu.garble_next_replies(1)
    assert dt(emu, "Q") == b"/0 \x03\r\n"  # bit 6 of the status byte: not a status
    emu = Xlp6000OemEmulation()
    emu.corrupt_next_checksums(1)
    emu.feed(bytes.fromhex("02 31 32 51 03 53"))
    assert emu.read() == bytes.fromhex("02 30 67 03") + bytes([0x56 ^ 0xFF])


@pytest.mark.parametrize("report", ["Q", "&", "F", "#", "*", "?", "?6", "?17"])
def test_valve_moves_since_the_last_report_count_until_18_or_percent_asks(report: str) -> None:
    """`?18` and `%` read the valve moves since the last of them; no other report resets that
    count (a host polling `Q` between them must not see 0)."""
    emu = ready(XCaliburEmulation())
    dt(emu, "?18")
    dt(emu, "OIOR")  # from the input: three moves
    emu.advance(5.0)
    dt(emu, report)
    assert dt(emu, "?18") == b"/0`3\x03\r\n"
    assert dt(emu, "?18") == b"/0`0\x03\r\n"
    dt(emu, "IR")
    emu.advance(5.0)
    dt(emu, report)
    assert dt(emu, "%") == b"/0`1\x03\r\n"
