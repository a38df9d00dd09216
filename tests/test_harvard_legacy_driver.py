"""Harvard legacy pump-chain driver: pure codec (exact bytes and byte counts), the driver against
a scripted transport, and fuzzed parsers (only typed `PumpError`s escape)."""

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
from pumpctl.drivers.harvard_legacy import (
    HarvardLegacyDriver,
    RateUnit,
    choose_rate_unit,
    encode_command,
    format_number,
    legacy_frame_length,
    parse_number,
    parse_rate,
    parse_reply,
    parse_version,
    status_for_prompt,
    target_step_ml,
)

from . import scripted
from .scripted import Step


def ack(prompt: str = ":", address: str = "00") -> bytes:
    """Set/action reply: CR LF address prompt."""
    return f"\r\n{address}{prompt}".encode()


def data(text: str, prompt: str = ":", address: str = "00") -> bytes:
    """Query reply: CR LF text CR LF address prompt."""
    return f"\r\n{text}\r\n{address}{prompt}".encode()


def vol(ml: float, prompt: str = ":", address: str = "00") -> bytes:
    return data(f"{ml:8.4f}", prompt, address)


def timeout() -> PumpTimeout:
    return PumpTimeout("no complete reply on fake at 9600 baud")


# --------------------------------------------------------------------------- codec


def test_requests_are_padded_address_command_cr() -> None:
    assert encode_command(0, "VER") == b"00VER\r"
    assert encode_command(7, "MLH7.5") == b"07MLH7.5\r"
    assert encode_command(99, "DIR INF") == b"99DIR INF\r"
    for bad in (-1, 100):
        with pytest.raises(ValueError, match=r"0\.\.99"):
            encode_command(bad, "VER")
    with pytest.raises(ValueError):
        encode_command(0, "RUN\r")


@pytest.mark.parametrize(
    ("reply", "length"),
    [
        (b"\r\n00:", 5),  # set/action reply
        (b"\r\n 10.0000\r\n00:", 15),  # DIA / VOL
        (b"\r\nPUMP11V2.0\r\n00:", 17),  # VER
        (b"\r\n 7.000 ml/h\r\n00>", 18),  # RAT: 6-character number + unit
        (b"\r\nOOR\r\n00:", 10),
        (b"\r\n\r0*", 5),  # PHD2000: unpadded address, extra CR
        (b"\r\n\r 10.0000\r\n\r3>", 16),
    ],
)
def test_framer_ends_at_the_prompt_after_the_address(reply: bytes, length: int) -> None:
    assert len(reply) == length
    assert legacy_frame_length(reply) == length
    assert legacy_frame_length(reply + b"\r\n01:") == length
    for cut in range(len(reply)):
        assert legacy_frame_length(reply[:cut]) is None


def test_framer_hands_long_garbage_to_the_parser() -> None:
    junk = b"\xff" * 161
    assert legacy_frame_length(junk) == 161
    with pytest.raises(ProtocolError):
        parse_reply(junk)


def test_parse_replies_byte_exact() -> None:
    r = parse_reply(b"\r\n 10.0000\r\n00:", address=0)
    assert (r.address, r.prompt, r.text, r.error, r.padded) == (0, ":", " 10.0000", None, True)
    r = parse_reply(b"\r\nPUMP11V2.0\r\n12>", address=12)
    assert (r.prompt, r.text) == (">", "PUMP11V2.0")
    r = parse_reply(b"\r\n\r5*", address=5)
    assert (r.prompt, r.text, r.padded) == ("*", "", False)
    for prompt in ":><*/^":
        assert parse_reply(ack(prompt)).prompt == prompt


