"""Harvard 11 Elite / PHD Ultra driver: pure codec (exact bytes), the driver against a scripted
transport, and fuzzed parsers (only typed `PumpError`s escape)."""

from __future__ import annotations

import contextlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
from pumpctl.drivers.harvard_elite import (
    ERRORS,
    HarvardEliteDriver,
    elite_frame_length,
    encode_command,
    format_rate,
    format_volume,
    parse_rate,
    parse_rate_limits,
    parse_reply,
    parse_version,
    parse_volume,
    status_for_prompt,
)

from . import scripted
from .scripted import Step


def line(body: str = "", prompt: str = ":", address: int = 0) -> bytes:
    """LF, then `aa<prompt>body` CR LF."""
    return f"\n{address:02d}{prompt}{body}\r\n".encode()


def timeout() -> PumpTimeout:
    return PumpTimeout("no complete reply on fake at 115200 baud")


# --------------------------------------------------------------------------- codec


def test_requests_colon_only_for_non_zero_address() -> None:
    assert encode_command(0, "irate 5 ml/hr") == b"irate 5 ml/hr\r"
    assert encode_command(12, "irate 3.2 ul/min") == b"12:irate 3.2 ul/min\r"
    assert encode_command(99, "stp") == b"99:stp\r"
    for bad in (-1, 100):
        with pytest.raises(ValueError, match=r"0\.\.99"):
            encode_command(bad, "ver")
    with pytest.raises(ValueError):
        encode_command(0, "stp\r")


@pytest.mark.parametrize(
    "reply",
    [
        b"\n00:\r\n",
        b"\n00>5 ml/hr\r\n",
        b"\n00T*\r\n",
        b"\n12<Out of range\r\n",
        b"\n00:1.061 nl/min to 25.023 ml/min\r\n",
        b"\r\n00*\r\n",
        b"\n00:11 ELITE I/W Single 3.0.4\n",
    ],
)
def test_framer_ends_at_the_first_prompt_line(reply: bytes) -> None:
    assert elite_frame_length(reply) == len(reply)
    assert elite_frame_length(reply + b"\n00:\r\n") == len(reply)
    for cut in range(len(reply)):
        assert elite_frame_length(reply[:cut]) is None


def test_framer_hands_long_garbage_to_the_parser() -> None:
    junk = b"\xfe" * 300
    assert elite_frame_length(junk) == 257
    with pytest.raises(ProtocolError):
        parse_reply(junk[:257])


def test_parse_replies() -> None:
    r = parse_reply(b"\n00>5 ml/hr\r\n", address=0)
    assert (r.address, r.prompt, r.body, r.error, r.raw) == (0, ">", "5 ml/hr", None, "00>5 ml/hr")
    assert parse_reply(b"\n00T*\r\n").prompt == "T*"
    assert parse_reply(b"\n07:\r\n", address=7).body == ""
    for prompt in (":", ">", "<", "*", "T*"):
        assert parse_reply(line(prompt=prompt)).prompt == prompt


@pytest.mark.parametrize("error", sorted(ERRORS))
def test_parse_error_bodies(error: str) -> None:
    r = parse_reply(line(error))
    assert (r.error, r.body) == (error, "")


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"00:\r\n", "LF"),
        (b"\n0:\r\n", "LF"),
        (b"\n00T\r\n", "LF"),
        (b"\n00:\x01\r\n", "non-printable"),
        (b"\n01:\r\n", "address 1"),
    ],
)
def test_parse_rejects(raw: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        parse_reply(raw, address=0)


@pytest.mark.parametrize(
    ("text", "ml_per_h"),
    [
        ("5 ml/hr", 5.0),
        ("5 ml/h", 5.0),
        ("3.2 ul/min", 0.192),
        ("3 m/m", 180.0),
        ("1 u/h", 0.001),
        ("2 ml/sec", 7200.0),
        ("1.061 nl/min", 1.061e-6 * 60),
        ("60 pl/hr", 6e-8),
        ("1 l/hr", 1000.0),
    ],
)
def test_rates_with_text_units(text: str, ml_per_h: float) -> None:
    assert parse_rate(text) == pytest.approx(ml_per_h)


@pytest.mark.parametrize("bad", ["5", "5 ml", "5 kl/hr", "5 ml/day", "ml/hr", "-5 ml/hr"])
def test_rates_rejected(bad: str) -> None:
    with pytest.raises(ProtocolError):
        parse_rate(bad)


def test_rate_limits() -> None:
    low, high = parse_rate_limits("1.061 nl/min to 25.023 ml/min")
    assert low == pytest.approx(6.366e-5) and high == pytest.approx(1501.38)
    for bad in ("1 ml/hr", "5 ml/hr to 1 ml/hr", "0 ml/hr to 1 ml/hr"):
        with pytest.raises(ProtocolError):
            parse_rate_limits(bad)


def test_volumes_and_versions() -> None:
    assert parse_volume("12.345 ml") == 12.345
    assert parse_volume("250 ul") == pytest.approx(0.25)
    assert parse_volume("0 nl") == 0.0
    with pytest.raises(ProtocolError):
        parse_volume("12 ml/hr")
    assert parse_version("11 ELITE I/W Single 3.0.4") == ("11 ELITE I/W Single", "3.0.4")
    assert parse_version("PHD ULTRA 2.1.3") == ("PHD ULTRA", "2.1.3")
    assert parse_version("ELITE") == ("ELITE", "")


def test_formats() -> None:
    assert format_rate(7.0) == "7 ml/hr"
    assert format_rate(73.5) == "73.5 ml/hr"
    assert format_rate(12.3456789) == "12.3456 ml/hr"  # 6 digits, rounded down
    assert format_rate(0.00073) == "0.73 ul/hr"
    assert format_rate(12345678.0) == "12345600 ml/hr"
    assert format_volume(28.0) == "28 ml"
    assert format_volume(0.5) == "500 ul"
    assert format_volume(12.4775) == "12.4775 ml"  # in the format: sent exactly
    assert format_volume(0.99999999) == "999.999 ul"
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError):
            format_rate(bad)


