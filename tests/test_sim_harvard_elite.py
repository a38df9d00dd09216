"""Harvard 11 Elite emulation: exact bytes in and out of the text protocol, targets, alarms,
faults, several pumps on one link, and the in-memory transport on the virtual clock."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pumpctl.clock import Clock, run_with_clock
from pumpctl.simulator.devices.harvard_elite import (
    HarvardEliteEmulation,
    format_quantity,
    parse_quantity,
)
from pumpctl.simulator.endpoints import InMemoryTransport


def talk(emu: HarvardEliteEmulation, data: bytes) -> bytes:
    emu.feed(data)
    return emu.read()


def reply(*bodies: str, prompt: str = ":", address: int = 0) -> bytes:
    """LF, then one `aa<prompt>body` CR LF line per body."""
    return ("\n" + "".join(f"{address:02d}{prompt}{b}\r\n" for b in bodies)).encode()


OK = reply("")


def ready(*addresses: int) -> HarvardEliteEmulation:
    emu = HarvardEliteEmulation(addresses or (0,))
    for a in addresses or (0,):
        assert talk(emu, f"{a}irate 1 ml/min\r\n".encode()) == reply("", address=a)
    return emu


# --------------------------------------------------------------------------- codec


@pytest.mark.parametrize(
    ("text", "rate", "parsed"),
    [
        ("0.5000000000 m/m", True, (Decimal("0.5"), "ml", "min")),
        ("3.2 ul/min", True, (Decimal("3.2"), "ul", "min")),
        ("12 u/h", True, (Decimal(12), "ul", "hr")),
        ("1e-05 m/m", True, (Decimal("0.00001"), "ml", "min")),
        ("7 nl/sec", True, (Decimal(7), "nl", "sec")),
        ("10.000000000000000 m", False, (Decimal(10), "ml", None)),
        ("250 ul", False, (Decimal(250), "ul", None)),
        ("5", True, (Decimal(5), None, None)),
    ],
)
def test_quantities_with_text_units(
    text: str, rate: bool, parsed: tuple[Decimal, str | None, str | None]
) -> None:
    assert parse_quantity(text, rate=rate) == parsed


@pytest.mark.parametrize(
    ("text", "rate"), [("1 ml", True), ("1 ml/min", False), ("1 kl/min", True), ("x m/m", True)]
)
def test_bad_quantities(text: str, rate: bool) -> None:
    assert parse_quantity(text, rate=rate) is None


@pytest.mark.parametrize(
    ("ml", "per", "text"),
    [
        ("25.023", "/min", "25.023 ml/min"),
        ("0.000001061", "/min", "1.061 nl/min"),
        ("100", "", "100 ml"),
        ("0.5", "", "500 ul"),
        ("0", "", "0 ml"),
        ("0.0012345", "", "1.234 ul"),  # counters are truncated
    ],
)
def test_quantities_shown_in_the_largest_fitting_unit(ml: str, per: str, text: str) -> None:
    assert format_quantity(Decimal(ml), per) == text


# --------------------------------------------------------------------------- requests


def test_version_and_reply_shape() -> None:
    emu = HarvardEliteEmulation()
    assert talk(emu, b"ver\r") == b"\n00:11 ELITE I/W Single 3.0.4\r\n"


@pytest.mark.parametrize(
    "request_bytes",
    [b"12:ver\r", b"12ver\r\n", b"12VER \r\n", b"12:ver\t\r", b"  12:ver \n", b"12:VeR\r"],
)
def test_address_with_or_without_colon_any_case(request_bytes: bytes) -> None:
    emu = HarvardEliteEmulation((12,))
    assert talk(emu, request_bytes) == reply("11 ELITE I/W Single 3.0.4", address=12)


def test_bare_line_answers_the_prompt_line_of_every_pump() -> None:
    emu = HarvardEliteEmulation((3,))
    assert talk(emu, b"\r\n") == reply("", address=3)  # CR LF is one line, not two
    assert talk(emu, b"\n") == reply("", address=3)
    chain = HarvardEliteEmulation((5, 1))
    # Emulation choice: several pumps answer one after the other, in address order.
    assert talk(chain, b"\r") == reply("", address=1) + reply("", address=5)


def test_unknown_address_is_silent_and_no_address_means_pump_zero() -> None:
    emu = HarvardEliteEmulation((0, 4))
    assert talk(emu, b"7ver\r") == b""
    assert talk(emu, b"4\r") == reply("", address=4)
    assert talk(emu, b"0  \r\n") == OK  # an address and spaces: the prompt line
    only_four = HarvardEliteEmulation((4,))
    assert talk(only_four, b"ver\r") == b""


def test_commands_shorten_to_four_letters() -> None:
    emu = ready()
    assert talk(emu, b"diam\r") == reply("14.5000 mm")
    assert talk(emu, b"diame\r") == reply("14.5000 mm")
    assert talk(emu, b"svol\r") == reply("10 ml")
    assert talk(emu, b"irat\r") == reply("1 ml/min")
    assert talk(emu, b"dia\r") == reply("Unknown command")
    assert talk(emu, b"frobnicate\r") == reply("Unknown command")


def test_irate_limits_match_the_manual_example() -> None:
    emu = HarvardEliteEmulation()
    assert talk(emu, b"irate lim\r") == reply("1.061 nl/min to 25.023 ml/min")
    assert talk(emu, b"wrate lim\r") == reply("1.061 nl/min to 25.023 ml/min")
    assert talk(emu, b"irate max\r") == OK
    assert talk(emu, b"irate\r") == reply("25.023 ml/min")
    assert talk(emu, b"diameter 29 mm\r") == OK  # limits scale with the bore area
    assert talk(emu, b"irate lim\r") == reply("4.244 nl/min to 100.092 ml/min")


def test_rates_with_many_decimals_and_short_units() -> None:
    emu = HarvardEliteEmulation()
    assert talk(emu, b"0irate 0.5000000000 m/m\r\n") == OK
    assert talk(emu, b"irate\r") == reply("500 ul/min")
    assert talk(emu, b"irate 3.2 ul/hr\r") == OK
    assert talk(emu, b"irate\r") == reply("3.2 ul/hr")
    assert talk(emu, b"wrate 1e-05 m/m\r") == OK
    assert talk(emu, b"wrate\r") == reply("10 nl/min")
    assert talk(emu, b"irate 26 ml/min\r") == reply("Out of range")
    assert talk(emu, b"irate 1 nl/min\r") == reply("Out of range")
    assert talk(emu, b"irate fast\r") == reply("Argument error")
    assert talk(emu, b"irate 5\r") == reply("Argument error")  # a rate needs its units


@given(st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("25"), places=15))
def test_any_rate_in_range_is_accepted_exactly(ml_per_min: Decimal) -> None:
    emu = HarvardEliteEmulation()
    assert talk(emu, f"irate {ml_per_min} m/m\r".encode()) == OK
    assert talk(emu, b"irun\r") == reply("", prompt=">")
    assert emu.physics(0).rate_ml_per_h == pytest.approx(float(ml_per_min) * 60, rel=1e-12)


def test_syringe_settings() -> None:
    emu = HarvardEliteEmulation()
    assert talk(emu, b"diameter 14.5670 mm\r") == OK
    assert talk(emu, b"diameter\r") == reply("14.5670 mm")
    assert talk(emu, b"diameter 40\r") == reply("Out of range")
    assert talk(emu, b"diameter 9 ml\r") == reply("Argument error")
    assert talk(emu, b"svolume 10.000000000000000 m\r") == OK
    assert talk(emu, b"svolume 250 ul\r") == OK
    assert talk(emu, b"svolume\r") == reply("250 ul")
    assert emu.physics(0).capacity_ml == 0.25
    assert talk(emu, b"svolume 100 ml\r") == reply("Argument error")
    assert talk(emu, b"force\r") == reply("100%")
    assert talk(emu, b"FORCE 50\r") == OK
    assert talk(emu, b"forc\r") == reply("50%")
    assert talk(emu, b"force 101\r") == reply("Out of range")
    assert talk(emu, b"force half\r") == reply("Argument error")


# --------------------------------------------------------------------------- running


def test_target_reached_prompt_and_counters() -> None:
    emu = ready()
    assert talk(emu, b"tvolume\r") == reply("Target volume not set")
    assert talk(emu, b"tvolume 0.5 m\r") == OK
    assert talk(emu, b"tvolume\r") == reply("500 ul")
    assert talk(emu, b"irun\r") == reply("", prompt=">")
    assert talk(emu, b"irun\r") == reply("", prompt=">")  # already running
    emu.advance(15.0)
    assert talk(emu, b"ivolume\r") == reply("250 ul", prompt=">")
    assert talk(emu, b"crate\r") == reply("Infusing at 1 ml/min", prompt=">")
    emu.advance(60.0)
    assert talk(emu, b"\r\n") == reply("", prompt="T*")
    assert talk(emu, b"ivolume\r") == reply("500 ul", prompt="T*")
    assert talk(emu, b"crate\r") == reply("0 ml/min", prompt="T*")
    assert talk(emu, b"irun\r") == reply("", prompt="T*")  # the counter is at the target
    snap = emu.snapshot()[0]
    assert (snap.running, snap.delivered_ml, snap.target_ml) == (False, 0.5, 0.5)
    assert talk(emu, b"civolume\r") == reply("", prompt="T*")  # clearing the counter...
    assert talk(emu, b"ivolume\r") == reply("0 ml", prompt="T*")
    assert talk(emu, b"irun\r") == reply("", prompt=">")  # ...allows another run
    assert talk(emu, b"stp\r") == OK
    assert talk(emu, b"ctvolume\r") == OK
    assert talk(emu, b"tvolume\r") == reply("Target volume not set")
    assert talk(emu, b"tvolume 11 ml\r") == reply("Argument error")  # beyond the syringe


def test_withdraw_reverse_and_status() -> None:
    emu = ready()
    emu.load_syringe(0, 14.5, 10.0, 5.0)
    assert talk(emu, b"wrate 2 ml/min\r") == OK
    assert talk(emu, b"wrun\r") == reply("", prompt="<")
    emu.advance(30.0)
    assert talk(emu, b"wvolume\r") == reply("1 ml", prompt="<")
    assert talk(emu, b"status\r") == reply("33333333333 30 1000000000000 w...W.", prompt="<")
    assert talk(emu, b"rrun\r") == reply("", prompt=">")  # the other way, at irate
    emu.advance(60.0)
    assert talk(emu, b"run\r") == reply("", prompt=">")
    assert talk(emu, b"stp\r") == OK
    assert talk(emu, b"ivolume\r") == reply("1 ml")
    assert talk(emu, b"cvolume\r") == OK
    assert talk(emu, b"wvolume\r") == reply("0 ml")
    snap = emu.snapshot()[0]
    assert (snap.delivered_ml, snap.direction) == (0.0, "infuse")


def test_no_rate_and_busy_errors() -> None:
    emu = HarvardEliteEmulation()
    assert talk(emu, b"irun\r") == reply("Out of range")  # no rate set
    assert talk(emu, b"irun now\r") == reply("Argument error")
    assert talk(emu, b"irate 1 m/m\r") == OK
    assert talk(emu, b"irun\r") == reply("", prompt=">")
    assert talk(emu, b"diameter 10\r") == reply("Command error", prompt=">")
    assert talk(emu, b"irate 2 m/m\r") == reply("", prompt=">")  # at once
    emu.advance(30.0)
    assert emu.snapshot()[0].delivered_ml == 1.0


def test_occlusion_stalls_with_star() -> None:
    emu = ready()
    emu.set_occlusion(0, True)
    talk(emu, b"irun\r")
    emu.advance(19.0)
    assert talk(emu, b"\r") == reply("", prompt=">")
    emu.advance(1.0)  # 0.32 mL stored in the line at 1 mL/min: 19.2 s
    assert talk(emu, b"\r") == reply("", prompt="*")
    assert talk(emu, b"ivolume\r") == reply("320 ul", prompt="*")
    snap = emu.snapshot()[0]
    assert (snap.running, snap.alarm) == (False, "stall")
    emu.set_occlusion(0, False)
    assert talk(emu, b"stp\r") == OK
    assert talk(emu, b"irun\r") == reply("", prompt=">")
    assert emu.snapshot()[0].alarm is None


def test_empty_syringe_and_remaining_volume_hook() -> None:
    emu = ready()
    talk(emu, b"irun\r")
    emu.advance(60.0)
    emu.set_syringe_remaining_ml(0, 0.25)
    assert talk(emu, b"\r") == reply("", prompt=">")
    emu.advance(15.0)
    assert talk(emu, b"ivolume\r") == reply("1.25 ml", prompt="*")
    assert emu.snapshot()[0].alarm == "empty"


def test_metrics_lines() -> None:
    emu = HarvardEliteEmulation()
    out = talk(emu, b"metrics\r")
    lines = out.decode().split("\r\n")
    assert out.startswith(b"\n00:")
    assert lines[0] == "\n00:Pump type          Pump 11"
    assert "00:Pump type string   11 ELITE I/W Single" in lines
    assert "00:Direction          Infuse/withdraw" in lines
    assert lines[-2:] == ["00:", ""]


def test_address_and_baud() -> None:
    emu = HarvardEliteEmulation((0, 2))
    assert talk(emu, b"address\r") == reply("0")
    assert talk(emu, b"2:address 2\r") == reply("", address=2)
    assert talk(emu, b"address 2\r") == reply("Command error")  # taken
    assert talk(emu, b"address 7\r") == reply("", address=7)  # answered from the new address
    assert list(emu.snapshot()) == [2, 7]
    assert talk(emu, b"7:baud\r") == reply("115200", address=7)
    assert talk(emu, b"7:baud 12345\r") == reply("Out of range", address=7)
    assert talk(emu, b"7:baud 9600\r") == reply("", address=7)
    assert emu.uart_settings().baud == 9600
    assert talk(emu, b"7:baud\r") == reply("9600", address=7)
    assert talk(emu, b"7:poll\r") == reply("off", address=7)
    assert talk(emu, b"7:poll on\r") == reply("Argument error", address=7)


# --------------------------------------------------------------------------- faults


def test_power_cycle_keeps_settings_and_loses_counters_and_target() -> None:
    emu = ready()
    talk(emu, b"tvolume 5 ml\r")
    talk(emu, b"irun\r")
    emu.advance(60.0)
    emu.power_cycle(0)
    assert talk(emu, b"\r") == OK  # never resumes by itself
    assert talk(emu, b"irate\r") == reply("1 ml/min")
    assert talk(emu, b"ivolume\r") == reply("0 ml")
    assert talk(emu, b"tvolume\r") == reply("Target volume not set")
    snap = emu.snapshot()[0]
    assert (snap.alarm, snap.delivered_ml, snap.target_ml) == ("reset", 1.0, None)


def test_reply_is_whole_even_when_delayed() -> None:
    emu = HarvardEliteEmulation()
    emu.set_reply_delay_s(0.3)
    assert talk(emu, b"metrics\r") == b""
    emu.advance(0.29)
    assert emu.read() == b""
    emu.advance(0.01)
    out = emu.read()
    assert out.startswith(b"\n00:Pump type") and out.endswith(b"00:\r\n")


def test_garble_mangle_and_link_down() -> None:
    emu = HarvardEliteEmulation()
    emu.garble_next_replies(1)
    assert talk(emu, b"ver\r") == b"\np0:11 ELITE I/W Single 3.0.4\r\n"
    emu.mangle_next_replies(1, lambda data: data[:4])
    assert talk(emu, b"ver\r") == b"\n00:"
    assert talk(emu, b"\r") == OK
    emu.set_link_up(False)
    assert talk(emu, b"irate 1 m/m\r") == b""
    emu.set_link_up(True)
    assert talk(emu, b"irate\r") == reply("0 ml/min")
    assert emu.commands_seen == 4


def test_snapshot_keys_and_bad_addresses() -> None:
    snap = HarvardEliteEmulation((1, 3)).snapshot()
    assert list(snap) == [1, 3]
    assert snap[3].model_dump() == {
        "running": False,
        "direction": "infuse",
        "rate_ml_per_h": 0.0,
        "delivered_ml": 0.0,
        "target_ml": None,
        "alarm": "reset",
    }
    for bad in ((0, 0), (100,), ()):
        with pytest.raises(ValueError):
            HarvardEliteEmulation(bad)


# --------------------------------------------------------------------------- transport


def text_reply(buf: bytes) -> int | None:
    """Test-side framer: a reply is LF + whole lines (it arrives at once)."""
    return len(buf) if buf.startswith(b"\n") and buf.endswith(b"\r\n") else None


def test_in_memory_transport_on_the_virtual_clock() -> None:
    async def main(clock: Clock) -> list[bytes]:
        emu = HarvardEliteEmulation((3,))
        t = InMemoryTransport(emu, clock, name="sim://elite")
        await t.open()
        out = [await t.exchange(b"\r\n", text_reply, 1.0)]
        for cmd in (b"3:diameter 14.5 mm", b"3:irate 100 ul/hr", b"3:tvolume 1 ml", b"3:irun"):
            out.append(await t.exchange(cmd + b"\r\n", text_reply, 1.0))
        await clock.sleep(5 * 3600.0)
        out.append(await t.exchange(b"3:ivolume\r\n", text_reply, 1.0))
        await clock.sleep(6 * 3600.0)
        out.append(await t.exchange(b"3:ivolume\r\n", text_reply, 1.0))
        return out

    out = run_with_clock(main, virtual=True)
    assert out == [
        reply("", address=3),
        reply("", address=3),
        reply("", address=3),
        reply("", address=3),
        reply("", prompt=">", address=3),
        reply("500 ul", prompt=">", address=3),
        reply("1 ml", prompt="T*", address=3),
    ]


def test_manual_example_with_colon_and_abbreviation() -> None:
    emu = HarvardEliteEmulation((12,))
    assert talk(emu, b"12:irat 3.2 ul/min\r") == reply("", address=12)
    assert talk(emu, b"12:irat\r") == reply("3.2 ul/min", address=12)


def split_lines(raw: bytes) -> list[tuple[int, str, str]]:
    """How line-based host software reads a reply: drop the first (empty) line and blank lines,
    then split each into address, prompt (`T*` is the only two-character one) and body."""
    lines = [x.strip() for x in raw.decode("ascii").splitlines(keepends=True)[1:]]
    out = []
    for text in filter(None, lines):
        prompt = text[2:4] if text[2:3] == "T" else text[2:3]
        out.append((int(text[:2]), prompt, text[2 + len(prompt) :]))
    return out


def test_line_based_host_parses_every_reply() -> None:
    emu = HarvardEliteEmulation((1,))
    assert split_lines(talk(emu, b"1  \r\n")) == [(1, ":", "")]
    assert split_lines(talk(emu, b"1stp \r\n")) == [(1, ":", "")]
    assert split_lines(talk(emu, b"1irate lim\r\n")) == [(1, ":", "1.061 nl/min to 25.023 ml/min")]
    talk(emu, b"1irate 0.5000000000 m/m\r\n")
    talk(emu, b"1tvolume 0.01 m\r\n")
    assert split_lines(talk(emu, b"1irun \r\n")) == [(1, ">", "")]
    emu.advance(2.0)
    assert split_lines(talk(emu, b"1ivolume \r\n")) == [(1, "T*", "10 ul")]
    info = [body for _, _, body in split_lines(talk(emu, b"1metrics \r\n"))]
    assert info[-1] == "" and any("withdraw" in b for b in info if b.startswith("Direction"))


def test_crate_names_the_direction_while_moving() -> None:
    """PHD Ultra manual form, as flowchem 1.1.6 parses it (`reply.partition(" at ")`)."""
    emu = ready()
    assert talk(emu, b"crate\r") == reply("0 ml/min")  # idle: no direction to name
    assert talk(emu, b"irate 3 ml/min\r") == OK
    assert talk(emu, b"irun\r") == reply("", prompt=">")
    assert talk(emu, b"0crate \r\n") == b"\n00>Infusing at 3 ml/min\r\n"
    assert talk(emu, b"stp\r") == OK
    assert talk(emu, b"wrate 0.5 ml/min\r") == OK
    assert talk(emu, b"wrun\r") == reply("", prompt="<")
    assert talk(emu, b"crate\r") == b"\n00<Withdrawing at 500 ul/min\r\n"
    assert talk(emu, b"wrate 30 ul/hr\r") == reply("", prompt="<")
    assert talk(emu, b"crate\r") == b"\n00<Withdrawing at 30 ul/hr\r\n"