@pytest.mark.parametrize("code", ["?", "NA", "OOR"])
def test_parse_errors(code: str) -> None:
    r = parse_reply(data(code, ">"))
    assert (r.error, r.prompt, r.text) == (code, ">", "")


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"00:", "CR LF"),  # no leading line break
        (b"\r\n00!", "CR LF"),
        (b"\r\n00:\x01", "non-printable"),
        (b"\r\nA\r\nB\r\n00:", "CR LF"),  # two text lines
        (b"\r\n01:", "address 1"),
    ],
)
def test_parse_rejects(raw: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        parse_reply(raw, address=0)


def test_numbers_fit_five_characters() -> None:
    assert format_number(26.7) == "26.7"
    assert format_number(1.23456) == "1.235"
    assert format_number(12.345) == "12.34"  # ties to even
    assert format_number(9.9996) == "10"
    assert format_number(0.0004) == "0"
    assert format_number(99999) == "99999"
    assert format_number(7.0) == "7"
    for bad in (-1.0, math.nan, math.inf, 99999.5):
        with pytest.raises(ValueError):
            format_number(bad)


@pytest.mark.parametrize(
    ("rate", "command", "actual"),
    [
        (7.0, "MLH7", 7.0),
        (73.5, "MLH73.5", 73.5),
        (0.00073, "ULH0.73", 0.00073),
        (12.345, "ULH12345", 12.345),
        (1.2345, "ULM20.57", 20.57 * 60 / 1000),  # rounded down, never up to 20.58
        (1e-6, "ULH0.001", 1e-6),
        (200_000.0, "MLM3333", 3333 * 60.0),
    ],
)
def test_rate_unit_for_best_precision(rate: float, command: str, actual: float) -> None:
    setting = choose_rate_unit(rate)
    assert setting.command == command
    assert setting.rate_ml_per_h == pytest.approx(actual)
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError):
            choose_rate_unit(bad)


def test_rat_reply_units() -> None:
    assert parse_rate(" 7.000 ml/h") == 7.0
    assert parse_rate("250.00 ul/h") == pytest.approx(0.25)
    assert parse_rate(" 1.000 ul/m") == pytest.approx(0.06)
    assert parse_rate(" 1.000 ml/m") == 60.0
    assert {u.reply_text for u in RateUnit} == {"ml/h", "ul/h", "ul/m", "ml/m"}
    with pytest.raises(ProtocolError):
        parse_rate("7 l/s")


def test_number_and_version_fields() -> None:
    assert parse_number(" 10.0000") == 10.0
    assert parse_number("   .5000") == 0.5
    with pytest.raises(ProtocolError):
        parse_number("10.0.0")
    assert parse_version("PUMP11V2.0") == ("PUMP11", "2.0")
    assert parse_version("PHD2000 V1.2") == ("PHD2000", "1.2")
    assert parse_version("33V2.0") == ("33", "2.0")
    assert parse_version("ODD") == ("ODD", "")


def test_target_steps() -> None:
    assert target_step_ml(0.5) == pytest.approx(0.001)
    assert target_step_ml(28.0) == pytest.approx(0.01)
    assert target_step_ml(140.0) == pytest.approx(0.1)
    assert target_step_ml(12345.0) == 1.0


@pytest.mark.parametrize(
    ("prompt", "host", "paused", "state", "direction", "alarm"),
    [
        (":", False, False, PumpState.STOPPED, None, None),
        (":", False, True, PumpState.PAUSED, None, None),
        (">", False, False, PumpState.RUNNING, Direction.INFUSE, None),
        ("<", False, False, PumpState.RUNNING, Direction.WITHDRAW, None),
        ("*", False, False, PumpState.ALARM, None, AlarmReason.STALL),
        ("*", True, False, PumpState.STOPPED, None, None),
        ("*", True, True, PumpState.PAUSED, None, None),
        ("/", False, False, PumpState.PAUSED, None, None),
        ("^", False, False, PumpState.OTHER, None, None),
    ],
)
def test_status_for_prompt(
    prompt: str,
    host: bool,
    paused: bool,
    state: PumpState,
    direction: Direction | None,
    alarm: AlarmReason | None,
) -> None:
    s = status_for_prompt(prompt, stopped_by_host=host, paused=paused)
    assert (s.state, s.direction, s.alarm) == (state, direction, alarm)


