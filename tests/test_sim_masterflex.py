"""Masterflex L/S emulation: exact bytes, the G0 and ENQ oddities, revolutions to go, several
drives on one link, a host that never reads, faults, and the in-memory transport."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pumpctl.clock import Clock, RealClock, run_with_clock
from pumpctl.simulator.devices.base import PumpSnapshot
from pumpctl.simulator.devices.masterflex import (
    MasterflexEmulation,
    PeristalticSnapshot,
    format_revs,
    format_speed,
)
from pumpctl.simulator.endpoints import InMemoryTransport, TcpEndpoint
from pumpctl.simulator.server import state_json

ACK, NAK = b"\x06", b"\x15"
SAFETY_S = 5.0  # generous; never decides pass or fail


def frame(text: str) -> bytes:
    return b"\x02" + text.encode() + b"\r"


def talk(emu: MasterflexEmulation, text: str) -> bytes:
    emu.feed(frame(text))
    return emu.read()


def remote(*numbers: int, ml_per_rev: float = 0.8) -> MasterflexEmulation:
    """Drives that have been assigned their numbers (computer control)."""
    emu = MasterflexEmulation(numbers or (1,), ml_per_rev=ml_per_rev)
    for n in numbers or (1,):
        assert talk(emu, f"P{n:02d}") == ACK
    return emu


def framer(buf: bytes) -> int | None:
    """Masterflex reply length: one ACK/NAK byte, or STX ... CR."""
    if buf[:1] in (ACK, NAK) or buf[:1] != b"\x02":
        return 1
    end = buf.find(b"\r")
    return end + 1 if end >= 0 else None


# --------------------------------------------------------------------------- codec


@pytest.mark.parametrize(
    ("tenths", "clockwise", "text"),
    [(40, True, "+004.0"), (125, False, "-012.5"), (6000, True, "+600.0"), (0, True, "+000.0")],
)
def test_speed_format(tenths: int, clockwise: bool, text: str) -> None:
    assert format_speed(tenths, clockwise) == text


@pytest.mark.parametrize(
    ("revs", "text"),
    [(0.0, "00000.00"), (0.05, "00000.05"), (12.349, "00012.34"), (864000.0, "864000.00")],
)
def test_revolutions_are_truncated_to_hundredths(revs: float, text: str) -> None:
    assert format_revs(revs) == text
    assert format_revs(2.9999999999) == "00003.00"  # float noise is not a lost hundredth


def test_line_settings_are_4800_7o1_from_the_family_spec() -> None:
    emu = MasterflexEmulation()
    assert str(emu.uart_settings()) == "4800 7O1"


# --------------------------------------------------------------------------- startup


def test_enq_is_answered_only_at_startup() -> None:
    emu = MasterflexEmulation((1,))
    emu.feed(b"\x05")
    assert emu.read() == frame("P01")
    assert talk(emu, "P01") == ACK
    emu.feed(b"\x05")
    assert emu.read() == b""  # the oddity: a host must fall back to I
    assert talk(emu, "P01I") == frame("P01I1001")


def test_enq_on_a_chain_is_answered_by_the_first_drive_still_starting() -> None:
    emu = MasterflexEmulation((7, 3))
    emu.feed(b"\x05")
    assert emu.read() == frame("P07")
    talk(emu, "P07I")
    emu.feed(b"\x05")
    assert emu.read() == frame("P03")


def test_power_up_is_local_and_flagged() -> None:
    emu = MasterflexEmulation((1,))
    assert talk(emu, "P01I") == frame("P01I0011")  # local, clockwise, restarted, idle
    assert talk(emu, "P01S+100") == NAK  # local: motor commands refused
    assert talk(emu, "P01S") == frame("P01S+000.0")  # queries answer
    assert talk(emu, "P01H") == ACK  # halt is always accepted
    assert talk(emu, "P01R") == ACK
    assert talk(emu, "P01I") == frame("P01I1001")
    assert talk(emu, "P01S+100") == ACK
    assert talk(emu, "P01L") == ACK
    assert talk(emu, "P01I") == frame("P01I0001")


def test_number_assignment_takes_control() -> None:
    emu = MasterflexEmulation((1,))
    assert talk(emu, "P01") == ACK
    assert talk(emu, "P01I") == frame("P01I1001")


def test_enq_then_number_takes_control_as_pylabrobot_starts() -> None:
    """pylabrobot 0.2.2 `MasterflexBackend.setup()` sends `ENQ`, then `ENQ P02 CR` (no STX, no
    `R`), then motion commands with variable-width numbers; it never reads a reply."""
    emu = MasterflexEmulation((2,))
    emu.feed(b"\x05")
    emu.feed(b"\x05P02\r")
    assert emu.read() == frame("P02") + frame("P02") + ACK  # both ENQs, then the assignment
    assert talk(emu, "P02I") == frame("P02I1001")  # remote, clockwise, not restarted, idle
    assert talk(emu, "P02S+120G0") == NAK  # the documented G0 quirk: NAK, yet the motor runs
    snap = emu.snapshot()[2]
    assert (snap.running, snap.direction, snap.speed_rpm, snap.continuous) == (
        True, "infuse", 120.0, True,
    )  # fmt: skip
    assert talk(emu, "P02S-50G0") == NAK
    snap = emu.snapshot()[2]
    assert (snap.running, snap.direction, snap.speed_rpm) == (True, "withdraw", 50.0)
    assert talk(emu, "P02H") == ACK
    assert talk(emu, "P02V0.5G") == ACK  # a counted run: 0.5 rev at 50 rpm
    assert emu.snapshot()[2].revs_to_go == 0.5
    emu.advance(0.6)
    snap = emu.snapshot()[2]
    assert (snap.running, snap.revs_to_go, snap.target_ml) == (False, 0.0, 0.4)
    assert talk(emu, "P02V10GV2.35G") == NAK  # the second G while running: refused
    assert talk(emu, "P02H") == ACK


def test_only_a_bare_number_after_enq_is_an_assignment() -> None:
    emu = MasterflexEmulation((2,))
    emu.feed(b"\x05")
    assert emu.read() == frame("P02")
    emu.feed(b"P02S+100\r\x05P03\r")  # no STX: not a frame; P03 is nobody on this link
    assert emu.read() == frame("P02")  # only the second ENQ is answered
    assert talk(emu, "P02I") == frame("P02I0011")  # still local and flagged as restarted
    assert talk(emu, "P02S+100") == NAK


# --------------------------------------------------------------------------- commands


def test_speed_set_and_query() -> None:
    emu = remote()
    assert talk(emu, "P01S+4") == ACK
    assert talk(emu, "P01S") == frame("P01S+004.0")
    assert talk(emu, "P01S-12.5") == ACK
    assert talk(emu, "P01S") == frame("P01S-012.5")
    assert talk(emu, "P01I") == frame("P01I1101")
    assert talk(emu, "P01S+0600") == ACK
    assert talk(emu, "P01S+600.0") == ACK


@pytest.mark.parametrize(
    "command", ["P01S+600.1", "P01S+6001", "P01S100", "P01S+1.25", "P01S+12345", "P01S+"]
)
def test_bad_speeds_are_refused(command: str) -> None:
    emu = remote()
    assert talk(emu, command) == NAK
    assert talk(emu, "P01S") == frame("P01S+000.0")


def test_revolutions_to_go_and_status_digits() -> None:
    emu = remote()
    assert talk(emu, "P01V0.05") == ACK
    assert talk(emu, "P01E") == frame("P01E00000.05")
    assert talk(emu, "P01I") == frame("P01I1002")
    assert talk(emu, "P01V99999.99") == ACK
    assert talk(emu, "P01E") == frame("P01E99999.99")
    for bad in ("P01V100000", "P01V1.234", "P01V", "P01V.5"):
        assert talk(emu, bad) == NAK, bad
    assert talk(emu, "P01Z") == ACK
    assert talk(emu, "P01E") == frame("P01E00000.00")
    assert talk(emu, "P01I") == frame("P01I1001")


def test_counted_run_stops_exactly_on_its_revolutions() -> None:
    emu = remote()
    assert talk(emu, "P01S+60.0") == ACK
    assert talk(emu, "P01V10") == ACK
    assert talk(emu, "P01G") == ACK
    assert talk(emu, "P01I") == frame("P01I1003")
    emu.advance(4.0)
    assert talk(emu, "P01C") == frame("P01C00004.00")
    assert talk(emu, "P01E") == frame("P01E00006.00")
    emu.advance(100.0)
    assert talk(emu, "P01CEI") == frame("P01C00010.00") + frame("P01E00000.00") + frame("P01I1001")
    snap = emu.snapshot()[1]
    assert isinstance(snap, PeristalticSnapshot)
    assert snap.delivered_ml == pytest.approx(8.0, abs=1e-9)
    assert snap.running is False
    assert snap.target_ml == pytest.approx(8.0)


def test_halt_keeps_revolutions_to_go_and_go_resumes_them() -> None:
    emu = remote()
    talk(emu, "P01S+30")
    talk(emu, "P01V5")
    assert talk(emu, "P01G") == ACK
    emu.advance(4.0)  # 2 revolutions
    assert talk(emu, "P01H") == ACK
    assert talk(emu, "P01EI") == frame("P01E00003.00") + frame("P01I1002")
    emu.advance(60.0)  # halted: nothing turns
    assert talk(emu, "P01C") == frame("P01C00002.00")
    assert talk(emu, "P01G") == ACK
    emu.advance(60.0)
    assert talk(emu, "P01CE") == frame("P01C00005.00") + frame("P01E00000.00")


def test_go_needs_speed_revolutions_and_a_stopped_motor() -> None:
    emu = remote()
    assert talk(emu, "P01G") == NAK  # no speed, nothing to go
    talk(emu, "P01S+10")
    assert talk(emu, "P01G") == NAK  # nothing to go
    talk(emu, "P01V3")
    assert talk(emu, "P01G") == ACK
    assert talk(emu, "P01G") == NAK  # already running
    assert talk(emu, "P01V4") == NAK  # the count is set while stopped


def test_g0_answers_nak_yet_runs_continuously() -> None:
    emu = remote()
    talk(emu, "P01S-120.0")
    talk(emu, "P01V2")
    assert talk(emu, "P01G0") == NAK
    assert talk(emu, "P01I") == frame("P01I1103")
    emu.advance(60.0)
    assert talk(emu, "P01C") == frame("P01C00120.00")
    assert talk(emu, "P01E") == frame("P01E00002.00")  # a continuous run leaves the count
    snap = emu.snapshot()[1]
    assert isinstance(snap, PeristalticSnapshot)
    assert (snap.running, snap.continuous, snap.direction) == (True, True, "withdraw")
    assert snap.speed_rpm == 120.0
    assert snap.revs_to_go == 2.0
    assert snap.target_ml is None
    assert snap.delivered_ml == pytest.approx(-96.0, abs=1e-9)
    assert talk(emu, "P01H") == ACK
    assert talk(emu, "P01I") == frame("P01I1102")


def test_g0_without_speed_or_control_does_not_run() -> None:
    emu = remote()
    assert talk(emu, "P01G0") == NAK
    assert talk(emu, "P01I") == frame("P01I1001")
    talk(emu, "P01S+10")
    talk(emu, "P01L")
    assert talk(emu, "P01G0") == NAK
    assert talk(emu, "P01I") == frame("P01I0001")


def test_speed_changes_while_running_and_zero_speed_halts() -> None:
    emu = remote()
    talk(emu, "P01S+60")
    talk(emu, "P01V100")
    talk(emu, "P01G")
    emu.advance(10.0)  # 10 revs
    assert talk(emu, "P01S-120") == ACK
    emu.advance(10.0)  # 20 revs back
    assert talk(emu, "P01CE") == frame("P01C00030.00") + frame("P01E00070.00")
    assert emu.physics(1).position_revs == pytest.approx(-10.0)
    assert talk(emu, "P01S+0") == ACK
    assert talk(emu, "P01I") == frame("P01I1002")


def test_z_ends_a_counted_run_and_z0_zeroes_the_counter() -> None:
    emu = remote()
    talk(emu, "P01S+60")
    talk(emu, "P01V100")
    talk(emu, "P01G")
    emu.advance(5.0)
    assert talk(emu, "P01Z") == ACK
    assert talk(emu, "P01IC") == frame("P01I1001") + frame("P01C00005.00")
    assert talk(emu, "P01Z0") == ACK
    assert talk(emu, "P01C") == frame("P01C00000.00")
    assert emu.physics(1).turned_revs == pytest.approx(5.0)  # ground truth keeps counting


def test_front_panel_key_aux_and_outputs() -> None:
    emu = remote()
    assert talk(emu, "P01K") == frame("P01K0")
    emu.press_key(1)
    assert talk(emu, "P01K") == frame("P01K1")
    assert talk(emu, "P01K") == frame("P01K0")
    assert talk(emu, "P01A") == frame("P01A0")
    assert talk(emu, "P01B10") == ACK
    assert talk(emu, "P01O01") == ACK
    assert talk(emu, "P01B2") == NAK
    assert talk(emu, "P01O012") == NAK


def test_several_commands_in_one_frame() -> None:
    emu = remote()
    assert talk(emu, "P01S+60.0V2G") == ACK
    emu.advance(1.0)
    assert talk(emu, "P01SE") == frame("P01S+060.0") + frame("P01E00001.00")
    # a syntax error anywhere: nothing in the frame is run
    assert talk(emu, "P01HX") == NAK
    assert talk(emu, "P01I") == frame("P01I1003")
    # a refused command stops the frame: what came before stays done
    assert talk(emu, "P01HZGS+1") == NAK  # H and Z done, G refused (nothing to go), S not run
    assert talk(emu, "P01SI") == frame("P01S+060.0") + frame("P01I1001")


def test_queries_without_the_number_when_asked() -> None:
    emu = MasterflexEmulation((1,), address_in_replies=False)
    talk(emu, "P01")
    talk(emu, "P01S+4")
    assert talk(emu, "P01S") == frame("S+004.0")
    assert talk(emu, "P01E") == frame("E00000.00")
    assert talk(emu, "P01A") == frame("A0")
    assert talk(emu, "P01I") == frame("P01I1001")  # the status always carries the number


# --------------------------------------------------------------------------- framing


def test_frames_for_nobody_are_silent() -> None:
    emu = remote()
    for text in ("P02I", "P00I", "P99I", "I", "Q01I", "P1I"):
        assert talk(emu, text) == b"", text


def test_can_discards_the_partial_line_and_noise_outside_frames_is_ignored() -> None:
    emu = remote()
    emu.feed(b"\x02P01S+1\x18")
    emu.feed(b"\r\rjunk\x06\x15")
    assert emu.read() == b""
    assert talk(emu, "P01S") == frame("P01S+000.0")
    emu.feed(b"\x02P01S+9\x02P01S\r")  # a new STX restarts the frame
    assert emu.read() == frame("P01S+000.0")


def test_bytes_arrive_in_any_chunking_and_lose_their_eighth_bit() -> None:
    emu = remote()
    for b in frame("P01S+4.5"):
        emu.feed(bytes((b | 0x80,)))  # a host sending parity as the eighth bit
    assert emu.read() == ACK
    assert talk(emu, "P01S") == frame("P01S+004.5")


def test_overlong_frames_are_dropped() -> None:
    emu = remote()
    emu.feed(b"\x02P01" + b"I" * 100 + b"\r")
    assert emu.read() == b""
    assert talk(emu, "P01S") == frame("P01S+000.0")


def test_lowercase_and_spaces_are_refused() -> None:
    emu = remote()
    assert talk(emu, "P01s") == NAK
    assert talk(emu, "P01 S") == NAK


# --------------------------------------------------------------------------- several drives


def test_several_drives_on_one_link() -> None:
    emu = remote(1, 2, 89, ml_per_rev=1.0)
    talk(emu, "P01S+60V10G")
    talk(emu, "P02S-30")
    assert talk(emu, "P02G0") == NAK
    emu.advance(20.0)
    assert talk(emu, "P01C") == frame("P01C00010.00")
    assert talk(emu, "P02C") == frame("P02C00010.00")
    assert talk(emu, "P89C") == frame("P89C00000.00")
    snaps = emu.snapshot()
    assert list(snaps) == [1, 2, 89]
    assert snaps[1].delivered_ml == pytest.approx(10.0)
    assert snaps[2].delivered_ml == pytest.approx(-10.0)
    assert snaps[2].running and not snaps[1].running


def test_renumbering() -> None:
    emu = remote(1, 2)
    assert talk(emu, "P01U90") == NAK
    assert talk(emu, "P01U00") == NAK
    assert talk(emu, "P01U100") == NAK
    assert talk(emu, "P01U02") == NAK  # taken
    assert talk(emu, "P01U01") == ACK  # its own number
    assert talk(emu, "P01U05") == ACK
    assert talk(emu, "P01I") == b""
    assert talk(emu, "P05I") == frame("P05I1001")
    assert emu.addresses == [2, 5]
    assert list(emu.snapshot()) == [2, 5]


def test_constructor_refuses_bad_numbers() -> None:
    for numbers in ((0,), (90,), (1, 1), ()):
        with pytest.raises(ValueError):
            MasterflexEmulation(numbers)


# --------------------------------------------------------------------------- snapshot


def test_snapshot_has_the_common_keys_plus_the_rotor() -> None:
    emu = MasterflexEmulation([1, 3])  # the server's positional constructor
    snap = emu.snapshot()[1]
    assert isinstance(snap, PumpSnapshot)
    assert snap.model_dump() == {
        "running": False,
        "direction": "infuse",
        "rate_ml_per_h": 0.0,
        "delivered_ml": 0.0,
        "target_ml": None,
        "alarm": "reset",
        "speed_rpm": 0.0,
        "continuous": False,
        "revs_to_go": 0.0,
    }
    talk(emu, "P01")
    talk(emu, "P01S+25V40G")
    state = json.loads(state_json(emu))
    assert state["pumps"]["1"] == {
        "running": True,
        "direction": "infuse",
        "rate_ml_per_h": 1200.0,
        "delivered_ml": 0.0,
        "target_ml": 32.0,
        "alarm": None,
        "speed_rpm": 25.0,
        "continuous": False,
        "revs_to_go": 40.0,
    }


def test_true_tubing_differs_from_the_nominal_one_calibration_finds_it() -> None:
    emu = remote(ml_per_rev=0.83)
    talk(emu, "P01S+100V100G")
    emu.advance(120.0)
    (c_reply,) = [talk(emu, "P01C")]
    revs = float(c_reply[5:-1])
    measured_ml = emu.snapshot()[1].delivered_ml  # what a balance would weigh
    assert revs == 100.0
    assert measured_ml / revs == pytest.approx(0.83)
    emu.set_ml_per_rev(1, 0.8)
    talk(emu, "P01Z0V100G")
    emu.advance(120.0)
    assert emu.snapshot()[1].delivered_ml == pytest.approx(163.0)


def test_five_days_continuous_do_not_drift() -> None:
    emu = remote()
    talk(emu, "P01S+12.5")
    talk(emu, "P01G0")
    for _ in range(5 * 24 * 60):
        emu.advance(60.0)
    assert talk(emu, "P01C") == frame("P01C90000.00")
    assert emu.snapshot()[1].delivered_ml == pytest.approx(72000.0, abs=1e-6)


# --------------------------------------------------------------------------- a host that never reads


def test_a_host_that_never_reads_never_blocks_and_memory_stays_bounded() -> None:
    emu = MasterflexEmulation((1,), max_outbound_bytes=256)
    talk(emu, "P01")
    for _ in range(10000):
        emu.feed(frame("P01C"))
    out = emu.read()
    assert len(out) <= 256
    assert out.endswith(frame("P01C00000.00"))
    assert out == frame("P01C00000.00") * (len(out) // 14)  # whole replies only, the newest
    assert talk(emu, "P01I") == frame("P01I1001")


# --------------------------------------------------------------------------- faults


def test_occlusion_motor_turns_on_and_the_drive_reports_nothing() -> None:
    emu = remote()
    talk(emu, "P01S+6G0")
    emu.set_occlusion(1, True)
    emu.advance(600.0)
    assert talk(emu, "P01IC") == frame("P01I1003") + frame("P01C00060.00")
    physics = emu.physics(1)
    assert physics.outflow_ml == 0.0
    assert physics.pressure_kpa == pytest.approx(physics.max_pressure_kpa)
    snap = emu.snapshot()[1]
    assert snap.alarm is None and snap.running
    assert snap.delivered_ml == pytest.approx(physics.max_line_ml)
    emu.set_occlusion(1, False)
    assert physics.outflow_ml == pytest.approx(physics.max_line_ml)


def test_empty_reservoir_pumps_air_silently() -> None:
    emu = remote()
    assert type(emu).supports_contents()
    talk(emu, "P01S+60G0")
    emu.set_syringe_remaining_ml(1, 0.4)
    emu.advance(60.0)
    assert emu.physics(1).pumping_air
    assert talk(emu, "P01IC") == frame("P01I1003") + frame("P01C00060.00")
    assert emu.snapshot()[1].delivered_ml == pytest.approx(0.4)


def test_power_cycle_loses_the_program_and_needs_control_again() -> None:
    emu = remote()
    talk(emu, "P01S+60V50G")
    emu.advance(10.0)
    emu.power_cycle(1)
    snap = emu.snapshot()[1]
    assert isinstance(snap, PeristalticSnapshot)
    assert (snap.running, snap.alarm, snap.speed_rpm, snap.revs_to_go) == (False, "reset", 0.0, 0)
    assert snap.delivered_ml == pytest.approx(8.0)  # ground truth is never reset
    emu.feed(b"\x05")
    assert emu.read() == frame("P01")  # starting up again
    assert talk(emu, "P01ICSE") == (
        frame("P01I0011") + frame("P01C00000.00") + frame("P01S+000.0") + frame("P01E00000.00")
    )
    assert talk(emu, "P01S+60") == NAK
    assert talk(emu, "P01R") == ACK
    assert talk(emu, "P01S+60") == ACK
    assert emu.snapshot()[1].alarm == "reset"
    talk(emu, "P01V1G")
    assert emu.snapshot()[1].alarm is None


def test_link_down_loses_bytes_both_ways() -> None:
    emu = remote()
    emu.feed(frame("P01I"))
    emu.set_link_up(False)
    assert emu.read() == b""
    assert talk(emu, "P01S+10") == b""
    emu.set_link_up(True)
    emu.feed(b"\x02P01")  # a partial frame at link-down time is gone, too
    emu.set_link_up(False)
    emu.set_link_up(True)
    emu.feed(b"S+5\r")
    assert emu.read() == b""
    assert talk(emu, "P01S") == frame("P01S+000.0")


def test_garbled_replies_keep_their_framing() -> None:
    emu = remote()
    emu.garble_next_replies(3)
    assert talk(emu, "P01S") == b"\x02\x1001S+000.0\r"
    assert talk(emu, "P01R") == b"F"  # ACK with bit 6 flipped
    assert talk(emu, "P01X") == b"U"  # NAK likewise
    assert talk(emu, "P01R") == ACK


def test_mangled_replies_and_checksums() -> None:
    emu = remote()
    emu.mangle_next_replies(2, lambda data: data[:3])
    assert talk(emu, "P01S") == b"\x02P0"
    assert talk(emu, "P01R") == ACK[:3]
    assert talk(emu, "P01S") == frame("P01S+000.0")
    emu.corrupt_next_checksums(5)  # no checksums on this wire: nothing changes
    assert talk(emu, "P01S") == frame("P01S+000.0")


def test_slow_replies_are_held_back_in_simulated_time() -> None:
    emu = remote()
    emu.set_reply_delay_s(0.5)
    assert talk(emu, "P01I") == b""
    emu.advance(0.49)
    assert emu.read() == b""
    emu.advance(0.01)
    assert emu.read() == frame("P01I1001")


def test_commands_are_counted_for_command_count_faults() -> None:
    emu = MasterflexEmulation((1,))
    emu.feed(b"\x05")
    talk(emu, "P01")
    talk(emu, "P02I")
    emu.feed(b"\x02P01\x18")  # cancelled: not a command
    assert type(emu).counts_commands
    assert emu.commands_seen == 3


# --------------------------------------------------------------------------- in-memory transport


def test_in_memory_transport_on_the_virtual_clock() -> None:
    async def main(clock: Clock) -> tuple[list[bytes], float]:
        emu = MasterflexEmulation((1, 2), ml_per_rev=0.8)
        t = InMemoryTransport(emu, clock, name="sim://masterflex")
        await t.open()
        replies = []
        for text in ("P01", "P01S+10.0", "P01V600", "P01G", "P01I"):
            replies.append(await t.exchange(frame(text), framer, 1.0))
        await clock.sleep(3600.0)  # an hour of virtual time: 600 revolutions at 10 rpm
        replies.append(await t.exchange(frame("P01C"), framer, 1.0))
        replies.append(await t.exchange(frame("P01I"), framer, 1.0))
        await t.close()
        return replies, emu.snapshot()[1].delivered_ml

    replies, delivered_ml = run_with_clock(main, virtual=True)
    expected = [ACK, ACK, ACK, ACK, frame("P01I1003"), frame("P01C00600.00"), frame("P01I1001")]
    assert replies == expected
    assert delivered_ml == pytest.approx(480.0, abs=1e-9)


# --------------------------------------------------------------------------- fuzz


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from([b"\x02P01", b"\r", b"\x05", b"\x18", b"S+", b"G0", b"V1", b"U0"]),
        ),
        max_size=30,
    )
)
def test_any_bytes_never_raise_and_replies_stay_well_formed(chunks: list[bytes]) -> None:
    emu = remote(1, 2)
    for chunk in chunks:
        emu.feed(chunk)
        emu.advance(0.5)
    out = emu.read()
    while out:  # only ACK, NAK and STX ... CR replies
        n = framer(out)
        assert n is not None
        assert out[:n] in (ACK, NAK) or (out[:1] == b"\x02" and out[n - 1 : n] == b"\r")
        out = out[n:]
    assert set(emu.snapshot()) <= set(range(1, 90))


# --------------------------------------------------------------------------- tcp endpoint


async def test_served_over_tcp_in_real_time() -> None:
    endpoint = TcpEndpoint(MasterflexEmulation((1, 2)), RealClock(), port=0)
    host, port = await endpoint.start()
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"\x05")
        assert await asyncio.wait_for(reader.readuntil(b"\r"), SAFETY_S) == frame("P01")
        writer.write(frame("P02") + frame("P02S-7.5"))
        assert await asyncio.wait_for(reader.readexactly(2), SAFETY_S) == ACK + ACK
        writer.write(frame("P02S"))
        assert await asyncio.wait_for(reader.readuntil(b"\r"), SAFETY_S) == frame("P02S-007.5")
        writer.close()
    finally:
        await endpoint.stop()
