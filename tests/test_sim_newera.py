"""NE-1000 emulation: exact bytes in and out, both framings, alarms, errors, faults."""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pumpctl.simulator.devices.base import PumpSnapshot
from pumpctl.simulator.devices.newera import NE1000Emulation
from pumpctl.simulator.devices.newera_wire import (
    _format_float,
    _nanos,
    crc16_xmodem,
    format_number,
    frame_safe,
    parse_number,
)


def ready(*addresses: int, safe_s: int = 0) -> NE1000Emulation:
    """An emulation whose power-up reset alarm has been acknowledged."""
    emu = NE1000Emulation(addresses or (0,), safe_mode_timeout_s=safe_s)
    emu.read()  # a safe-mode pump announces A?R at power-up
    for a in addresses or (0,):
        body = f"{a}".encode()
        reply = talk(emu, frame_safe(body) if safe_s else body + b"\r")
        assert b"A?R" in reply
    return emu


def talk(emu: NE1000Emulation, data: bytes) -> bytes:
    emu.feed(data)
    return emu.read()


def basic(text: str) -> bytes:
    return b"\x02" + text.encode() + b"\x03"


def setup_bd60(emu: NE1000Emulation, rate: str = "14MH", volume: str = "56") -> None:
    for cmd in ("0DIA26.59", f"0RAT{rate}", "0VOLML", f"0VOL{volume}", "0DIRINF"):
        assert talk(emu, cmd.encode() + b"\r") == basic("00S"), cmd


# --------------------------------------------------------------------------- codec


def test_safe_packet_matches_the_manual_reference() -> None:
    assert frame_safe(b"SAF0") == bytes.fromhex("02 08 53 41 46 30 55 43 03")
    assert crc16_xmodem(b"SAF0") == 0x5543


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("14.5", "14.50"),
        ("3000", "3000."),
        ("0.5", "0.500"),
        ("0", "0.000"),
        ("123.4", "123.4"),
        ("0.012", "0.012"),
        ("56", "56.00"),
    ],
)
def test_numbers_always_carry_a_decimal_point(value: str, text: str) -> None:
    assert format_number(parse_number(value) or 0) == text
    assert format_number(float(value)) == text


def test_counters_are_truncated_and_float_noise_ignored() -> None:
    assert format_number(0.2083333) == "0.208"
    assert format_number(3.4999999999999996) == "3.500"
    assert format_number(12345.6) == "12345."


def _decimal_format(value: float) -> str:
    """`format_number` of a float the long way: the pump's rule written in Decimal."""
    d = max(Decimal(round(value, 9)).quantize(Decimal("1e-9")), Decimal(0))
    decimals = 0 if d >= 1000 else 1 if d >= 100 else 2 if d >= 10 else 3
    text = format(d.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_DOWN), "f")
    return text if decimals else text + "."


@given(
    st.floats(min_value=0.0, max_value=1e16, allow_nan=False)
    | st.integers(0, 10**8).map(lambda n: n / 1000)
    | st.integers(0, 10**12).map(lambda n: n * 5e-10)
)
def test_float_counters_format_as_the_decimal_rule_does(value: float) -> None:
    # every poll formats two counters: the float path in integers must be the Decimal rule
    assert format_number(value) == _decimal_format(value)


def _ulps_away(value: float, ulps: int) -> float:
    for _ in range(abs(ulps)):
        value = math.nextafter(value, math.copysign(math.inf, ulps))
    return value


#: values within a few ulps of a half nanolitre: where `_nanos` leaves its fast path
_NEAR_HALF_NANOLITRE = st.builds(
    lambda k, ulps: _ulps_away((k + 0.5) * 1e-9, ulps),
    st.integers(0, 2 * 10**13),
    st.integers(-4, 4),
)


@settings(max_examples=3000)
@given(
    _NEAR_HALF_NANOLITRE
    | st.floats(min_value=5e-324, max_value=2e4, allow_nan=False)
    | st.integers(0, 2 * 10**13).map(lambda n: n * 1e-9)
)
def test_the_fast_nanolitre_count_is_the_decimal_rule(value: float) -> None:
    # below 2**44 nL the counters skip `round(value, 9)` and the exact ratio (see `_nanos`)
    assert _format_float(value) == _decimal_format(value)
    assert _nanos(value) == int(Decimal(round(value, 9)).quantize(Decimal("1e-9")).scaleb(9))