# --------------------------------------------------------------------------- fuzz


@given(st.binary(max_size=200))
def test_fuzz_framer_and_parser(raw: bytes) -> None:
    n = legacy_frame_length(raw)
    assert n is None or 1 <= n <= len(raw)
    with contextlib.suppress(PumpError):
        parse_reply(raw[:n] if n else raw, address=0)


@given(st.text(max_size=40))
def test_fuzz_text_parsers(text: str) -> None:
    for parse in (parse_number, parse_rate):
        with contextlib.suppress(PumpError):
            parse(text)
    parse_version(text)


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_fuzz_number_format(value: float) -> None:
    try:
        text = format_number(value)
    except ValueError:
        return
    step = target_step_ml(value)  # the last place 5 characters keep at this magnitude
    assert len(text) <= 5 and abs(float(text) - value) <= step / 2 * (1 + 1e-9)


# --------------------------------------------------------------------------- driver


class ScriptedTransport(scripted.ScriptedTransport):
    """The shared scripted fake with Harvard legacy framing."""

    name = "fake://harvard"
    baudrate = 9600
    trailing = b"\r\n99:"


PUMP11_VER = data("PUMP11V2.0")
PHD_VER = b"\r\nPHD2000V1.2\r\n\r0:"


async def opened(
    *steps: Step, address: int = 0, ver: bytes = PUMP11_VER
) -> tuple[HarvardLegacyDriver, ScriptedTransport]:
    t = ScriptedTransport((f"{address:02d}VER\r".encode(), ver), *steps)
    driver = HarvardLegacyDriver(t, address=address)
    await driver.open()
    return driver, t


async def test_open_identifies_a_pump11() -> None:
    driver, t = await opened()
    assert t.opened and driver.variant == "pump11" and driver.identity is not None
    assert (driver.identity.model, driver.identity.firmware) == ("PUMP11", "2.0")
    t.done()


async def test_open_identifies_a_phd2000_by_its_unpadded_address() -> None:
    driver, t = await opened(ver=b"\r\n\rV1.2\r\n\r0:")
    assert driver.variant == "phd2000"
    t.done()


async def test_open_timeout_names_port_baud_and_address() -> None:
    t = ScriptedTransport(*[(b"03VER\r", timeout())] * 3)
    with pytest.raises(PumpTimeout, match=r"pump 3 on fake://harvard at 9600 baud"):
        await HarvardLegacyDriver(t, address=3).open()
    assert not t.opened
    t.done()


async def test_open_garbage_is_a_timeout_too() -> None:
    t = ScriptedTransport(*[(b"00VER\r", b"\xfe" * 161)] * 3)
    with pytest.raises(PumpTimeout, match="baud"):
        await HarvardLegacyDriver(t).open()
    t.done()


def test_address_validated_and_defaults() -> None:
    for bad in (-1, 100):
        with pytest.raises(ValueError, match=r"0\.\.99"):
            HarvardLegacyDriver(ScriptedTransport(), address=bad)
    cls = HarvardLegacyDriver
    assert (cls.family, cls.default_baudrate, cls.default_stopbits) == ("harvard-legacy", 9600, 2)
    assert (cls.default_bytesize, cls.default_parity) == (8, "N")


async def test_reply_from_another_address_is_never_acted_on() -> None:
    driver, t = await opened((b"00RUN\r", ack(">", "01")))
    # the VOL before RUN is a query: it goes first
    t.script.appendleft((b"00VOL\r", vol(0)))
    with pytest.raises(ProtocolError, match="address 1"):
        await driver.start()
    assert t.sent.count(b"00RUN\r") == 1
    t.done()


