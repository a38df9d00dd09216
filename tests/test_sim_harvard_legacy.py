"""Harvard legacy pump-chain emulation: exact bytes (and byte counts) in and out for Pump 11 and
PHD2000, alarms, faults, several pumps on one chain, and the in-memory transport."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pumpctl.clock import Clock, run_with_clock
from pumpctl.drivers.base import FrameLength
from pumpctl.simulator.devices.harvard_legacy import (
    HarvardLegacyEmulation,
    format_field,
    format_rate,
)
from pumpctl.simulator.devices.harvard_legacy_facts import parse_number
from pumpctl.simulator.endpoints import InMemoryTransport


def talk(emu: HarvardLegacyEmulation, data: bytes) -> bytes:
    emu.feed(data)
    return emu.read()


def ok(prompt: str = ":", address: str = "00") -> bytes:
    """A set/action reply: CR LF + 2-digit address + prompt."""
    return f"\r\n{address}{prompt}".encode()


def line(text: str, prompt: str = ":", address: str = "00") -> bytes:
    """A query (or error) reply: CR LF + text + CR LF + 2-digit address + prompt."""
    return f"\r\n{text}\r\n{address}{prompt}".encode()


def phd(text: str | None, prompt: str = ":", address: int = 0) -> bytes:
    """A PHD2000 reply: unpadded address after an extra CR."""
    body = "" if text is None else text + "\r\n"
    return f"\r\n{body}\r{address}{prompt}".encode()


def setup_bd60(emu: HarvardLegacyEmulation, addr: str = "0", rate: str = "MLH60") -> None:
    for cmd in (f"{addr}MMD26.59", f"{addr}{rate}"):
        assert talk(emu, cmd.encode() + b"\r")[-1:] in b":*", cmd


# --------------------------------------------------------------------------- codec


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("10", " 10.0000"),
        ("4.699", "  4.6990"),
        ("0", "  0.0000"),
        ("1234.56789", "1234.567"),
        ("12345.6", "12345.60"),
        ("123456789", "9999999."),
    ],
)
def test_field_numbers_are_eight_characters_right_justified(value: str, text: str) -> None:
    assert format_field(Decimal(value)) == text


def test_counters_are_truncated_and_float_noise_ignored() -> None:
    assert format_field(0.20833339) == "  0.2083"
    assert format_field(3.4999999999999996) == "  3.5000"
    assert format_field(-1e-12) == "  0.0000"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("1.5", "1.5000"),
        ("12.3", "12.300"),
        ("100", "100.00"),
        ("12345", "12345."),
        (".0001", "0.0001"),
    ],
)
def test_rate_numbers_are_six_characters(value: str, text: str) -> None:
    number = parse_number(value)
    assert number is not None
    assert format_rate(number) == text


@pytest.mark.parametrize("text", ["", ".", "1.2.3", "abc", "-1", "1e3", "²", "1٣", "14.4³"])
def test_non_numbers_are_refused(text: str) -> None:
    assert parse_number(text) is None


@given(st.decimals(min_value=0, max_value=99999, places=4, allow_nan=False))
def test_every_field_is_eight_characters(value: Decimal) -> None:
    text = format_field(value)
    assert len(text) == 8
    assert Decimal(text.strip().rstrip(".")) <= value  # truncated, never rounded up


@given(
    st.from_regex(r"[0-9]{1,5}|[0-9]{0,3}\.[0-9]{1,4}", fullmatch=True).filter(
        lambda s: len(s) <= 5
    )
)
def test_any_five_character_rate_reads_back_exactly(text: str) -> None:
    number = parse_number(text)
    assert number is not None
    shown = format_rate(number)
    assert len(shown) == 6
    assert Decimal(shown.strip().rstrip(".")) == number


# --------------------------------------------------------------------------- Pump 11 replies


def test_ver_is_seventeen_bytes() -> None:
    emu = HarvardLegacyEmulation()
    reply = talk(emu, b"0VER\r")
    assert reply == b"\r\nPUMP11V2.0\r\n00:"
    assert len(reply) == 17
    assert int(reply[-3:-1]) == 0  # what host software checks


def test_set_and_query_byte_counts() -> None:
    emu = HarvardLegacyEmulation()
    assert talk(emu, b"0MMD10\r") == ok()  # 5 bytes
    assert talk(emu, b"0DIA\r") == line(" 10.0000")  # 15 bytes
    assert len(line(" 10.0000")) == 15
    assert talk(emu, b"0VOL\r") == line("  0.0000")
    assert talk(emu, b"0ULM1.5\r") == ok()
    assert talk(emu, b"0RAT\r") == line("1.5000 ul/m")
    assert talk(emu, b"0MLM12.3\r") == line("OOR")  # beyond a 10 mm bore's plunger speed
    assert talk(emu, b"0MLM7.75\r") == ok()
    assert talk(emu, b"0RAT\r") == line("7.7500 ml/m")
    assert talk(emu, b"0ULH100\r") == ok()
    assert talk(emu, b"0RAT\r") == line("100.00 ul/h")
    assert talk(emu, b"0MLH12345\r") == b"\r\nOOR\r\n00:"
    assert talk(emu, b"0MLH123\r") == ok()
    assert talk(emu, b"0RAT\r") == line("123.00 ml/h")
    assert talk(emu, b"0MLT5\r") == ok()
    assert talk(emu, b"0TAR\r") == line("  5.0000")


def test_spaces_control_characters_and_case_are_ignored() -> None:
    emu = HarvardLegacyEmulation((3,))
    assert talk(emu, b"03 mmd 14.43\r") == ok(address="03")
    assert talk(emu, b"3 dia\r") == line(" 14.4300", address="03")
    assert talk(emu, b"\n3VER\r") == b"\r\nPUMP11V2.0\r\n03:"  # the LF of a CR LF is ignored


def test_errors() -> None:
    emu = HarvardLegacyEmulation()
    assert talk(emu, b"0XYZ\r") == line("?")
    assert talk(emu, b"0DIR\r") == line("?")  # not in the Pump 11 set
    assert talk(emu, b"0MMD\r") == line("?")
    assert talk(emu, b"0MMDabc\r") == line("?")
    assert talk(emu, b"0VOL5\r") == line("?")
    assert talk(emu, b"0RAT5\r") == line("?")  # Pump 11 sets a rate with ULM/MLM/ULH/MLH
    assert talk(emu, b"0MMD36\r") == line("OOR")
    assert talk(emu, b"0MMD35.55\r") == line("OOR")  # past 35 mm
    assert talk(emu, b"0MMD35.0001\r") == ok()  # 6+ characters: rounded to 35.0 (Model 22)
    assert talk(emu, b"0RUN\r") == line("OOR")  # no rate after power-up
    setup_bd60(emu)
    assert talk(emu, b"0RUN\r") == ok(">")
    assert talk(emu, b"0MMD20\r") == line("NA", ">")
    assert talk(emu, b"0MLT5\r") == line("NA", ">")


def test_diameter_keeps_two_decimals_and_a_new_bore_resets_the_rate() -> None:
    emu = HarvardLegacyEmulation()
    assert talk(emu, b"0MMD4.699\r") == ok()
    assert talk(emu, b"0DIA\r") == line("  4.6900")
    assert talk(emu, b"0ULH50\r") == ok()
    assert talk(emu, b"0MMD4.69\r") == ok()  # the same bore: rate kept
    assert talk(emu, b"0RAT\r") == line("50.000 ul/h")
    assert talk(emu, b"0MMD26.59\r") == ok()
    assert talk(emu, b"0RAT\r") == line("0.0000 ul/h")
    assert emu.physics(0).capacity_ml == 60.0


def test_unknown_addresses_are_silent_and_an_address_alone_gets_the_prompt() -> None:
    emu = HarvardLegacyEmulation((0, 7))
    assert talk(emu, b"5VER\r") == b""
    assert talk(emu, b"99\r") == b""
    assert talk(emu, b"7\r") == ok(address="07")
    assert talk(emu, b"07\r") == ok(address="07")


# --------------------------------------------------------------------------- running


def test_run_target_reached_stops_with_colon_and_run_resets_the_volume() -> None:
    emu = HarvardLegacyEmulation()
    setup_bd60(emu)  # 60 mL/h = 1 mL/min
    assert talk(emu, b"0MLT2\r") == ok()
    assert talk(emu, b"0RUN\r") == ok(">")
    emu.advance(30.0)
    assert talk(emu, b"0VOL\r") == line("  0.5000", ">")
    assert emu.snapshot()[0].running is True
    emu.advance(300.0)
    assert talk(emu, b"0VOL\r") == line("  2.0000")  # stopped exactly at the target
    assert talk(emu, b"0\r") == ok()
    snap = emu.snapshot()[0]
    assert (snap.running, snap.delivered_ml, snap.target_ml, snap.alarm) == (False, 2.0, 2.0, None)
    assert talk(emu, b"0RUN\r") == ok(">")  # a new run: the volume restarts, target again
    assert talk(emu, b"0VOL\r") == line("  0.0000", ">")
    emu.advance(600.0)
    assert talk(emu, b"0VOL\r") == line("  2.0000")
    assert emu.snapshot()[0].delivered_ml == 4.0


def test_clear_volume_and_clear_target_while_running() -> None:
    emu = HarvardLegacyEmulation()
    setup_bd60(emu)
    talk(emu, b"0MLT1\r")
    talk(emu, b"0RUN\r")
    emu.advance(30.0)
    assert talk(emu, b"0CLV\r") == ok(">")
    assert talk(emu, b"0VOL\r") == line("  0.0000", ">")
    assert talk(emu, b"0CLT\r") == ok(">")  # no target: runs on past 1 mL
    assert talk(emu, b"0TAR\r") == line("  0.0000", ">")
    emu.advance(60.0)
    assert talk(emu, b"0VOL\r") == line("  1.0000", ">")
    assert emu.snapshot()[0].target_ml is None
    assert talk(emu, b"0STP\r") == ok()
    assert emu.snapshot()[0].delivered_ml == 1.5


def test_reverse_while_running_and_while_stopped() -> None:
    """The sequence host software uses to withdraw: REV (`:` when stopped), RUN, REV."""
    emu = HarvardLegacyEmulation()
    setup_bd60(emu)
    emu.load_syringe(0, 26.59, 60.0, 30.0)
    assert talk(emu, b"0REV\r") == ok(":")
    assert talk(emu, b"0RUN\r") == ok("<")
    assert talk(emu, b"0RUN\r") == ok("<")  # Pump 11: RUN while running is ignored
    emu.advance(60.0)
    assert talk(emu, b"0REV\r") == ok(">")
    emu.advance(120.0)
    assert talk(emu, b"0STP\r") == ok(":")
    assert talk(emu, b"0VOL\r") == line("  3.0000")  # travel in both directions
    snap = emu.snapshot()[0]
    assert (snap.delivered_ml, snap.direction) == (1.0, "infuse")


def test_rate_change_while_running() -> None:
    emu = HarvardLegacyEmulation()
    setup_bd60(emu)
    talk(emu, b"0RUN\r")
    emu.advance(60.0)
    assert talk(emu, b"0MLH120\r") == ok(">")
    emu.advance(60.0)
    assert talk(emu, b"0VOL\r") == line("  3.0000", ">")
    assert emu.snapshot()[0].rate_ml_per_h == 120.0


def test_occlusion_stalls_with_star_and_run_clears_it() -> None:
    emu = HarvardLegacyEmulation()
    setup_bd60(emu)
    emu.set_occlusion(0, True)
    talk(emu, b"0RUN\r")
    emu.advance(19.0)
    assert talk(emu, b"0\r") == ok(">")
    emu.advance(1.0)  # 0.32 mL stored in the line at 1 mL/min: 19.2 s
    assert talk(emu, b"0\r") == ok("*")
    snap = emu.snapshot()[0]
    assert (snap.running, snap.alarm) == (False, "stall")
    assert snap.delivered_ml == pytest.approx(0.32)
    assert talk(emu, b"0VOL\r") == line("  0.3200", "*")
    emu.set_occlusion(0, False)
    assert emu.physics(0).outflow_ml == pytest.approx(0.32)
    assert talk(emu, b"0RUN\r") == ok(">")
    assert emu.snapshot()[0].alarm is None


def test_empty_syringe_stops_with_star() -> None:
    emu = HarvardLegacyEmulation()
    setup_bd60(emu)
    emu.load_syringe(0, 26.59, 60.0, 0.5)
    talk(emu, b"0RUN\r")
    emu.advance(31.0)
    assert talk(emu, b"0\r") == ok("*")
    assert emu.snapshot()[0].alarm == "empty"
    assert talk(emu, b"0STP\r") == ok(":")  # Pump 11: STP answers `:`


def test_remaining_volume_hook_keeps_the_pump_running() -> None:
    emu = HarvardLegacyEmulation()
    setup_bd60(emu)
    talk(emu, b"0MLT5\r")
    talk(emu, b"0RUN\r")
    emu.advance(60.0)
    emu.set_syringe_remaining_ml(0, 0.5)
    assert talk(emu, b"0\r") == ok(">")
    emu.advance(30.0)
    assert talk(emu, b"0VOL\r") == line("  1.5000", "*")
    assert emu.snapshot()[0].alarm == "empty"


# --------------------------------------------------------------------------- PHD2000


def test_phd_replies_are_unpadded_after_an_extra_cr() -> None:
    emu = HarvardLegacyEmulation((), phd_addresses=(3,))
    reply = talk(emu, b"3VER\r")
    assert reply == b"\r\nPHD2000V20\r\n\r3:"
    assert len(reply) == 17 and int(reply[-3:-1]) == 3
    assert talk(emu, b"03MMD14.432\r") == phd(None, address=3)  # rounded to 14.43
    assert talk(emu, b"03DIA 14.43\r") == phd(None, address=3)  # PHD sets with DIA too
    assert talk(emu, b"3DIA\r") == phd(" 14.4300", address=3)
    assert talk(emu, b"3RAT1.5MM\r") == phd(None, address=3)
    assert talk(emu, b"3RAT\r") == phd("1.5000 ml/mn", address=3)
    assert talk(emu, b"3RAT 20\r") == phd("OOR", address=3)  # 20 mL/min: too fast for 14.43 mm
    assert talk(emu, b"3RAT 10\r") == phd(None, address=3)  # units kept
    assert talk(emu, b"3RAT\r") == phd("10.000 ml/mn", address=3)
    assert talk(emu, b"3ULH5\r") == phd(None, address=3)
    assert talk(emu, b"3RAT\r") == phd("5.0000 ul/hr", address=3)


def test_phd_stop_of_a_running_pump_answers_star_and_run_twice_is_na() -> None:
    emu = HarvardLegacyEmulation(phd_addresses=(1,))  # Pump 11 at 0, PHD2000 at 1
    setup_bd60(emu, "1")
    assert talk(emu, b"1RUN\r") == phd(None, ">", 1)
    assert talk(emu, b"1RUN\r") == phd("NA", ">", 1)
    emu.advance(60.0)
    assert talk(emu, b"1STP\r") == phd(None, "*", 1)
    assert talk(emu, b"1\r") == phd(None, "*", 1)  # interrupted until the next RUN
    assert talk(emu, b"1DEL\r") == phd("  1.0000", "*", 1)
    assert talk(emu, b"1CLD\r") == phd(None, "*", 1)
    assert talk(emu, b"1DEL\r") == phd("  0.0000", "*", 1)
    assert talk(emu, b"1RUN\r") == phd(None, ">", 1)
    assert emu.snapshot()[1].running is True
    assert talk(emu, b"0\r") == ok()


def test_phd_direction_mode_and_settings() -> None:
    emu = HarvardLegacyEmulation((), phd_addresses=(0,))
    assert talk(emu, b"0DIR\r") == phd("INFUSE")
    assert talk(emu, b"0DIR REF\r") == phd(None)
    assert talk(emu, b"0DIR\r") == phd("REFILL")
    assert talk(emu, b"0DIRREV\r") == phd(None)
    assert talk(emu, b"0DIR\r") == phd("INFUSE")
    assert talk(emu, b"0DIRUP\r") == phd("OOR")
    assert talk(emu, b"0MOD\r") == phd("PUMP")
    assert talk(emu, b"0MOD VOL\r") == phd(None)
    assert talk(emu, b"0MOD\r") == phd("VOLUME")
    assert talk(emu, b"0MODPGM\r") == phd("NA")
    assert talk(emu, b"0AF\r") == phd("OFF")
    assert talk(emu, b"0AF ON\r") == phd(None)
    assert talk(emu, b"0AF\r") == phd("ON")
    assert talk(emu, b"0PAR\r") == phd("ON")
    assert talk(emu, b"0IN6\r") == phd("OFF")
    assert talk(emu, b"0IN4\r") == phd("NA")
    assert talk(emu, b"0OUT 5 ON\r") == phd(None)
    assert talk(emu, b"0TGT 2.5\r") == phd(None)
    assert talk(emu, b"0TGT\r") == phd("  2.5000")
    assert talk(emu, b"0TAR\r") == phd("  2.5000")


def test_phd_refills_at_its_refill_rate() -> None:
    emu = HarvardLegacyEmulation((), phd_addresses=(0,))
    setup_bd60(emu)
    emu.load_syringe(0, 26.59, 60.0, 30.0)
    assert talk(emu, b"0RFR\r") == phd("60.000 ml/hr")  # none set: the infusion rate
    assert talk(emu, b"0RFR 120 MH\r") == phd(None)
    assert talk(emu, b"0RFR\r") == phd("120.00 ml/hr")
    talk(emu, b"0DIRREF\r")
    assert talk(emu, b"0RUN\r") == phd(None, "<")
    emu.advance(60.0)
    assert emu.snapshot()[0].delivered_ml == -2.0
    assert talk(emu, b"0DIRINF\r") == phd(None, ">")
    emu.advance(60.0)
    assert emu.snapshot()[0].delivered_ml == -1.0


def test_phd_power_cycle_restores_saved_settings() -> None:
    emu = HarvardLegacyEmulation((), phd_addresses=(0,))
    setup_bd60(emu)
    assert talk(emu, b"0SAV\r") == phd(None)
    talk(emu, b"0MLH30\r")
    talk(emu, b"0RUN\r")
    emu.advance(60.0)
    emu.power_cycle(0)
    assert talk(emu, b"0\r") == phd(None)  # never resumes by itself
    assert talk(emu, b"0RAT\r") == phd("60.000 ml/hr")  # saved, not the 30 set later
    assert talk(emu, b"0DEL\r") == phd("  0.0000")
    assert emu.snapshot()[0].alarm == "reset"


def test_pump11_power_cycle_keeps_diameter_only() -> None:
    emu = HarvardLegacyEmulation()
    setup_bd60(emu)
    talk(emu, b"0MLT3\r")
    talk(emu, b"0RUN\r")
    emu.advance(60.0)
    emu.power_cycle(0)
    snap = emu.snapshot()[0]
    assert (snap.running, snap.alarm, snap.target_ml, snap.delivered_ml) == (
        False,
        "reset",
        None,
        1.0,
    )
    assert talk(emu, b"0DIA\r") == line(" 26.5900")
    assert talk(emu, b"0RAT\r") == line("0.0000 ml/h")
    assert talk(emu, b"0VOL\r") == line("  0.0000")
    assert talk(emu, b"0RUN\r") == line("OOR")


# --------------------------------------------------------------------------- the chain


def test_bare_cr_stops_every_pump_and_every_pump_answers() -> None:
    emu = HarvardLegacyEmulation((0, 1), phd_addresses=(2,))
    for a in "012":
        setup_bd60(emu, a)
        talk(emu, f"{a}RUN\r".encode())
    assert all(s.running for s in emu.snapshot().values())
    # Emulation choice: the replies of a collision follow one another in address order.
    assert talk(emu, b"\r") == ok(":", "00") + ok(":", "01") + phd(None, "*", 2)
    assert not any(s.running for s in emu.snapshot().values())


def test_unaddressed_command_reaches_every_pump() -> None:
    emu = HarvardLegacyEmulation((4, 9))
    assert talk(emu, b"MMD14.43\r") == ok(address="04") + ok(address="09")
    assert talk(emu, b"4DIA\r") == line(" 14.4300", address="04")
    assert talk(emu, b"9DIA\r") == line(" 14.4300", address="09")
    single = HarvardLegacyEmulation((5,))
    assert talk(single, b"VER\r") == b"\r\nPUMP11V2.0\r\n05:"


def test_many_polls_in_any_chunking() -> None:
    emu = HarvardLegacyEmulation()
    setup_bd60(emu)
    talk(emu, b"0RUN\r")
    emu.feed(b"0VOL\r" * 2000)
    out = emu.read()
    assert out == line("  0.0000", ">") * (4096 // 15)  # the oldest beyond 4096 bytes dropped
    for b in b"00VOL\r":
        emu.feed(bytes((b,)))
    assert emu.read() == line("  0.0000", ">")
    assert emu.commands_seen == 2000 + 1 + 3


# --------------------------------------------------------------------------- faults


def test_garbled_reply_keeps_byte_count_and_framing() -> None:
    emu = HarvardLegacyEmulation((0,), phd_addresses=(1,))
    emu.garble_next_replies(2)
    assert talk(emu, b"0DIA\r") == b"\r\n 26.5900\r\np0:"
    assert talk(emu, b"1\r") == b"\r\n\rq:"
    assert talk(emu, b"0\r") == ok()


def test_mangled_replies_pass_through_the_given_function() -> None:
    emu = HarvardLegacyEmulation()
    emu.mangle_next_replies(1, lambda data: data[:3])
    assert talk(emu, b"0VER\r") == b"\r\nP"
    assert talk(emu, b"0\r") == ok()


def test_reply_delay_and_link_down() -> None:
    emu = HarvardLegacyEmulation()
    emu.set_reply_delay_s(0.2)
    assert talk(emu, b"0\r") == b""
    emu.advance(0.2)
    assert emu.read() == ok()
    emu.set_reply_delay_s(0.0)
    emu.set_link_up(False)
    assert talk(emu, b"0MMD10\r") == b""
    emu.set_link_up(True)
    assert talk(emu, b"0DIA\r") == line(" 26.5900")


def test_line_settings_are_the_pump_chain_defaults() -> None:
    emu = HarvardLegacyEmulation()  # the family spec's line: 9600 8N2
    line_settings = emu.uart_settings()
    assert (line_settings.baud, line_settings.stop_bits) == (9600, 2)


def test_snapshot_has_exactly_the_state_file_keys() -> None:
    snap = HarvardLegacyEmulation((3,), phd_addresses=(42,)).snapshot()
    assert list(snap) == [3, 42]
    assert snap[42].model_dump() == {
        "running": False,
        "direction": "infuse",
        "rate_ml_per_h": 0.0,
        "delivered_ml": 0.0,
        "target_ml": None,
        "alarm": "reset",
    }


@pytest.mark.parametrize(
    ("addresses", "phd_addresses"), [((0, 0), ()), ((100,), ()), ((), ()), ((1,), (1, 1))]
)
def test_invalid_addresses_are_refused(
    addresses: tuple[int, ...], phd_addresses: tuple[int, ...]
) -> None:
    with pytest.raises(ValueError):
        HarvardLegacyEmulation(addresses, phd_addresses=phd_addresses)


# --------------------------------------------------------------------------- transport


def by_count(n: int) -> FrameLength:
    """Host-style framing: exactly `n` bytes."""
    return lambda buf: n if len(buf) >= n else None


def test_in_memory_transport_runs_a_target_on_the_virtual_clock() -> None:
    async def main(clock: Clock) -> tuple[list[bytes], float, bool]:
        emu = HarvardLegacyEmulation()
        t = InMemoryTransport(emu, clock, name="sim://harvard")
        await t.open()
        replies = [
            await t.exchange(b"00VER\r", by_count(17), 1.0),
            await t.exchange(b"00MMD26.59\r", by_count(5), 1.0),
            await t.exchange(b"00MLH2\r", by_count(5), 1.0),
            await t.exchange(b"00MLT10\r", by_count(5), 1.0),
            await t.exchange(b"00RUN\r", by_count(5), 1.0),
        ]
        await clock.sleep(3 * 3600.0)
        replies.append(await t.exchange(b"00VOL\r", by_count(15), 1.0))
        await clock.sleep(3 * 3600.0)
        replies.append(await t.exchange(b"00VOL\r", by_count(15), 1.0))
        return replies, clock.now(), emu.snapshot()[0].running

    replies, now, running = run_with_clock(main, virtual=True)
    assert replies == [
        b"\r\nPUMP11V2.0\r\n00:",
        ok(),
        ok(),
        ok(),
        ok(">"),
        line("  6.0000", ">"),
        line(" 10.0000", ":"),  # 10 mL at 2 mL/h: stopped after 5 h
    ]
    assert now == pytest.approx(6 * 3600.0)
    assert running is False


# --------------------------------------------------------------------------- issue #11 / #17


@pytest.mark.parametrize(
    ("sent", "target"),
    [
        ("12.345", " 12.3500"),  # leading 1: four significant digits (pumpy's 12.345 µL)
        ("2.3456", "  2.3500"),  # leading 2-9: three
        ("0.012345", "  0.0123"),  # 0.01235, shown truncated to four decimals
        ("199.95", "200.0000"),  # rounds up into the next decade
        ("2.345", "  2.3450"),  # five characters: taken as sent (protocol notes)
    ],
)
def test_long_numbers_are_rounded_as_the_model_22_manual_says(sent: str, target: str) -> None:
    """Model 22 manual: "Any number of digits to the right of the decimal point may be
    transmitted" and rounded to 4 (leading 1) or 3 significant digits; no `OOR` for length."""
    emu = HarvardLegacyEmulation((0,), phd_addresses=(1,))
    setup_bd60(emu)  # 26.59 mm: the Pump 11 counts in mL
    assert talk(emu, f"00MLT{sent}\r".encode()) == b"\r\n00:"
    assert talk(emu, b"00TAR\r") == line(target)
    assert talk(emu, f"1MLT{sent}\r".encode()) == phd(None, address=1)
    assert talk(emu, b"1TAR\r") == phd(target, address=1)


