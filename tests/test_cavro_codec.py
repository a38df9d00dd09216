"""Cavro command set, driver side: DT and OEM frames byte for byte from the XCalibur manual
(733085-B §3.2), the status byte (Table 3-9), the quantizer (increments and integer top speeds)
and the dispense-and-refill bookkeeping."""

from __future__ import annotations

import contextlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pumpctl.drivers.base import ProtocolError
from pumpctl.drivers.cavro_codec import (
    checksum,
    dt_frame_length,
    encode_dt,
    encode_oem,
    oem_frame_length,
    parse_dt,
    parse_oem,
)
from pumpctl.drivers.cavro_cycles import CycleBooks, PumpString, build_string
from pumpctl.families import NotRepresentable, quantizer
from pumpctl.families.cavro import PSD6, XCALIBUR, CavroQuantizer

# --------------------------------------------------------------------------- framing


def test_dt_requests_are_slash_address_command_cr() -> None:
    assert encode_dt(0, "ZR") == bytes.fromhex("2f 31 5a 52 0d")  # XC §3.2.2: /1ZR<CR>
    assert encode_dt(0, "Q") == b"/1Q\r"
    assert encode_dt(14, "?6") == b"/??6\r"  # switch E is `?`
    for bad in (-1, 15):
        with pytest.raises(ValueError, match=r"0\.\.14"):
            encode_dt(bad, "Q")
    with pytest.raises(ValueError):
        encode_dt(0, "Z R")


def test_oem_blocks_xor_stx_to_etx_and_set_the_repeat_bit_on_a_resend() -> None:
    # XC §3.2.1 Table 3-3: STX, address, sequence 0011RSSS, data, ETX, checksum
    assert encode_oem(0, 1, "ZR") == bytes.fromhex("02 31 31 5a 52 03 09")
    assert encode_oem(0, 1, "ZR", repeat=True) == bytes.fromhex("02 31 39 5a 52 03 01")
    assert encode_oem(0, 2, "Q") == bytes.fromhex("02 31 32 51 03 53")
    assert encode_oem(0, 1, "?") == bytes.fromhex("02 31 31 3f 03 3e")
    assert checksum(bytes.fromhex("02 5f 31 5a 52 03")) == 0x67  # ZR to all pumps (`_`)
    with pytest.raises(ValueError, match=r"1\.\.7"):
        encode_oem(0, 0, "Q")


@pytest.mark.parametrize(
    ("raw", "status", "data", "ready", "error"),
    [
        (bytes.fromhex("02 30 60 03 51"), 0x60, "", True, 0),
        (bytes.fromhex("02 30 40 03 71"), 0x40, "", False, 0),
        (bytes.fromhex("02 30 60 33 30 30 30 03 52"), 0x60, "3000", True, 0),
        (bytes.fromhex("02 30 62 03 53"), 0x62, "", True, 2),
        (bytes.fromhex("02 30 6f 03 5e"), 0x6F, "", True, 15),
    ],
)
def test_oem_answers(raw: bytes, status: int, data: str, ready: bool, error: int) -> None:
    assert oem_frame_length(raw + b"\x02\x30") == len(raw)
    for cut in range(len(raw)):
        assert oem_frame_length(raw[:cut]) is None
    reply = parse_oem(raw)
    assert (reply.status, reply.data, reply.ready, reply.error) == (status, data, ready, error)


def test_an_oem_answer_with_a_wrong_checksum_is_never_acted_on() -> None:
    with pytest.raises(ProtocolError, match="checksum"):
        parse_oem(bytes.fromhex("02 30 60 03 50"))


@pytest.mark.parametrize(
    ("raw", "ready", "error", "data"),
    [
        (b"/0`\x03\r\n", True, 0, ""),  # XC §3.2.2 examples
        (b"/0@\x03\r\n", False, 0, ""),
        (b"/0i\x03\r\n", True, 9, ""),  # ready, plunger overload
        (b"/0`3000\x03\r\n", True, 0, "3000"),
        (b"/0`i\x03\r\n", True, 0, "i"),
        (b"/0b\x03\r\n", True, 2, ""),
        (b"\xff/0`\x03\r\n", True, 0, ""),  # a line-sync byte before it (Centris U38)
    ],
)
def test_dt_answers(raw: bytes, ready: bool, error: int, data: str) -> None:
    assert dt_frame_length(raw + b"/0") == len(raw)
    for cut in range(len(raw)):
        assert dt_frame_length(raw[:cut]) is None
    reply = parse_dt(raw)
    assert (reply.ready, reply.error, reply.data) == (ready, error, data)