@pytest.mark.parametrize(
    ("prompt", "paused", "state", "direction", "alarm"),
    [
        (":", False, PumpState.STOPPED, None, None),
        (":", True, PumpState.PAUSED, None, None),
        ("T*", True, PumpState.STOPPED, None, None),
        (">", False, PumpState.RUNNING, Direction.INFUSE, None),
        ("<", False, PumpState.RUNNING, Direction.WITHDRAW, None),
        ("*", False, PumpState.ALARM, None, AlarmReason.STALL),
    ],
)
def test_status_for_prompt(
    prompt: str,
    paused: bool,
    state: PumpState,
    direction: Direction | None,
    alarm: AlarmReason | None,
) -> None:
    s = status_for_prompt(prompt, paused=paused)
    assert (s.state, s.direction, s.alarm) == (state, direction, alarm)
    with pytest.raises(ProtocolError):
        status_for_prompt("?")


# --------------------------------------------------------------------------- fuzz


@given(st.binary(max_size=300))
def test_fuzz_framer_and_parser(raw: bytes) -> None:
    n = elite_frame_length(raw)
    assert n is None or 1 <= n <= len(raw)
    with contextlib.suppress(PumpError):
        parse_reply(raw[:n] if n else raw, address=0)


@given(st.text(max_size=60))
def test_fuzz_text_parsers(text: str) -> None:
    for parse in (parse_rate, parse_rate_limits, parse_volume):
        with contextlib.suppress(PumpError):
            parse(text)
    parse_version(text)


@given(st.floats(min_value=1e-9, max_value=1e9))
def test_fuzz_rate_format_round_trips(rate: float) -> None:
    sent = parse_rate(format_rate(rate))
    assert sent == pytest.approx(rate, rel=1e-5) and sent <= rate * (1 + 1e-12)
    volume = parse_volume(format_volume(rate))
    assert volume == pytest.approx(rate, rel=1e-5) and volume <= rate * (1 + 1e-12)


# --------------------------------------------------------------------------- driver


class ScriptedTransport(scripted.ScriptedTransport):
    """The shared scripted fake with Harvard Elite framing."""

    name = "fake://elite"
    baudrate = 115200
    trailing = b"\n99:\r\n"


IW = "11 ELITE I/W Single 3.0.4"


async def opened(
    *steps: Step, address: int = 0, ver: str = IW
) -> tuple[HarvardEliteDriver, ScriptedTransport]:
    prefix = f"{address}:" if address else ""
    t = ScriptedTransport((f"{prefix}ver\r".encode(), line(ver, address=address)), *steps)
    driver = HarvardEliteDriver(t, address=address)
    await driver.open()
    return driver, t


async def test_open_identifies() -> None:
    driver, t = await opened()
    assert driver.identity is not None
    assert (driver.identity.model, driver.identity.firmware) == ("11 ELITE I/W Single", "3.0.4")
    assert driver.capabilities.can_withdraw
    t.done()


async def test_infuse_only_model_refuses_withdraw() -> None:
    driver, t = await opened(ver="11 ELITE Single 3.0.4")
    assert not driver.capabilities.can_withdraw
    with pytest.raises(UnsupportedError, match="infuse-only"):
        await driver.set_rate(1.0, Direction.WITHDRAW)
    t.done()