async def test_configure_and_capabilities() -> None:
    driver, t = await opened((b"00MMD26.7\r", ack()))
    await driver.configure_syringe(26.7)
    caps = driver.capabilities
    assert caps.family == "harvard-legacy"
    assert caps.max_rate_ml_per_h == pytest.approx(26.5 * 60)
    assert caps.min_rate_ml_per_h == pytest.approx(1e-6 * (26.7 / 0.46) ** 2)
    assert (caps.can_withdraw, caps.sets_syringe_volume, caps.has_link_watchdog) == (
        False,
        False,
        False,
    )
    assert caps.volume_resolution_ml == 0.01
    with pytest.raises(ValueError):
        await driver.configure_syringe(0)
    t.done()


def test_quantizer_steps_follow_the_five_character_format() -> None:
    q = HarvardLegacyDriver(ScriptedTransport()).quantizer
    assert q.volume_step_ml(0.9) == pytest.approx(0.001)
    assert q.volume_step_ml(28.0) == pytest.approx(0.01)
    assert q.floor_volume_ml(12.4775) == 12.47
    assert q.floor_volume_ml(123.45) == 123.4
    assert q.floor_rate_ml_per_h(74.865) == 74.865  # ULH74865: exact


async def test_set_rate_units_and_rejections() -> None:
    driver, t = await opened(
        (b"00MLH7\r", ack()), (b"00ULH0.73\r", ack(">")), (b"00MLM3333\r", data("OOR"))
    )
    await driver.set_rate(7.0)
    await driver.set_rate(0.00073)  # allowed while running
    with pytest.raises(CommandRejected) as info:
        await driver.set_rate(200_000.0)
    assert (info.value.code, info.value.command) == ("OOR", "MLM3333")
    with pytest.raises(UnsupportedError, match="infuses only"):
        await driver.set_rate(1.0, Direction.WITHDRAW)
    t.expect((b"00RAT\r", data("0.7300 ul/h", ">")))
    assert await driver.read_rate() == pytest.approx(0.00073)
    t.done()


async def test_phd2000_gets_dir_inf_once() -> None:
    driver, t = await opened(
        (b"00DIR INF\r", b"\r\n\r0:"),
        (b"00MLH7\r", b"\r\n\r0:"),
        (b"00MLH8\r", b"\r\n\r0:"),
        ver=PHD_VER,
    )
    assert driver.variant == "phd2000"
    await driver.set_rate(7.0)
    await driver.set_rate(8.0)
    t.done()


@pytest.mark.parametrize("code", ["?", "NA", "OOR"])
async def test_every_error_is_command_rejected(code: str) -> None:
    driver, t = await opened((b"00MMD99\r", data(code)))
    with pytest.raises(CommandRejected) as info:
        await driver.configure_syringe(99)
    assert info.value.code == code
    t.done()


async def test_target_volume() -> None:
    driver, t = await opened(
        (b"00MLT28\r", ack()),
        (b"00MLT0.123\r", ack()),
        (b"00CLT\r", ack()),
        (b"00MLT123.4\r", ack()),
    )
    assert await driver.set_target_volume(28.0) == 28.0
    assert await driver.set_target_volume(0.123) == 0.123
    assert await driver.set_target_volume(None) is None
    # 5 characters hold 0.1 mL above 100 mL: rounded down, never up to 123.5
    assert await driver.set_target_volume(123.45) == 123.4
    with pytest.raises(UnsupportedError):
        await driver.set_target_volume(100_000.0)
    with pytest.raises(ValueError):
        await driver.set_target_volume(0.0)
    t.done()


async def test_one_poll_is_one_exchange() -> None:
    driver, t = await opened((b"00VOL\r", vol(1.2345, ">")))
    status, delivered = await driver.read_poll()
    assert status.state is PumpState.RUNNING and status.direction is Direction.INFUSE
    assert status.raw == "\r\n  1.2345\r\n00>"
    assert delivered.infused_ml == pytest.approx(1.2345)
    # read_delivered on its own asks again
    t.expect((b"00VOL\r", vol(1.3, ">")))
    assert (await driver.read_delivered()).infused_ml == pytest.approx(1.3)
    t.done()