@pytest.mark.parametrize("raw", [b"/0 \x03\r\n", b"/0\x80\x03\r\n", b"/0p\x03\r\n", b"0`\x03\r\n"])
def test_a_bad_status_byte_or_frame_is_a_protocol_error(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_dt(raw)


@given(st.binary(max_size=40))
def test_parsers_only_ever_raise_protocol_errors(raw: bytes) -> None:
    for parse in (parse_dt, parse_oem):
        with contextlib.suppress(ProtocolError):
            parse(raw)


# --------------------------------------------------------------------------- quantization


def test_a_volume_is_whole_fine_increments_rounded_down() -> None:
    q = CavroQuantizer(XCALIBUR, 1.0)  # 24000 increments a stroke (N1)
    assert q.step_ml == pytest.approx(1 / 24000)
    assert q.volume_setting(12.25).steps == 294000
    assert q.floor_volume_ml(0.5) == 0.5
    assert q.volume_setting(1 / 24000 * 2.9).steps == 2  # down, never up
    with pytest.raises(NotRepresentable):
        q.floor_volume_ml(1e-6)


def test_a_rate_is_the_average_of_a_dispense_and_refill_cycle_at_an_integer_speed() -> None:
    q = CavroQuantizer(XCALIBUR, 1.0)
    # a cycle: 6000 pulses at V, the refill at V3000 (2 s), two valve moves and the poll (1 s)
    assert XCALIBUR.dead_time_s == pytest.approx(3.0)
    setting = q.rate_setting(73.5)
    assert setting.speed == 130
    assert setting.value_ml_per_h == pytest.approx(3600 / (6000 / 130 + 3.0))
    assert setting.value_ml_per_h <= 73.5 < q.average_ml_per_h(131)
    assert q.dispense_ml_per_h(130) == pytest.approx(78.0)  # faster than the average
    with pytest.raises(NotRepresentable, match="below"):
        q.rate_setting(1.0)  # V5 is the slowest: 3600 / (1200 + 3) mL/h
    with pytest.raises(NotRepresentable, match="above"):
        q.rate_setting(2000.0)


@given(
    rate=st.floats(3.0, 1000.0),
    stroke=st.sampled_from(XCALIBUR.syringes_ml[3:]),
)
def test_quantized_rates_and_volumes_are_fixed_points_never_above(
    rate: float, stroke: float
) -> None:
    q = CavroQuantizer(XCALIBUR, stroke)
    try:
        r = q.floor_rate_ml_per_h(rate * stroke)
    except NotRepresentable:
        return
    assert r <= rate * stroke * (1 + 1e-12)
    assert q.floor_rate_ml_per_h(r) == r
    v = q.floor_volume_ml(rate / 7)
    assert v <= rate / 7 and q.floor_volume_ml(v) == v


def test_the_family_quantizer_follows_the_stroke_volume_and_model() -> None:
    q = quantizer("hamilton-psd6", ml_per_rev=2.5)
    assert isinstance(q, CavroQuantizer) and q.mechanics is PSD6
    assert q.step_ml == pytest.approx(2.5 / 48000)
    assert q.wire_rate(60.0).startswith("V")
    with pytest.raises(ValueError, match="stroke volume"):
        quantizer("tecan-xcalibur", inner_diameter_mm=14.5)


# --------------------------------------------------------------------------- the cycles


def test_each_string_dispenses_then_refills_and_ends_at_the_output() -> None:
    text = build_string(start_steps=24000, dispense_steps=24000, refill_steps=24000, speed=11,
                        refill_speed=3000, output="O", reservoir="I")  # fmt: skip
    assert text == "OV11D24000IV3000P24000OR"
    first = build_string(start_steps=12000, dispense_steps=12000, refill_steps=0, speed=105,
                         refill_speed=3000, output="O", reservoir="I", fill_steps=12000,
                         init="Z0")  # fmt: skip
    assert first == "Z0IV3000P12000OV105D12000R"
    with pytest.raises(ValueError):
        build_string(start_steps=10, dispense_steps=11, refill_steps=0, speed=5,
                     refill_speed=5, output="O", reservoir="I")  # fmt: skip


def test_the_books_fill_an_empty_syringe_dispense_up_to_the_target_and_refill_what_is_left() -> (
    None
):
    books = CycleBooks(full_steps=24000, target_steps=60000)
    assert books.next_string(0) == (24000, 24000, 24000)  # fill, dispense, refill
    books.done_steps = 48000
    assert books.next_string(24000) == (0, 12000, 0)  # the last: no refill beyond the target
    books.done_steps = 60000
    assert books.next_string(12000) is None
    books = CycleBooks(full_steps=24000, target_steps=None)  # until stopped
    assert books.next_string(5000) == (0, 5000, 24000)


@pytest.mark.parametrize(
    ("position", "at_output", "ready", "seen_output", "delivered"),
    [
        (24000, True, False, True, 0),  # the valve turns to the output, nothing moved yet
        (20000, True, False, True, 4000),  # dispensing
        (0, False, False, True, 24000),  # refilling after the dispense: all of it is out
        (9000, False, False, True, 24000),
        (24000, False, False, False, 0),  # still at the reservoir before the first valve move
        (24000, True, True, True, 24000),  # done
    ],
)
def test_what_a_running_string_has_delivered_comes_from_position_valve_and_q(
    position: int, at_output: bool, ready: bool, seen_output: bool, delivered: int
) -> None:
    s = PumpString("OV11D24000IV3000P24000OR", 24000, 24000, 24000, seen_output)
    assert s.delivered_steps(position, at_output, ready) == delivered


def test_a_terminated_string_counts_by_position_not_by_ready_and_a_lost_pump_counts_nothing() -> (
    None
):
    books = CycleBooks(full_steps=24000, target_steps=48000)
    books.running = PumpString("OV11D24000IV3000P24000OR", 24000, 24000, 24000, True)
    books.running.terminated = True
    books.finish((15000, True, True))
    assert books.done_steps == 9000 and books.running is None
    assert books.delivered_steps(None) == 9000
    books.lost = True
    assert books.delivered_steps((0, True, True)) == 0
    assert math.isclose(books.full_steps / 24000, 1.0)


def test_a_string_stopped_after_its_refill_counts_its_whole_dispense() -> None:
    """`T` during the string's last valve move (refilled, back at the output): the plunger is
    up again, which a dispense never does, so all of `n` went out, not `start - position`
    (0 here). Found by a TCI phase ending on a PSD/6 at that moment: the books lost 1 mL and
    the next reading looked like a counter reset."""
    seen = PumpString("OV11D24000IV3000P24000OR", 24000, 24000, 24000, True)
    assert seen.delivered_steps(6000, True, False) == 18000  # dispensing, read at 1 s polls
    seen.terminated = True
    assert seen.delivered_steps(24000, True, True) == 24000
    # never read while dispensing: still above where the dispense started is impossible
    unseen = PumpString("OV11D12000IV3000P18000OR", 12000, 12000, 18000, True)
    unseen.terminated = True
    assert unseen.delivered_steps(18000, True, True) == 12000
    # and the reading after a refill seen at the reservoir stays at n
    books = CycleBooks(full_steps=24000, target_steps=None)
    books.running = PumpString("OV11D24000IV3000P24000OR", 24000, 24000, 24000, True)
    assert books.delivered_steps((3000, True, False)) == 21000
    assert books.delivered_steps((10000, False, False)) == 24000
    books.running.terminated = True
    books.finish((24000, True, True))
    assert books.done_steps == 24000


def _dispensing() -> PumpString:
    """`D24000` from 24000 then `P24000`, read at the output while the plunger goes down."""
    s = PumpString("OV11D24000IV3000P24000OR", 24000, 24000, 24000, True)
    assert s.delivered_steps(16000, True, False) == 8000
    assert s.delivered_steps(15562, True, False) == 8438
    return s


def test_SR20_one_garbled_position_costs_one_reading_not_the_strings_books() -> None:
    """SR20 on a link without checksums: 15562 read as 05562 once. The old books kept 5562 as
    the lowest position, so the true 15500 that followed looked like the plunger back up after
    its refill: the whole string counted as out."""
    s = _dispensing()
    assert s.delivered_steps(5562, True, False) == 18438  # wrong, once: the supervisor re-reads
    assert s.delivered_steps(15500, True, False) == 8500
    assert s.delivered_steps(15400, True, False) == 8600
    assert not s.dispensed
    s = _dispensing()
    assert s.delivered_steps(95562, True, False) == 24000  # read above the low: once only
    assert s.delivered_steps(15500, True, False) == 8500
    assert not s.dispensed


def test_SR20_one_garbled_valve_letter_latches_nothing() -> None:
    s = _dispensing()
    assert s.delivered_steps(15500, False, False) == 24000  # "at the reservoir", once
    assert s.delivered_steps(15400, True, False) == 8600
    assert not s.dispensed
    s = _dispensing()
    assert s.delivered_steps(15500, False, False) == 24000
    assert s.delivered_steps(15400, True, False) == 8600
    assert s.delivered_steps(15300, False, False) == 24000  # twice, but not in a row
    assert s.delivered_steps(15200, True, False) == 8800
    assert not s.dispensed


def test_the_end_of_a_dispense_read_twice_is_kept() -> None:
    s = _dispensing()
    assert s.delivered_steps(2000, False, False) == 24000  # refilling
    assert s.delivered_steps(9000, False, False) == 24000
    assert s.dispensed  # kept from here on, whatever one later reading says
    assert s.delivered_steps(5, True, False) == 24000
    # the refill seen once at the reservoir between two polls, then back at the output
    sparse = _dispensing()
    assert sparse.delivered_steps(14000, True, False) == 10000
    assert sparse.delivered_steps(3000, False, False) == 24000
    assert sparse.delivered_steps(14500, True, False) == 24000  # P<m> back above the low
    assert sparse.delivered_steps(14500, True, False) == 24000
    assert sparse.dispensed