@pytest.mark.parametrize("text", ["14.567", "12345", "0.0001", "", ".", "1.2.3", "abc"])
def test_numbers_beyond_four_digits_or_three_decimals_are_refused(text: str) -> None:
    assert parse_number(text) is None


# --------------------------------------------------------------------------- basic mode


def test_power_up_reset_is_reported_once_and_the_command_not_executed() -> None:
    emu = NE1000Emulation()
    assert emu.snapshot()[0].alarm == "reset"
    assert talk(emu, b"0RAT5MH\r") == basic("00A?R")
    assert talk(emu, b"0RAT\r") == basic("00S0.000MH")  # the RAT was not executed
    assert talk(emu, b"0\r") == basic("00S")


def test_spaces_control_characters_and_case_are_ignored() -> None:
    emu = ready()
    assert talk(emu, b"0 rat 5 mm\r\n") == basic("00S")
    assert talk(emu, b"0RAT\r") == basic("00S5.000MM")
    assert talk(emu, b"0ver\r") == basic("00SNE1000V3.928")


def test_replies_come_only_from_the_addressed_pump() -> None:
    emu = ready(0, 1)
    assert talk(emu, b"1RAT2MH\r") == basic("01S")
    assert talk(emu, b"7\r") == b""  # nobody at address 7
    assert talk(emu, b"0RAT\r") == basic("00S0.000MH")
    assert talk(emu, b"0RAT100MH*1RAT250MH*\r") == basic("00S") + basic("01S")
    assert talk(emu, b"1RAT\r") == basic("01S250.0MH")


def test_partial_frames_in_any_chunking() -> None:
    emu = ready()
    for b in b"0DIA14.5\r":
        emu.feed(bytes((b,)))
    assert emu.read() == basic("00S")
    assert talk(emu, b"0D") == b""
    assert talk(emu, b"IA\r") == basic("00S14.50")


def test_volume_units_follow_the_diameter() -> None:
    emu = ready()
    assert talk(emu, b"0DIA12.06\r") == basic("00S")
    assert talk(emu, b"0VOL\r") == basic("00S0.000UL")
    assert talk(emu, b"0DIS\r") == basic("00SI0.000W0.000UL")
    assert talk(emu, b"0DIA14.00\r") == basic("00S")
    assert talk(emu, b"0VOL\r") == basic("00S0.000UL")
    assert talk(emu, b"0DIA14.01\r") == basic("00S")
    assert talk(emu, b"0VOL\r") == basic("00S0.000ML")
    assert talk(emu, b"0VOLUL\r") == basic("00S")
    assert talk(emu, b"0VOL5000\r") == basic("00S")
    assert talk(emu, b"0VOL\r") == basic("00S5000.UL")
    assert talk(emu, b"0VOLML\r") == basic("00S")  # unit change keeps the physical volume
    assert talk(emu, b"0VOL\r") == basic("00S5.000ML")


def test_rate_units_limits_and_prefixes() -> None:
    emu = ready()
    assert talk(emu, b"0DIA26.59\r") == basic("00S")
    assert talk(emu, b"0RAT3000UM\r") == basic("00S")
    assert talk(emu, b"0RAT\r") == basic("00S3000.UM")
    assert talk(emu, b"0RAT C 20 MH\r") == basic("00S")
    assert talk(emu, b"0RAT\r") == basic("00S20.00MH")
    assert talk(emu, b"0RAT1700MH\r") == basic("00S?OOR")  # max 1699 mL/h with a 26.59 mm bore
    assert talk(emu, b"0RAT0MH\r") == basic("00S?OOR")
    assert talk(emu, b"0RAT14.567MH\r") == basic("00S?OOR")
    assert talk(emu, b"0RAT\r") == basic("00S20.00MH")


def test_errors_are_specific() -> None:
    emu = ready()
    assert talk(emu, b"0XYZ\r") == basic("00S?")
    assert talk(emu, b"0DIA123.45\r") == basic("00S?OOR")
    assert talk(emu, b"0DIRSTK\r") == basic("00S?NA")
    assert talk(emu, b"0CLDXXX\r") == basic("00S?OOR")
    assert talk(emu, b"0SAF256\r") == basic("00S?OOR")
    assert talk(emu, b"0RUN\r") == basic("00S?OOR")  # no rate programmed after the reset