async def test_status_and_delivered_reads_are_exchanges_of_their_own() -> None:
    driver, t = await opened(
        (b"00VOL\r", vol(1.0, ">")), (b"00MLH8\r", ack(">")), (b"00VOL\r", vol(1.1, ">"))
    )
    await driver.read_status()
    await driver.set_rate(8.0)
    assert (await driver.read_delivered()).infused_ml == pytest.approx(1.1)
    t.done()


async def test_stall_is_a_status_not_an_exception() -> None:
    driver, t = await opened((b"00VOL\r", vol(3.0, "*")))
    status = await driver.read_status()
    assert (status.state, status.alarm) == (PumpState.ALARM, AlarmReason.STALL)
    t.done()


async def test_segment_with_emulated_pause_and_resume() -> None:
    """The supervisor's sequence: clear, rate, target, start, polls, pause, resume, completion.
    VOL is per run (RUN resets it): the driver carries the first run's volume and re-sends the
    remaining target."""
    driver, t = await opened(
        (b"00CLV\r", ack()),
        (b"00MLH7\r", ack()),
        (b"00MLT28\r", ack()),
        (b"00VOL\r", vol(0)),  # start: nothing to carry
        (b"00RUN\r", ack(">")),
        (b"00VOL\r", vol(3.4567, ">")),  # poll: one exchange
        (b"00VOL\r", vol(3.5, ">")),  # pause: status first
        (b"00STP\r", ack(":")),
        (b"00VOL\r", vol(3.5)),  # poll while paused
        (b"00VOL\r", vol(3.5)),  # resume: carry 3.5 mL
        (b"00CLV\r", ack()),
        (b"00MLT24.5\r", ack()),
        (b"00RUN\r", ack(">")),
        (b"00VOL\r", vol(24.5)),  # target reached: the pump stopped itself
    )
    await driver.clear_counters()
    await driver.set_rate(7.0)
    await driver.set_target_volume(28.0)
    await driver.start()
    status, delivered = await driver.read_poll()
    assert status.state is PumpState.RUNNING
    assert delivered.infused_ml == pytest.approx(3.4567)
    await driver.pause()
    assert driver.paused
    status, delivered = await driver.read_poll()
    assert status.state is PumpState.PAUSED
    assert delivered.infused_ml == pytest.approx(3.5)
    await driver.start()
    assert not driver.paused and driver.carried_ml == pytest.approx(3.5)
    status, delivered = await driver.read_poll()
    assert status.state is PumpState.STOPPED
    assert delivered.infused_ml == pytest.approx(28.0)
    t.done()


async def test_resume_rounds_the_remaining_target_to_five_characters() -> None:
    driver, t = await opened(
        (b"00MLT28\r", ack()),
        (b"00VOL\r", vol(3.4567)),
        (b"00CLV\r", ack()),
        (b"00MLT24.54\r", ack()),  # 24.5433 -> 24.54 (within the 0.01 mL resolution)
        (b"00RUN\r", ack(">")),
    )
    await driver.set_target_volume(28.0)
    await driver.start()
    t.done()


async def test_start_when_target_already_reached_does_not_run() -> None:
    driver, t = await opened((b"00MLT5\r", ack()), (b"00VOL\r", vol(5.0)), (b"00CLV\r", ack()))
    await driver.set_target_volume(5.0)
    await driver.start()
    assert driver.carried_ml == 5.0 and b"00RUN\r" not in t.sent
    t.done()


async def test_start_when_already_running_sends_no_run() -> None:
    driver, t = await opened((b"00VOL\r", vol(1.0, ">")))
    await driver.start()
    t.done()