async def test_open_timeout_names_port_baud_and_address() -> None:
    t = ScriptedTransport(*[(b"7:ver\r", timeout())] * 3)
    with pytest.raises(PumpTimeout, match=r"pump 7 on fake://elite at 115200 baud"):
        await HarvardEliteDriver(t, address=7).open()
    assert not t.opened
    t.done()


def test_address_validated_and_defaults() -> None:
    for bad in (-1, 100):
        with pytest.raises(ValueError, match=r"0\.\.99"):
            HarvardEliteDriver(ScriptedTransport(), address=bad)
    cls = HarvardEliteDriver
    assert (cls.family, cls.default_baudrate, cls.default_stopbits) == ("harvard-elite", 115200, 1)
    q = cls(ScriptedTransport()).quantizer
    assert (q.floor_volume_ml(12.4775), q.floor_rate_ml_per_h(74.865)) == (12.4775, 74.865)
    assert q.volume_step_ml(12.4775) == pytest.approx(1e-4)


async def test_reply_from_another_address_is_never_acted_on() -> None:
    driver, t = await opened((b"irun\r", line(prompt=">", address=1)))
    with pytest.raises(ProtocolError, match="address 1"):
        await driver.start()
    assert t.sent.count(b"irun\r") == 1
    t.done()


async def test_configure_reads_rate_limits_into_capabilities() -> None:
    driver, t = await opened(
        (b"diameter 26.7\r", line()),
        (b"irate lim\r", line("1.061 nl/min to 25.023 ml/min")),
    )
    caps = driver.capabilities
    assert caps.max_rate_ml_per_h == pytest.approx(88.28 * 60)  # nominal before a syringe
    await driver.configure_syringe(26.7)
    caps = driver.capabilities
    assert caps.min_rate_ml_per_h == pytest.approx(6.366e-5)
    assert caps.max_rate_ml_per_h == pytest.approx(1501.38)
    assert (caps.family, caps.sets_syringe_volume, caps.has_link_watchdog) == (
        "harvard-elite",
        True,
        False,
    )
    assert caps.volume_resolution_ml == 0.001
    t.expect((b"svolume 60 ml\r", line()))
    await driver.configure_syringe_volume(60.0)
    t.done()


async def test_addressed_commands_use_a_colon() -> None:
    driver, t = await opened(
        (b"12:irate 3.2 ul/hr\r", line(address=12)),
        (b"12:irun\r", line(prompt=">", address=12)),
        address=12,
    )
    await driver.set_rate(0.0032)
    await driver.start()
    t.done()


async def test_rates_and_errors() -> None:
    driver, t = await opened(
        (b"irate 7 ml/hr\r", line()),
        (b"irate 9.5 ml/hr\r", line(prompt=">")),
        (b"irate 99999 ml/hr\r", line("Out of range")),
        (b"crate\r", line("9.5 ml/hr", ">")),
        (b"irate\r", line("9.5 ml/hr", ">")),
        (b"wrate\r", line("3 u/m", ">")),
    )
    await driver.set_rate(7.0)
    await driver.set_rate(9.5)
    with pytest.raises(CommandRejected) as info:
        await driver.set_rate(99999.0)
    assert (info.value.code, info.value.command) == ("Out of range", "irate 99999 ml/hr")
    assert await driver.read_rate() == 9.5
    assert await driver.read_set_rate() == 9.5
    assert await driver.read_set_rate(Direction.WITHDRAW) == pytest.approx(0.18)
    t.done()


@pytest.mark.parametrize("error", sorted(ERRORS))
async def test_every_error_body_is_command_rejected(error: str) -> None:
    driver, t = await opened((b"svolume\r", line("60 ml")), (b"tvolume 28 ml\r", line(error)))
    with pytest.raises(CommandRejected) as info:
        await driver.set_target_volume(28.0)
    assert info.value.code == error
    t.done()


async def test_target_volume_raises_svolume_to_hold_it() -> None:
    """The pump refuses a target above `svolume` (which `diameter` does not set)."""
    driver, t = await opened(
        (b"svolume\r", line("10 ml")),  # read once
        (b"tvolume 500 ul\r", line()),
        (b"svolume 30 ml\r", line()),  # 28 mL needs a 30 mL syringe size
        (b"tvolume 28 ml\r", line()),
        (b"tvolume 30 ml\r", line()),
        (b"ctvolume\r", line()),
    )
    await driver.set_target_volume(0.5)
    await driver.set_target_volume(28.0)
    assert driver.syringe_volume_ml == 30.0
    await driver.set_target_volume(30.0)
    await driver.set_target_volume(None)
    with pytest.raises(ValueError):
        await driver.set_target_volume(0.0)
    t.expect((b"svolume 60 ml\r", line()), (b"tvolume 45 ml\r", line()))
    await driver.configure_syringe_volume(60.0)
    await driver.set_target_volume(45.0)
    t.done()


