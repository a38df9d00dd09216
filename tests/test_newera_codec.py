"""NE-1000 codec: golden bytes from the manual, number format, replies, fuzzing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pumpctl.drivers.base import AlarmReason, CommandRejected, ProtocolError, PumpAlarm
from pumpctl.drivers.newera import (
    NEReply,
    RateUnit,
    any_frame_length,
    basic_frame_length,
    check_reply,
    choose_rate_unit,
    crc16_xmodem,
    encode_basic,
    encode_rate,
    encode_safe,
    format_number,
    parse_dispensed,
    parse_reply,
    safe_frame_length,
    volume_unit_for_diameter,
)

STX, ETX = b"\x02", b"\x03"


def basic(text: str) -> bytes:
    return STX + text.encode() + ETX


def safe(text: str) -> bytes:
    data = text.encode()
    return STX + bytes([len(data) + 4]) + data + crc16_xmodem(data).to_bytes(2, "big") + ETX


# --------------------------------------------------------------------------- framing


def test_manual_saf0_packet() -> None:
    assert encode_safe(None, "SAF0") == bytes.fromhex("02 08 53 41 46 30 55 43 03")
    assert crc16_xmodem(b"SAF0") == 0x5543


def test_crc_is_xmodem_not_ccitt_false() -> None:
    assert crc16_xmodem(b"123456789") == 0x31C3  # the XMODEM check value (CCITT-FALSE: 0x29B1)
    assert crc16_xmodem(b"") == 0


@pytest.mark.parametrize(
    ("address", "command", "wire"),
    [
        (0, "RAT5MM", b"0RAT5MM\r"),
        (0, " rat 5 mm", b"0RAT5MM\r"),
        (12, "vol ul", b"12VOLUL\r"),
        (99, "", b"99\r"),
        (None, "ver", b"VER\r"),
        (3, "dia\t26.59", b"3DIA26.59\r"),
    ],
)
def test_encode_basic(address: int | None, command: str, wire: bytes) -> None:
    assert encode_basic(address, command) == wire


def test_encode_safe_with_address() -> None:
    assert encode_safe(7, "run") == safe("7RUN")
    assert encode_safe(7, "run")[1] == 8


@pytest.mark.parametrize("address", [-1, 100, 1000])
def test_address_range(address: int) -> None:
    with pytest.raises(ValueError, match=r"0\.\.99"):
        encode_basic(address, "RUN")
    with pytest.raises(ValueError, match=r"0\.\.99"):
        encode_safe(address, "RUN")


def test_non_ascii_command_refused() -> None:
    with pytest.raises(ValueError):
        encode_basic(0, "RAT5µL")


@given(st.integers(0, 99), st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.", max_size=40))
def test_safe_round_trip(address: int, command: str) -> None:
    packet = encode_safe(address, command)
    assert safe_frame_length(packet + b"junk") == len(packet)
    data = packet[2:-3]
    assert data == f"{address}{command}".encode()
    assert int.from_bytes(packet[-3:-1], "big") == crc16_xmodem(data)


def test_basic_framer() -> None:
    assert basic_frame_length(b"") is None
    assert basic_frame_length(b"\x0200") is None
    assert basic_frame_length(b"\x0200S\x03\x02") == 5
    assert basic_frame_length(b"xx\x0200S\x03") == 2  # garbage up to the next STX
    assert basic_frame_length(b"\x02" + b"0" * 200) == 201  # no ETX in sight: garbage


def test_safe_framer() -> None:
    packet = safe("00S")
    for cut in range(len(packet)):
        assert safe_frame_length(packet[:cut]) is None
    assert safe_frame_length(packet) == len(packet)
    assert safe_frame_length(b"\x02\x01") == 2  # LEN below the minimum: garbage
    assert safe_frame_length(b"Z\x02") == 1


def test_any_framer_tells_framings_apart() -> None:
    assert any_frame_length(basic("00S") + b"x") == 5
    assert any_frame_length(safe("00S") + b"x") == len(safe("00S"))
    assert any_frame_length(b"\x02") is None


# --------------------------------------------------------------------------- replies


@pytest.mark.parametrize("status", list("IWSPTUX"))
@pytest.mark.parametrize("is_safe", [False, True])
def test_every_status(status: str, is_safe: bool) -> None:
    raw = (safe if is_safe else basic)(f"04{status}")
    assert parse_reply(raw, is_safe, address=4) == NEReply(
        4, status, safe=is_safe, text=f"04{status}"
    )


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("R", AlarmReason.RESET),
        ("S", AlarmReason.STALL),
        ("T", AlarmReason.LINK_TIMEOUT),
        ("E", AlarmReason.PROGRAM_ERROR),
        ("O", AlarmReason.OUT_OF_RANGE),
    ],
)
@pytest.mark.parametrize("is_safe", [False, True])
def test_every_alarm(code: str, reason: AlarmReason, is_safe: bool) -> None:
    reply = parse_reply((safe if is_safe else basic)(f"00A?{code}"), is_safe)
    assert (reply.status, reply.alarm) == ("A", reason)
    with pytest.raises(PumpAlarm) as info:
        check_reply(reply, command="RUN")
    assert info.value.reason is reason
    assert check_reply(reply, alarms=False) is reply


@pytest.mark.parametrize("code", ["?", "?NA", "?OOR", "?COM", "?IGN"])
def test_every_error_basic(code: str) -> None:
    reply = parse_reply(basic(f"00S{code}"), False)
    assert (reply.status, reply.error, reply.data) == ("S", code, "")
    with pytest.raises(CommandRejected) as info:
        check_reply(reply, command="RAT5MH")
    assert (info.value.code, info.value.command) == (code, "RAT5MH")
    assert check_reply(reply, errors=False) is reply


def test_com_in_safe_mode_is_a_garbled_exchange() -> None:
    reply = parse_reply(safe("00S?COM"), True)
    with pytest.raises(ProtocolError, match="COM"):
        check_reply(reply, errors=False)
    with pytest.raises(CommandRejected):  # other codes stay rejections in safe mode
        check_reply(parse_reply(safe("00I?OOR"), True))


def test_reply_data() -> None:
    assert parse_reply(basic("00SNE1000V3.928"), False).data == "NE1000V3.928"
    assert parse_reply(safe("12I5.000MH"), True, address=12).data == "5.000MH"


@pytest.mark.parametrize(
    ("raw", "is_safe", "message"),
    [
        (b"00S\x03", False, "STX"),
        (b"\x0200S", False, "STX"),
        (b"\x0200Q\x03", False, "status"),
        (b"\x020S\x03", False, "address"),
        (b"\x02AB\x03", False, "address"),
        (b"\x0200S?XYZ\x03", False, "error"),
        (b"\x0200A?Z\x03", False, "alarm"),
        (b"\x0200A?R1\x03", False, "alarm"),
        (b"\x0200S\xff\x03", False, "non-printable"),
        (b"\x0201S\x03", False, "address 1"),
        (safe("00S")[:-3] + b"\x00\x00\x03", True, "CRC"),
        (b"\x02\x09" + safe("00S")[2:], True, "LEN"),
        (basic("00S"), True, "LEN"),
    ],
)
def test_malformed_replies(raw: bytes, is_safe: bool, message: str) -> None:
    with pytest.raises(ProtocolError, match=message) as info:
        parse_reply(raw, is_safe, address=0)
    assert info.value.raw == raw


def test_dispensed() -> None:
    v = parse_dispensed("I1.234W0.500UL")
    assert (v.infused_ml, v.withdrawn_ml) == pytest.approx((0.001234, 0.0005))
    v = parse_dispensed("I12.50W0.000ML")
    assert (v.infused_ml, v.withdrawn_ml) == (12.5, 0.0)
    assert parse_dispensed("I0W0ML").infused_ml == 0.0
    for bad in ("I1.0W2.0", "1.0W2.0ML", "I1.0W2.0KL", "", "I.W.ML"):
        with pytest.raises(ProtocolError):
            parse_dispensed(bad)


_OK = (ProtocolError, PumpAlarm, CommandRejected)


def _decode(raw: bytes, is_safe: bool) -> None:
    check_reply(parse_reply(raw, is_safe, address=0))


@given(st.binary(max_size=40), st.booleans())
def test_random_bytes_raise_only_typed_errors(raw: bytes, is_safe: bool) -> None:
    with contextlib.suppress(_OK):
        _decode(raw, is_safe)


_VALID = [basic("00S"), basic("00I5.000MH"), basic("00A?R"), safe("00P"), safe("00SI1.2W0.0UL")]


@given(
    st.sampled_from(_VALID),
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_mutated_replies_raise_only_typed_errors(
    valid: bytes, edits: list[tuple[int, int]]
) -> None:
    raw = bytearray(valid)
    for pos, value in edits:
        raw[pos % len(raw)] = value
    for is_safe in (False, True):
        with contextlib.suppress(_OK):
            _decode(bytes(raw), is_safe)


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (5, "5"),
        (5.0, "5"),
        (0.1, "0.1"),
        (1.2345, "1.234"),  # ties to even
        (1.2355, "1.236"),
        (26.59, "26.59"),
        (123.456, "123.5"),
        (1234.56, "1235"),
        (9999.4, "9999"),
        (9.9996, "10"),
        (99.996, "100"),
        (0.0004, "0"),
        (0.0005, "0"),
        (0.0006, "0.001"),
        (1 / 3, "0.333"),
    ],
)
def test_number_format(value: float, text: str) -> None:
    assert format_number(value) == text


@pytest.mark.parametrize("value", [9999.5, 10000, 1e300, -1, float("nan"), float("inf")])
def test_number_format_refuses(value: float) -> None:
    with pytest.raises(ValueError):
        format_number(value)


@given(st.floats(0, 9999.49, allow_nan=False))
def test_number_format_stays_in_format_and_within_half_a_step(value: float) -> None:
    text = format_number(value)
    decimals = len(text.partition(".")[2])
    assert decimals <= 3
    assert abs(float(text) - value) <= 0.5 * 10.0**-decimals * (1 + 1e-9) + 1e-12
    assert len(text.partition(".")[0].lstrip("0")) + decimals <= 4


@pytest.mark.parametrize(
    ("rate", "unit", "text"),
    [
        (5.0, RateUnit.MH, "5"),
        (100.0, RateUnit.MH, "100"),
        (1699.0, RateUnit.MH, "1699"),
        (0.01, RateUnit.MH, "0.01"),
        (1.2345, RateUnit.UM, "20.57"),  # 1.2342 mL/h beats MH 1.234; both rounded down
        (0.00073, RateUnit.UH, "0.73"),  # NE-1000 minimum, 1 mL syringe
        (0.0123456, RateUnit.UH, "12.34"),
        (25000.0, RateUnit.MM, "416.6"),  # 416.67 mL/min: never rounded up to 416.7
        (73.5, RateUnit.MH, "73.5"),  # representable: sent exactly
    ],
)
def test_rate_unit_choice(rate: float, unit: RateUnit, text: str) -> None:
    setting = choose_rate_unit(rate)
    assert (setting.unit, setting.text) == (unit, text)


def test_rate_unit_keeps_room_for_the_syringe_maximum() -> None:
    # 3 mL/h is exact in UH (3000) and MH (3); MH wins by preference, and by headroom it would
    # anyway. 0.5 mL/h: UH "500" and MH "0.5" both exact; with a 54 mL/h ceiling UH cannot go there.
    assert choose_rate_unit(0.5, max_rate_ml_per_h=54.0).unit is RateUnit.MH
    # 1.2345 mL/h: UM is most precise but cannot reach 1000 mL/h; MH (within 0.05 %) can.
    setting = choose_rate_unit(1.2345, max_rate_ml_per_h=1000.0)
    assert (setting.unit, setting.text) == (RateUnit.MH, "1.234")


@given(st.floats(1e-3, 5e5, allow_nan=False), st.sampled_from([None, 17.13, 1699.0]))
def test_rate_choice_never_exceeds_the_request_and_is_a_fixed_point(
    rate: float, max_rate: float | None
) -> None:
    setting = choose_rate_unit(rate, max_rate_ml_per_h=max_rate)
    # at most one step of a 4-digit number below (0.1 %); above only by float noise
    assert -rate * 1e-9 <= rate - setting.rate_ml_per_h <= rate * 1e-3
    # what the plan is quantized to is what the driver sends for it, unchanged
    assert choose_rate_unit(setting.rate_ml_per_h, max_rate_ml_per_h=max_rate) == setting


def test_rate_unit_refuses() -> None:
    for bad in (0.0, -1.0, float("nan"), 1e-9, 1e9, 1e300):
        with pytest.raises(ValueError):
            choose_rate_unit(bad)


def test_encode_rate_in_fixed_unit() -> None:
    assert encode_rate(12.0, RateUnit.MH).text == "12"
    assert encode_rate(12.0, RateUnit.UM) == (RateUnit.UM, "200", 12.0)
    with pytest.raises(ValueError):
        encode_rate(12.0, RateUnit.UH)  # 12000 µL/h does not fit 4 digits


@pytest.mark.parametrize(
    ("diameter", "unit"),
    [(4.699, "UL"), (14.0, "UL"), (14.004, "UL"), (14.01, "ML"), (26.59, "ML")],
)
def test_volume_units_follow_diameter(diameter: float, unit: str) -> None:
    assert volume_unit_for_diameter(diameter) == unit


@given(st.floats())
def test_any_float_formats_or_raises_value_error(value: float) -> None:
    try:
        text = format_number(value)
    except ValueError:
        assert not 0 <= value < 9999.5 or value != value
    else:
        assert 0 <= float(text) <= 9999
    with contextlib.suppress(ValueError):
        choose_rate_unit(value, max_rate_ml_per_h=abs(value) * 10 if value == value else None)


def test_a_repeated_reply_is_decoded_once_and_a_bad_one_every_time() -> None:
    """`parse_reply` and `parse_dispensed` keep what they decoded (a slow drip's polls repeat
    the same bytes): the same object again, from a bytearray too; a corrupted reply is never
    kept, it raises each time."""
    raw = safe("00II12.34W0.000ML")
    first = parse_reply(raw, True, address=0)
    assert parse_reply(bytearray(raw), True, address=0) is first
    assert first == NEReply(0, "I", data="I12.34W0.000ML", safe=True, text="00II12.34W0.000ML")
    assert parse_dispensed(first.data) is parse_dispensed("I12.34W0.000ML")
    with pytest.raises(ProtocolError, match="address 0, expected 1"):
        parse_reply(raw, True, address=1)  # the address is part of what is kept
    bad = raw[:-3] + bytes((raw[-3] ^ 0xFF,)) + raw[-2:]
    for _ in range(2):
        with pytest.raises(ProtocolError, match="CRC"):
            parse_reply(bad, True, address=0)
    assert parse_dispensed("I12.5W0.25UL").infused_ml == pytest.approx(0.0125)


@pytest.mark.parametrize("byte", [0x00, 0x09, 0x1F, 0x7F, 0x80, 0xFF])
def test_a_reply_with_any_byte_outside_printable_ascii_is_malformed(byte: int) -> None:
    with pytest.raises(ProtocolError, match="non-printable"):
        parse_reply(basic("00S")[:-1] + bytes((byte,)) + ETX, False)
    assert parse_reply(basic("00S ~"), False).data == " ~"  # the two ends of the range