def test_run_pause_resume_stop_and_target_reached() -> None:
    emu = ready()
    setup_bd60(emu)
    assert talk(emu, b"0RUN\r") == basic("00I")
    emu.advance(900.0)  # 3.5 mL at 14 mL/h
    assert talk(emu, b"0DIS\r") == basic("00II3.500W0.000ML")
    assert emu.snapshot()[0] == PumpSnapshot(
        running=True,
        direction="infuse",
        rate_ml_per_h=14.0,
        delivered_ml=3.5,
        target_ml=56.0,
        alarm=None,
    )
    assert talk(emu, b"0STP\r") == basic("00P")
    emu.advance(3600.0)
    assert talk(emu, b"0\r") == basic("00P")
    assert talk(emu, b"0RAT\r") == basic("00P14.00MH")
    assert talk(emu, b"0RUN\r") == basic("00I")  # resume: 52.5 mL left of the 56 mL phase
    emu.advance(4 * 3600.0)
    assert talk(emu, b"0\r") == basic("00S")
    assert talk(emu, b"0DIS\r") == basic("00SI56.00W0.000ML")
    assert emu.snapshot()[0].delivered_ml == 56.0
    assert talk(emu, b"0STP\r") == basic("00S")
    assert talk(emu, b"0CLDINF\r") == basic("00S")
    assert talk(emu, b"0DIS\r") == basic("00SI0.000W0.000ML")
    assert emu.snapshot()[0].delivered_ml == 56.0  # ground truth is not the pump's counter


def test_second_stop_ends_the_phase() -> None:
    emu = ready()
    setup_bd60(emu, rate="60MH", volume="2")
    talk(emu, b"0RUN\r")
    emu.advance(60.0)  # 1 mL
    assert talk(emu, b"0STP\r") == basic("00P")
    assert talk(emu, b"0STP\r") == basic("00S")
    assert talk(emu, b"0RUN\r") == basic("00I")  # a new phase: the full 2 mL again
    emu.advance(3600.0)
    assert talk(emu, b"0DIS\r") == basic("00SI3.000W0.000ML")


def test_rate_change_while_running_but_not_units() -> None:
    emu = ready()
    setup_bd60(emu, rate="60MH", volume="0")
    talk(emu, b"0RUN\r")
    emu.advance(60.0)
    assert talk(emu, b"0RAT120MH\r") == basic("00I")
    assert talk(emu, b"0RAT1MM\r") == basic("00I?NA")
    assert talk(emu, b"0VOL5\r") == basic("00I?NA")
    assert talk(emu, b"0DIA20\r") == basic("00I?NA")
    emu.advance(60.0)
    assert talk(emu, b"0DIS\r") == basic("00II3.000W0.000ML")
    assert emu.snapshot()[0].rate_ml_per_h == 120.0
    assert emu.snapshot()[0].target_ml is None


def test_direction_and_withdraw_counters() -> None:
    emu = ready()
    setup_bd60(emu, rate="60MH", volume="1")
    emu.load_syringe(0, 26.59, 60.0, 30.0)  # a full syringe could not withdraw
    assert talk(emu, b"0DIRWDR\r") == basic("00S")
    assert talk(emu, b"0DIR\r") == basic("00SWDR")
    assert talk(emu, b"0RUN\r") == basic("00W")
    assert talk(emu, b"0DIRINF\r") == basic("00W?NA")  # not with a volume target
    emu.advance(120.0)
    assert talk(emu, b"0DIS\r") == basic("00SI0.000W1.000ML")
    assert talk(emu, b"0DIRREV\r") == basic("00S")
    assert talk(emu, b"0DIR\r") == basic("00SINF")
    snap = emu.snapshot()[0]
    assert snap.delivered_ml == -1.0
    assert snap.direction == "infuse"


def test_withdrawing_a_full_syringe_stalls() -> None:
    emu = ready()
    setup_bd60(emu, rate="60MH", volume="0")
    talk(emu, b"0DIRWDR\r")
    assert talk(emu, b"0RUN\r") == basic("00W")
    emu.advance(0.1)
    assert emu.snapshot()[0].alarm == "full"
    assert talk(emu, b"0\r") == basic("00A?S")


def test_a_command_without_address_reaches_the_only_pump() -> None:
    emu = ready()
    assert talk(emu, b"VER\r") == basic("00SNE1000V3.928")
    assert talk(emu, b"\r") == basic("00S")