async def test_target_volume_beyond_the_largest_syringe_is_left_to_the_pump() -> None:
    driver, t = await opened(
        (b"svolume\r", line("60 ml")),
        (b"svolume 200 ml\r", line("Argument error")),
    )
    with pytest.raises(CommandRejected):
        await driver.set_target_volume(200.0)
    t.done()


async def test_segment_with_native_pause() -> None:
    """The supervisor's sequence; `stp` keeps counters and target, `irun` resumes, `T*` ends."""
    driver, t = await opened(
        (b"cvolume\r", line()),
        (b"irate 7 ml/hr\r", line()),
        (b"svolume\r", line("60 ml")),
        (b"tvolume 28 ml\r", line()),
        (b"irun\r", line(prompt=">")),
        (b"ivolume\r", line("3.4567 ml", ">")),  # poll: one exchange
        (b"ivolume\r", line("3.5 ml", ">")),  # pause: status first
        (b"stp\r", line()),
        (b"ivolume\r", line("3.5 ml")),
        (b"irun\r", line(prompt=">")),
        (b"ivolume\r", line("28 ml", "T*")),
    )
    await driver.clear_counters()
    await driver.set_rate(7.0)
    await driver.set_target_volume(28.0)
    await driver.start()
    status, delivered = await driver.read_poll()
    assert status.running
    assert delivered.infused_ml == pytest.approx(3.4567)
    await driver.pause()
    status, delivered = await driver.read_poll()
    assert status.state is PumpState.PAUSED
    assert delivered.net_ml == 3.5
    await driver.start()
    status, delivered = await driver.read_poll()
    assert status.state is PumpState.STOPPED
    assert delivered.infused_ml == 28.0
    t.done()


async def test_pause_when_not_running_is_a_no_op() -> None:
    driver, t = await opened((b"ivolume\r", line("0 ml")))
    await driver.pause()
    assert not driver.paused
    t.done()


async def test_withdraw_reads_wvolume() -> None:
    driver, t = await opened(
        (b"wrate 1 ml/hr\r", line()),
        (b"wrun\r", line(prompt="<")),
        (b"ivolume\r", line("0 ml", "<")),
        (b"wvolume\r", line("250 ul", "<")),
        (b"stp\r", line()),
        (b"cvolume\r", line()),
        (b"ivolume\r", line("0 ml")),
    )
    await driver.set_rate(1.0, Direction.WITHDRAW)
    await driver.start()
    status, delivered = await driver.read_poll()
    assert status.direction is Direction.WITHDRAW
    assert (delivered.infused_ml, delivered.withdrawn_ml) == (0.0, 0.25)
    await driver.stop()
    await driver.clear_counters()
    assert (await driver.read_delivered()).withdrawn_ml == 0.0  # no wvolume asked
    t.done()


async def test_stall_is_a_status_and_an_alarm_on_run() -> None:
    driver, t = await opened((b"ivolume\r", line("1 ml", "*")), (b"irun\r", line(prompt="*")))
    status = await driver.read_status()
    assert (status.state, status.alarm) == (PumpState.ALARM, AlarmReason.STALL)
    with pytest.raises(PumpAlarm) as info:
        await driver.start()
    assert info.value.reason is AlarmReason.STALL
    t.done()


async def test_stop_is_idempotent_and_bounded() -> None:
    driver, t = await opened((b"stp\r", line()), (b"stp\r", line(prompt="T*")))
    await driver.stop()
    await driver.stop()
    t.expect(*[(b"stp\r", line(prompt=">"))] * 3)
    with pytest.raises(PumpError, match="after 3 stp"):
        await driver.stop()
    t.done()


async def test_command_is_never_resent_after_a_timeout() -> None:
    driver, t = await opened((b"irun\r", timeout()))
    with pytest.raises(PumpTimeout):
        await driver.start()
    assert t.sent.count(b"irun\r") == 1
    t.done()


async def test_query_is_retried_after_garbled_volume() -> None:
    driver, t = await opened(
        (b"ivolume\r", line("3.x ml")), (b"ivolume\r", timeout()), (b"ivolume\r", line("3 ml"))
    )
    assert (await driver.read_delivered()).infused_ml == 3.0
    t.done()