def test_pump11_volumes_are_microlitres_with_a_small_syringe() -> None:
    """pumpy 1.1.3: `Pump.settargetvolume(50)` sends `00MLT50` meaning 50 µL (README: 10 mm
    syringe). Up to 14.00 mm a Pump 11 counts MLT/VOL/TAR in µL, above in mL; not verified."""
    emu = HarvardLegacyEmulation((0,))
    assert talk(emu, b"00MMD10\r") == b"\r\n00:"
    assert talk(emu, b"00ULM500\r") == b"\r\n00:"
    assert talk(emu, b"00MLT50\r") == b"\r\n00:"
    assert emu.snapshot()[0].target_ml == 0.05
    assert talk(emu, b"00TAR\r") == line(" 50.0000")
    assert talk(emu, b"00RUN\r") == b"\r\n00>"
    emu.advance(3.0)  # 25 µL at 500 µL/min
    assert talk(emu, b"00VOL\r") == line(" 25.0000", ">")
    emu.advance(4.0)
    assert talk(emu, b"00VOL\r") == line(" 50.0000")  # stopped at the target by itself
    assert emu.snapshot()[0].delivered_ml == pytest.approx(0.05)
    assert talk(emu, b"00MMD14\r") == b"\r\n00:"  # 14.00 mm: still µL
    assert talk(emu, b"00TAR\r") == line(" 50.0000")
    assert talk(emu, b"00MMD14.01\r") == b"\r\n00:"  # wider: mL, the same target
    assert talk(emu, b"00TAR\r") == line("  0.0500")


def test_phd2000_volumes_are_always_millilitres() -> None:
    emu = HarvardLegacyEmulation((), phd_addresses=(1,))
    assert talk(emu, b"01MMD10\r") == phd(None, address=1)
    assert talk(emu, b"01MLT0.05\r") == phd(None, address=1)  # pumpy's PHD2000: µL / 1000
    assert emu.snapshot()[1].target_ml == 0.05
    assert talk(emu, b"1TAR\r") == phd("  0.0500", address=1)


@pytest.mark.parametrize("line_bytes", ["²VER", "0²VER", "٣VER", "1\u00b9MLT5", "00MLT²"])
def test_non_ascii_digits_never_raise(line_bytes: str) -> None:
    """Issue #17: `int('²')` escaped from the address parser. `²` is no digit to the pump: the
    line is no command for anybody (`?` from every pump, or from the one addressed)."""
    emu = HarvardLegacyEmulation((0, 1))
    emu.feed(line_bytes.encode("utf-8") + b"\r")
    reply = emu.read()
    assert reply.count(b"\r\n?\r\n") == reply.count(b":")
    assert reply.endswith(b":")