def test_purge_runs_at_max_rate_until_stop() -> None:
    emu = ready()
    setup_bd60(emu)
    assert talk(emu, b"0PUR\r") == basic("00X")
    assert emu.snapshot()[0].rate_ml_per_h == pytest.approx(1699.0)
    assert talk(emu, b"0STP\r") == basic("00S")


def test_empty_syringe_raises_a_stall_alarm() -> None:
    emu = ready()
    setup_bd60(emu, rate="60MH", volume="0")
    emu.load_syringe(0, 26.59, 60.0, 1.0)
    talk(emu, b"0RUN\r")
    emu.advance(61.0)
    assert emu.snapshot()[0].alarm == "empty"
    assert emu.physics(0).remaining_ml == 0.0
    assert talk(emu, b"0DIS\r") == basic("00A?S")  # reported and acknowledged, not executed
    assert talk(emu, b"0DIS\r") == basic("00SI1.000W0.000ML")
    assert emu.snapshot()[0].alarm == "empty"  # latched until the next start


def test_occlusion_stalls_and_release_delivers_the_bolus() -> None:
    emu = ready()
    setup_bd60(emu, rate="60MH", volume="0")
    emu.set_occlusion(0, True)
    talk(emu, b"0RUN\r")
    emu.advance(19.0)
    assert talk(emu, b"0\r") == basic("00I")
    emu.advance(1.0)  # 0.32 mL stored at 60 mL/h takes 19.2 s
    snap = emu.snapshot()[0]
    assert (snap.running, snap.alarm) == (False, "stall")
    assert snap.delivered_ml == pytest.approx(0.32)
    assert emu.physics(0).outflow_ml == 0.0
    assert talk(emu, b"0\r") == basic("00A?S")
    emu.set_occlusion(0, False)
    assert emu.physics(0).outflow_ml == pytest.approx(0.32)
    assert talk(emu, b"0RUN\r") == basic("00I")
    assert emu.snapshot()[0].alarm is None


def test_power_cycle_loses_program_and_counters() -> None:
    emu = ready()
    setup_bd60(emu, rate="60MH", volume="0")
    talk(emu, b"0RUN\r")
    emu.advance(60.0)
    emu.power_cycle(0)
    assert emu.snapshot()[0].running is False
    assert emu.snapshot()[0].alarm == "reset"
    assert talk(emu, b"0RUN\r") == basic("00A?R")
    assert talk(emu, b"0DIS\r") == basic("00SI0.000W0.000ML")
    assert talk(emu, b"0RAT\r") == basic("00S0.000MH")
    assert talk(emu, b"0DIA\r") == basic("00S26.59")  # non-volatile
    assert talk(emu, b"0RUN\r") == basic("00S?OOR")  # never silently re-run (SR28)
    assert emu.snapshot()[0].delivered_ml == pytest.approx(1.0)


def test_address_command() -> None:
    emu = ready()
    assert talk(emu, b"*ADR\r") == basic("00S0")
    assert talk(emu, b"*ADR7\r") == basic("07S")  # the reply comes from the new address
    assert talk(emu, b"7\r") == basic("07S")
    assert talk(emu, b"0\r") == b""
    assert list(emu.snapshot()) == [7]
    assert talk(emu, b"*ADRDUAL\r") == basic("07S?NA")


# --------------------------------------------------------------------------- safe mode


def test_safe_packet_accepted_in_basic_mode_and_reply_framed_by_resulting_mode() -> None:
    emu = ready()
    assert talk(emu, frame_safe(b"0SAF0")) == basic("00S")  # stays basic: basic reply
    assert talk(emu, frame_safe(b"0SAF10")) == frame_safe(b"00S")  # now safe: safe reply
    assert talk(emu, b"0\r") == b""  # basic lines are ignored in safe mode
    assert talk(emu, frame_safe(b"0SAF")) == frame_safe(b"00S10")
    assert talk(emu, frame_safe(b"0DIA")) == frame_safe(b"00S26.59")
    assert talk(emu, frame_safe(b"0SAF0")) == basic("00S")
    assert talk(emu, b"0SAF\r") == basic("00S0")


def test_bad_checksum_gets_com_error() -> None:
    emu = ready(safe_s=10)
    good = frame_safe(b"0VER")
    bad = good[:-3] + bytes((good[-3] ^ 0xFF,)) + good[-2:]
    assert talk(emu, bad) == frame_safe(b"00S?COM")
    assert talk(emu, good) == frame_safe(b"00SNE1000V3.928")