async def test_start_reverses_a_pump11_set_to_refill() -> None:
    driver, t = await opened((b"00VOL\r", vol(0)), (b"00RUN\r", ack("<")), (b"00REV\r", ack(">")))
    await driver.start()
    t.done()


async def test_start_stops_a_pump_that_will_not_infuse() -> None:
    driver, t = await opened(
        (b"00VOL\r", vol(0)),
        (b"00RUN\r", ack("<")),
        (b"00REV\r", ack("<")),
        (b"00STP\r", ack(":")),
    )
    with pytest.raises(PumpError, match="infuse"):
        await driver.start()
    t.done()


async def test_start_into_a_stall_is_an_alarm() -> None:
    driver, t = await opened((b"00VOL\r", vol(0)), (b"00RUN\r", ack("*")))
    with pytest.raises(PumpAlarm) as info:
        await driver.start()
    assert info.value.reason is AlarmReason.STALL
    t.done()


async def test_phd2000_stop_answers_star_which_is_not_a_stall() -> None:
    driver, t = await opened(
        (b"00VOL\r", b"\r\n  0.0000\r\n\r0:"),
        (b"00RUN\r", b"\r\n\r0>"),
        (b"00STP\r", b"\r\n\r0*"),
        (b"00VOL\r", b"\r\n  0.2000\r\n\r0*"),
        (b"00VOL\r", b"\r\n  0.2000\r\n\r0:"),  # start: carry 0.2
        (b"00CLV\r", b"\r\n\r0:"),
        (b"00RUN\r", b"\r\n\r0>"),
        (b"00VOL\r", b"\r\n  0.1000\r\n\r0*"),  # running, then '*': a real stall
        ver=PHD_VER,
    )
    await driver.start()
    await driver.stop()
    assert (await driver.read_status()).state is PumpState.STOPPED
    await driver.start()
    status, delivered = await driver.read_poll()
    assert (status.state, status.alarm) == (PumpState.ALARM, AlarmReason.STALL)
    assert delivered.infused_ml == pytest.approx(0.3)
    t.done()


async def test_stop_is_idempotent_and_bounded() -> None:
    driver, t = await opened((b"00STP\r", ack(":")), (b"00STP\r", data("NA")))
    await driver.stop()
    await driver.stop()
    t.expect(*[(b"00STP\r", ack(">"))] * 3)
    with pytest.raises(PumpError, match="after 3 STP"):
        await driver.stop()
    t.done()


async def test_pause_when_not_running_is_a_no_op() -> None:
    driver, t = await opened((b"00VOL\r", vol(0)))
    await driver.pause()
    assert not driver.paused
    t.done()


async def test_clear_counters_drops_carried_volume() -> None:
    driver, t = await opened(
        (b"00VOL\r", vol(2.0)), (b"00CLV\r", ack()), (b"00RUN\r", ack(">")), (b"00CLV\r", ack())
    )
    await driver.start()
    assert driver.carried_ml == 2.0
    await driver.clear_counters()
    assert driver.carried_ml == 0.0
    t.done()


async def test_command_is_never_resent_after_a_timeout() -> None:
    driver, t = await opened((b"00MLH7\r", timeout()))
    with pytest.raises(PumpTimeout):
        await driver.set_rate(7.0)
    assert t.sent.count(b"00MLH7\r") == 1
    t.done()


async def test_query_is_retried_after_garbled_number() -> None:
    driver, t = await opened(
        (b"00VOL\r", data("  1.2.34")), (b"00VOL\r", timeout()), (b"00VOL\r", vol(1.25))
    )
    assert (await driver.read_delivered()).infused_ml == 1.25
    t.done()


async def test_addressed_pump_on_a_chain() -> None:
    driver, t = await opened(
        (b"42VOL\r", vol(0.5, ">", "42")), address=42, ver=data("PUMP11V2.0", ":", "42")
    )
    assert (await driver.read_status()).running
    t.done()