def test_len_counts_bytes_after_stx_and_packets_may_contain_cr() -> None:
    emu = ready()
    packet = frame_safe(b"0DIA14.5")
    assert packet[1] == len(packet) - 1
    # a packet whose CRC holds 0x0D must not be cut by the basic-mode line parser
    data = next(
        d
        for d in (f"0DIA{x / 100:.2f}".encode() for x in range(100, 2000))
        if b"\r" in frame_safe(d)
    )
    assert talk(emu, frame_safe(data)) == basic("00S")


def test_partial_packet_discarded_after_half_second_gap() -> None:
    emu = ready()
    packet = frame_safe(b"0VER")
    emu.feed(packet[:4])
    emu.advance(0.6)
    emu.feed(packet[4:])
    assert emu.read() == b""
    emu.feed(packet[:4])
    emu.advance(0.4)
    emu.feed(packet[4:])
    assert emu.read() == basic("00SNE1000V3.928")


def test_inter_byte_gap_is_wire_time_on_a_scaled_clock() -> None:
    emu = ready()
    emu.wire_time_scale = 100.0  # a rig at 100x: 0.5 s of wire is 50 simulated seconds
    packet = frame_safe(b"0VER")
    emu.feed(packet[:4])
    emu.advance(40.0)
    emu.feed(packet[4:])
    assert emu.read() == basic("00SNE1000V3.928")


def test_safe_mode_power_up_announces_reset() -> None:
    emu = NE1000Emulation(safe_mode_timeout_s=5)
    assert emu.read() == frame_safe(b"00A?R")
    assert talk(emu, frame_safe(b"0")) == frame_safe(b"00A?R")  # unsolicited did not acknowledge
    assert talk(emu, frame_safe(b"0")) == frame_safe(b"00S")


def test_watchdog_stops_the_pump_and_raises_timeout_alarm() -> None:
    emu = ready()
    setup_bd60(emu, rate="60MH", volume="0")
    assert talk(emu, b"0RUN\r") == basic("00I")
    assert talk(emu, b"0SAF5\r") == frame_safe(b"00I")
    emu.advance(100.0)  # not armed yet: armed at the first valid safe packet
    assert emu.read() == b""
    assert talk(emu, frame_safe(b"0")) == frame_safe(b"00I")
    emu.advance(4.9)
    assert talk(emu, frame_safe(b"0")) == frame_safe(b"00I")  # a valid packet re-arms it
    emu.advance(4.9)
    assert emu.read() == b""
    emu.advance(0.2)
    assert emu.read() == frame_safe(b"00A?T")
    snap = emu.snapshot()[0]
    assert (snap.running, snap.alarm) == (False, "link_timeout")
    assert snap.delivered_ml == pytest.approx((100 + 4.9 + 5.0) / 60)  # stopped at the deadline
    assert talk(emu, frame_safe(b"0")) == frame_safe(b"00A?T")
    assert talk(emu, frame_safe(b"0")) == frame_safe(b"00S")


def test_saf_as_a_safe_packet_arms_the_watchdog_at_once() -> None:
    """The driver's sequence: SAF3 as a safe packet on a running basic-mode pump, then silence.

    Protocol notes: "the timer arms at the first valid packet after power-up"; the SAF3 packet is
    one, so 10 s of silence stop the pump at 3 s with A?T (reported to check: it does).
    """
    emu = ready()
    setup_bd60(emu, rate="60MH", volume="0")
    assert talk(emu, b"0RUN\r") == basic("00I")
    assert talk(emu, frame_safe(b"0SAF3")) == frame_safe(b"00I")
    emu.advance(2.99)
    assert emu.read() == b"" and emu.snapshot()[0].running
    emu.advance(7.01)
    assert emu.read() == frame_safe(b"00A?T")  # unsolicited, at the 3 s deadline
    snap = emu.snapshot()[0]
    assert (snap.running, snap.alarm) == (False, "link_timeout")
    assert snap.delivered_ml == pytest.approx(3.0 / 60)


def test_stored_saf_does_not_time_out_before_the_first_packet() -> None:
    emu = NE1000Emulation(safe_mode_timeout_s=3)  # SAF kept in non-volatile memory
    assert emu.read() == frame_safe(b"00A?R")
    emu.advance(3600.0)
    assert emu.read() == b""  # never armed: no host has spoken since power-up
    assert talk(emu, frame_safe(b"0")) == frame_safe(b"00A?R")
    emu.advance(3.0)
    assert emu.read() == frame_safe(b"00A?T")  # armed by that first packet


def test_auto_alarm_never_while_a_reply_is_outstanding() -> None:
    emu = ready(safe_s=60)
    for cmd in (b"0RAT60MH", b"0VOL0", b"0RUN"):
        talk(emu, frame_safe(cmd))
    emu.set_occlusion(0, True)  # stall after 19.2 s
    emu.advance(19.0)
    emu.set_reply_delay_s(1.0)
    emu.feed(frame_safe(b"0DIS"))
    emu.advance(0.5)  # the stall happens while the host waits
    assert emu.read() == b""
    emu.advance(0.5)
    assert emu.read() == frame_safe(b"00II0.316W0.000ML")  # no unsolicited packet around it
    emu.set_reply_delay_s(0.0)
    assert talk(emu, frame_safe(b"0")) == frame_safe(b"00A?S")


def stall_then_silence(emu: NE1000Emulation) -> None:
    """Run at 60 mL/h into an occlusion (stall at 19.2 s), then send nothing for 90 s."""
    for cmd in (b"0RAT60MH", b"0VOL0", b"0RUN"):
        talk(emu, frame_safe(cmd))
    emu.set_occlusion(0, True)
    emu.advance(30.0)
    assert emu.read() == frame_safe(b"00A?S")  # announced unsolicited, not yet reported
    emu.advance(60.0)  # the 60 s watchdog fires on the stalled pump


def test_a_stall_is_not_overwritten_by_a_later_watchdog_timeout() -> None:
    """Issue #11: the state file said `link_timeout` after a stall. The first alarm stays until
    cleared: its code until reported (no second announcement), its reason until a start."""
    emu = ready(safe_s=60)
    stall_then_silence(emu)
    assert emu.read() == b""
    assert (emu.snapshot()[0].running, emu.snapshot()[0].alarm) == (False, "stall")
    assert talk(emu, frame_safe(b"0")) == frame_safe(b"00A?S")
    assert talk(emu, frame_safe(b"0")) == frame_safe(b"00S")
    emu.advance(120.0)  # reported but not cleared by a start: a later timeout keeps the reason
    assert emu.read() == frame_safe(b"00A?T")
    assert emu.snapshot()[0].alarm == "stall"
    emu.set_occlusion(0, False)
    assert talk(emu, frame_safe(b"0")) == frame_safe(b"00A?T")
    assert talk(emu, frame_safe(b"0RUN")) == frame_safe(b"00I")
    assert (emu.snapshot()[0].running, emu.snapshot()[0].alarm) == (True, None)


# --------------------------------------------------------------------------- faults


def test_garbled_replies_keep_framing_but_fail_checks() -> None:
    emu = ready()
    emu.garble_next_replies(1)
    assert talk(emu, b"0\r") == basic("p0S")
    assert talk(emu, b"0\r") == basic("00S")
    talk(emu, b"0SAF10\r")
    emu.garble_next_replies(1)
    reply = talk(emu, frame_safe(b"0"))
    assert reply[:2] == frame_safe(b"00S")[:2] and reply[-1] == 0x03
    assert reply[2:5] == b"p0S"
    assert int.from_bytes(reply[-3:-1], "big") != crc16_xmodem(reply[2:-3])


def test_corrupt_checksums_hits_only_safe_replies() -> None:
    emu = ready()
    emu.corrupt_next_checksums(2)
    assert talk(emu, b"0\r") == basic("00S")  # basic: no CRC to corrupt, count kept
    talk(emu, b"0SAF10\r")  # its (safe) reply takes the first
    good = frame_safe(b"00S")
    bad = good[:-2] + bytes((good[-2] ^ 0xFF,)) + good[-1:]
    assert talk(emu, frame_safe(b"0")) == bad
    assert talk(emu, frame_safe(b"0")) == good
    emu.corrupt_next_checksums(5)
    emu.corrupt_next_checksums(0)  # cancelled
    assert talk(emu, frame_safe(b"0")) == good


def test_mangle_next_replies() -> None:
    emu = ready()
    emu.mangle_next_replies(2, lambda data: data[:3])
    assert talk(emu, b"0\r") == b"\x0200"
    assert talk(emu, b"0VER\r") == b"\x0200"
    assert talk(emu, b"0\r") == basic("00S")
    emu.mangle_next_replies(9, lambda data: b"")
    emu.mangle_next_replies(0, lambda data: b"")
    assert talk(emu, b"0\r") == basic("00S")


def test_syringe_remaining_while_running_keeps_the_program() -> None:
    emu = ready()
    setup_bd60(emu, rate="60MH", volume="5")  # 5 mL program
    assert talk(emu, b"0RUN\r") == basic("00I")
    emu.advance(60.0)  # 1 mL done
    emu.set_syringe_remaining_ml(0, 10.0)
    assert emu.physics(0).remaining_ml == 10.0
    emu.advance(240.0)  # the program's remaining 4 mL
    assert talk(emu, b"0DIS\r") == basic("00SI5.000W0.000ML")  # target reached, no alarm
    emu.set_syringe_remaining_ml(0, 0.5)
    assert talk(emu, b"0VOL0\r") == basic("00S")
    assert talk(emu, b"0RUN\r") == basic("00I")
    emu.advance(31.0)
    assert talk(emu, b"0\r") == basic("00A?S")  # empty after 0.5 mL = 30 s
    assert emu.snapshot()[0].alarm == "empty"


def test_syringe_empty_stops_an_infusing_pump_at_once() -> None:
    emu = ready()
    setup_bd60(emu, rate="60MH", volume="0")
    assert talk(emu, b"0RUN\r") == basic("00I")
    emu.set_syringe_remaining_ml(0, 0.0)
    assert not emu.snapshot()[0].running
    assert talk(emu, b"0\r") == basic("00A?S")


def test_commands_seen_counts_lines_and_packets() -> None:
    emu = NE1000Emulation()
    emu.feed(b"0\r0VER\r" + frame_safe(b"0") + b"junk\r")
    emu.feed(b"\x02\x05ab")  # a partial packet is not a command yet
    assert emu.commands_seen == 4


def test_reply_delay_holds_replies_back() -> None:
    emu = ready()
    emu.set_reply_delay_s(0.3)
    assert talk(emu, b"0\r") == b""
    emu.advance(0.29)
    assert emu.read() == b""
    emu.advance(0.01)
    assert emu.read() == basic("00S")


def test_link_down_swallows_everything() -> None:
    emu = ready()
    emu.set_link_up(False)
    assert talk(emu, b"0RAT5MH\r") == b""
    emu.set_link_up(True)
    assert talk(emu, b"0RAT\r") == basic("00S0.000MH")


def test_a_host_that_never_reads_cannot_grow_the_buffer() -> None:
    emu = NE1000Emulation(max_outbound_bytes=100)
    for _ in range(1000):
        emu.feed(b"0VER\r")
    out = emu.read()
    assert len(out) <= 100
    assert out.endswith(basic("00SNE1000V3.928"))


def test_snapshot_has_exactly_the_state_file_keys() -> None:
    snap = NE1000Emulation((3, 42)).snapshot()
    assert list(snap) == [3, 42]
    assert snap[3].model_dump() == {
        "running": False,
        "direction": "infuse",
        "rate_ml_per_h": 0.0,
        "delivered_ml": 0.0,
        "target_ml": None,
        "alarm": "reset",
    }


def test_invalid_addresses_are_refused() -> None:
    with pytest.raises(ValueError):
        NE1000Emulation((0, 0))
    with pytest.raises(ValueError):
        NE1000Emulation((100,))


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1000])
def test_input_split_anywhere_gives_the_same_replies(chunk: int) -> None:
    # whole packets and runs of line bytes are taken in one piece: the outcome must be the
    # byte-by-byte one, whatever the reads split (junk, a short LEN, a line cut by STX)
    stream = b"".join(
        [
            b"0DIA26.59\r",
            frame_safe(b"0DIS"),
            b"\x02\x01junk0VER\r",
            b"0RAT\x021",
            frame_safe(b"0RAT14MH"),
            b"0 dis\r\r",
            frame_safe(b"0DIS*0VER"),
            b"x" * 300 + b"\r",
        ]
    )
    whole, split = ready(0), ready(0)
    whole.feed(stream)
    for i in range(0, len(stream), chunk):
        split.feed(stream[i : i + chunk])
    assert split.read() == whole.read()
    assert split.commands_seen == whole.commands_seen
    one = ready(0)
    for b in stream:
        one.feed(bytes([b]))
    assert one.read() == talk(ready(0), stream)
