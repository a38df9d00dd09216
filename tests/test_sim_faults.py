"""Fault injection: spec parsing, the schedule's timing (simulated time and command count),
durations ending, seeded determinism, and every kind's effect on the wire through the in-memory
transport on the virtual clock."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pumpctl.clock import Clock, run_with_clock
from pumpctl.drivers.base import PumpTimeout
from pumpctl.simulator.devices.base import Emulation, LineSettings, PumpSnapshot
from pumpctl.simulator.devices.newera import NE1000Emulation, frame_safe
from pumpctl.simulator.endpoints import InMemoryTransport
from pumpctl.simulator.faults import (
    Fault,
    FaultKind,
    FaultSchedule,
    FaultSpecError,
    garble_bytes,
    parse_fault,
)

T = TypeVar("T")
ML_PER_S = 1.0 / 60.0  # 60 mL/h
STALL_AFTER_S = 19.2  # 60 mL/h into an occluded line reaches the stall pressure after this


def basic(text: str) -> bytes:
    return b"\x02" + text.encode() + b"\x03"


def etx_framer(buf: bytes) -> int | None:
    end = buf.find(b"\x03")
    return None if end < 0 else end + 1


def whatever_arrived(buf: bytes) -> int | None:
    """Test framer: everything the pump sent so far, framed or not."""
    return len(buf) or None


def safe_framer(buf: bytes) -> int | None:
    return buf[1] + 1 if len(buf) >= 2 and len(buf) >= buf[1] + 1 else None


Script = Callable[[InMemoryTransport, Clock], Awaitable[T]]


def simulate(
    specs: list[str], script: Script[T], *, seed: int = 0
) -> tuple[T, NE1000Emulation, FaultSchedule]:
    """Run `script` against a fresh NE-1000 (reset acknowledged, 60 mL/h continuous on a BD 60
    mL syringe, started at t=0) with the faults `specs`, on the virtual clock."""
    emu = NE1000Emulation()
    schedule = FaultSchedule([parse_fault(s) for s in specs], random.Random(seed))

    async def main(clock: Clock) -> T:
        t = InMemoryTransport(emu, clock, faults=schedule)
        await t.open()
        await t.exchange(b"0\r", etx_framer, 1.0)  # the power-up A?R
        for cmd in (b"0DIA26.59\r", b"0RAT60MH\r", b"0VOL0\r", b"0RUN\r"):
            await t.exchange(cmd, etx_framer, 1.0)
        result = await script(t, clock)
        t.sync()
        return result

    return run_with_clock(main, virtual=True), emu, schedule


async def at(clock: Clock, when_s: float) -> None:
    await clock.sleep(when_s - clock.now())


async def ask(t: InMemoryTransport, cmd: bytes = b"0\r") -> bytes:
    return await t.exchange(cmd, etx_framer, 1.0)


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("stall@300s", Fault(kind=FaultKind.STALL, at_s=300.0)),
        ("link-drop@10m:30s", Fault(kind=FaultKind.LINK_DROP, at_s=600.0, duration_s=30.0)),
        (
            "near-empty/1@1h=2",
            Fault(kind=FaultKind.NEAR_EMPTY, at_s=3600.0, argument=2.0, address=1),
        ),
        ("garble@#120=3", Fault(kind=FaultKind.GARBLE, at_command=120, argument=3.0)),
        ("baud@90s=9600", Fault(kind=FaultKind.BAUD, at_s=90.0, argument=9600.0)),
        (
            "slow@250ms:1.5m=0.5",
            Fault(kind=FaultKind.SLOW, at_s=0.25, duration_s=90.0, argument=0.5),
        ),
        ("RESET@#0", Fault(kind=FaultKind.RESET, at_command=0)),
        ("crc@0s", Fault(kind=FaultKind.CRC, at_s=0.0)),
        ("truncate@2s:1s", Fault(kind=FaultKind.TRUNCATE, at_s=2.0, duration_s=1.0)),
        ("empty@1.5h", Fault(kind=FaultKind.EMPTY, at_s=5400.0)),
    ],
)
def test_parse_fault(spec: str, expected: Fault) -> None:
    assert parse_fault(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("stall@300", r"fault 'stall@300': time '300' needs a unit: ms, s, m or h"),
        ("link-drop@10m:30", r"'link-drop@10m:30': duration '30' needs a unit"),
        ("boom@3s", r"unknown fault kind 'boom' in 'boom@3s'; kinds: stall, near-empty, empty, "),
        ("stall", r"bad fault 'stall': want KIND\[/ADDRESS\]@WHEN\[:DURATION\]\[=ARG\]"),
        ("stall@3x", r"bad fault 'stall@3x': want KIND"),
        ("baud@3s", r"bad fault 'baud@3s': baud wants one of 300, 1200, .*115200, got None"),
        ("baud@3s=1234", r"baud wants one of .* got 1234"),
        ("garble@3s=0", r"'garble@3s=0': garble wants a whole number of replies >= 1, got 0"),
        ("crc@3s=1.5", r"crc wants a whole number of replies"),
        ("empty@3s:10s", r"'empty@3s:10s': empty has no duration"),
        ("stall@3s=2", r"stall takes no argument"),
        ("link-drop/1@3s", r"link-drop acts on the whole link, not on one pump address"),
        ("slow@1s:0s", r"'slow@1s:0s': .*greater than 0"),
        ("slow@1s=1.2.3", r"'slow@1s=1.2.3': argument '1.2.3' is not a number"),
    ],
)
def test_parse_errors_name_the_spec_and_what_is_allowed(spec: str, message: str) -> None:
    with pytest.raises(FaultSpecError, match=message):
        parse_fault(spec)
    assert issubclass(FaultSpecError, ValueError)


def test_a_fault_is_at_a_time_or_a_count_not_both() -> None:
    with pytest.raises(ValueError, match="exactly one of at_s"):
        Fault(kind=FaultKind.STALL, at_s=1.0, at_command=3)
    with pytest.raises(ValueError, match="exactly one of at_s"):
        Fault(kind=FaultKind.STALL)


@given(
    kind=st.sampled_from([FaultKind.STALL, FaultKind.LINK_DROP, FaultKind.SLOW, FaultKind.GARBLE]),
    at_s=st.one_of(st.none(), st.integers(0, 10**6).map(float)),
    at_command=st.integers(0, 10**6),
    duration_s=st.one_of(st.none(), st.integers(1, 10**5).map(float)),
)
def test_str_of_a_fault_parses_back(
    kind: FaultKind, at_s: float | None, at_command: int, duration_s: float | None
) -> None:
    fault = Fault(
        kind=kind,
        at_s=at_s,
        at_command=None if at_s is not None else at_command,
        duration_s=duration_s,
        argument=2.0 if kind in (FaultKind.SLOW, FaultKind.GARBLE) else None,
    )
    assert parse_fault(str(fault)) == fault


# --------------------------------------------------------------------------- the schedule


def test_apply_due_starts_at_the_time_and_ends_after_the_duration() -> None:
    emu = NE1000Emulation()
    schedule = FaultSchedule([parse_fault("stall@300s:30s")], random.Random(0))
    assert schedule.next_due_s() == 300.0
    assert schedule.apply_due(emu, 299.999, 0) == []
    assert schedule.apply_due(emu, 300.0, 0) == ["start stall@300s:30s"]
    assert emu.physics(0).occluded
    assert schedule.next_due_s() == 330.0
    assert schedule.apply_due(emu, 329.0, 10**6) == []
    assert schedule.apply_due(emu, 330.0, 0) == ["end stall@300s:30s"]
    assert not emu.physics(0).occluded
    assert schedule.done and schedule.next_due_s() is None
    assert schedule.history == [
        (300.0, "start", "stall@300s:30s"),
        (330.0, "end", "stall@300s:30s"),
    ]


def test_apply_due_by_command_count() -> None:
    emu = NE1000Emulation()
    schedule = FaultSchedule([parse_fault("link-drop@#5:2s")], random.Random(0))
    assert schedule.next_due_s() is None  # not time-triggered
    assert schedule.apply_due(emu, 100.0, 4) == []
    assert schedule.apply_due(emu, 100.0, 5) == ["start link-drop@#5:2s"]
    assert schedule.next_due_s() == 102.0  # the duration runs in simulated time from the start


def test_check_refuses_faults_the_link_cannot_take() -> None:
    emu = NE1000Emulation([0])
    with pytest.raises(ValueError, match="stall/5@1s: no pump at address 5"):
        FaultSchedule([parse_fault("stall/5@1s")], random.Random(0)).check(emu)
    with pytest.raises(ValueError, match="empty@1s: the bare emulation has no syringe"):
        FaultSchedule([parse_fault("empty@1s")], random.Random(0)).check(BareEmulation())


def test_garble_bytes_keeps_the_frame_ends_and_is_seeded() -> None:
    reply = basic("00SNE1000V3.928")
    one = garble_bytes(reply, random.Random(3))
    assert one == garble_bytes(reply, random.Random(3))
    assert one != reply and len(one) == len(reply)
    assert (one[0], one[-1]) == (0x02, 0x03)
    assert garble_bytes(b"\x02\x03", random.Random(3)) == b"\x02\x03"


# --------------------------------------------------------------------------- kinds on the wire


def test_stall_alarms_when_the_pressure_reaches_the_limit() -> None:
    async def script(t: InMemoryTransport, clock: Clock) -> list[bytes]:
        await at(clock, 10.0 + STALL_AFTER_S - 0.1)
        before = await ask(t)
        await at(clock, 10.0 + STALL_AFTER_S + 0.1)
        return [before, await ask(t), await ask(t)]

    replies, emu, schedule = simulate(["stall@10s"], script)
    assert replies == [basic("00I"), basic("00A?S"), basic("00S")]
    assert schedule.history == [(10.0, "start", "stall@10s")]
    snap = emu.snapshot()[0]
    assert (snap.running, snap.alarm) == (False, "stall")
    assert snap.delivered_ml == pytest.approx((10.0 + STALL_AFTER_S) * ML_PER_S)
    assert emu.physics(0).outflow_ml == pytest.approx(10.0 * ML_PER_S)  # the rest is in the line


def test_stall_released_after_its_duration_delivers_the_bolus() -> None:
    async def script(t: InMemoryTransport, clock: Clock) -> bytes:
        await at(clock, 40.0)
        return await ask(t)

    reply, emu, schedule = simulate(["stall@10s:5s"], script)
    assert reply == basic("00I")  # released before it could stall
    assert [h[:2] for h in schedule.history] == [(10.0, "start"), (15.0, "end")]
    assert emu.physics(0).outflow_ml == pytest.approx(40.0 * ML_PER_S)  # bolus delivered (SR27)
    assert emu.physics(0).pressure_kpa == 0.0


def test_near_empty_leaves_the_volume_then_empties_with_the_alarm() -> None:
    async def script(t: InMemoryTransport, clock: Clock) -> tuple[list[bytes], float]:
        ne = t.emulation
        assert isinstance(ne, NE1000Emulation)
        await at(clock, 10.5)
        first = await ask(t)
        left_ml = ne.physics(0).remaining_ml
        await at(clock, 39.9)
        second = await ask(t)
        await at(clock, 40.1)
        return [first, second, await ask(t)], left_ml

    (replies, left_ml), emu, _ = simulate(["near-empty@10s=0.5"], script)
    assert replies == [basic("00I"), basic("00I"), basic("00A?S")]
    assert left_ml == pytest.approx(0.5 - 0.5 * ML_PER_S)
    snap = emu.snapshot()[0]
    assert (snap.running, snap.alarm) == (False, "empty")
    assert snap.delivered_ml == pytest.approx(10.0 * ML_PER_S + 0.5)


def test_empty_stops_the_pump_at_that_instant() -> None:
    async def script(t: InMemoryTransport, clock: Clock) -> list[bytes]:
        await at(clock, 12.0)
        return [await ask(t), await ask(t, b"0DIS\r")]

    replies, emu, _ = simulate(["empty@10s"], script)
    assert replies == [basic("00A?S"), basic("00SI0.166W0.000ML")]
    snap = emu.snapshot()[0]
    assert (snap.running, snap.alarm) == (False, "empty")
    assert snap.delivered_ml == pytest.approx(10.0 * ML_PER_S)


def test_link_drop_for_a_duration() -> None:
    async def script(t: InMemoryTransport, clock: Clock) -> list[str]:
        await at(clock, 11.0)
        seen = []
        try:
            await ask(t)
        except PumpTimeout as exc:
            seen.append(str(exc))
        await at(clock, 16.0)
        seen.append((await ask(t)).decode())
        return seen

    seen, emu, schedule = simulate(["link-drop@10s:5s"], script)
    assert seen == ["no complete reply from sim://ne1000 at 19200 baud within 1 s", "\x0200I\x03"]
    assert [h[:2] for h in schedule.history] == [(10.0, "start"), (15.0, "end")]
    assert emu.snapshot()[0].running  # a dropped link alone does not stop a basic-mode pump


def test_link_drop_by_command_count() -> None:
    async def script(t: InMemoryTransport, clock: Clock) -> list[bytes | None]:
        # 5 commands so far (reset ack + 4 setup); the 6th is the first the fault hits
        seen: list[bytes | None] = []
        for _ in range(2):
            try:
                seen.append(await ask(t))
            except PumpTimeout:
                seen.append(None)
        await clock.sleep(3.0)
        seen.append(await ask(t))
        return seen

    seen, _, schedule = simulate(["link-drop@#5:3s"], script)
    assert seen == [None, None, basic("00I")]
    assert schedule.history[0] == (0.0, "start", "link-drop@#5:3s")
    assert schedule.history[1] == (3.0, "end", "link-drop@#5:3s")


def test_garble_by_command_count_is_seeded() -> None:
    async def script(t: InMemoryTransport, clock: Clock) -> list[bytes]:
        return [await ask(t, b"0VER\r") for _ in range(4)]

    first, _, _ = simulate(["garble@#6=2"], script, seed=11)
    again, _, _ = simulate(["garble@#6=2"], script, seed=11)
    other, _, _ = simulate(["garble@#6=2"], script, seed=12)
    clean = basic("00INE1000V3.928")
    assert first == again
    assert first[0] == clean  # the 6th command: the fault starts after it
    assert first[1] != clean and first[2] != clean and first[3] == clean
    assert all(len(r) == len(clean) and r[0] == 0x02 and r[-1] == 0x03 for r in first)
    assert other[1:3] != first[1:3]


def test_crc_corrupts_the_next_safe_replies_only() -> None:
    async def script(t: InMemoryTransport, clock: Clock) -> list[bytes]:
        await ask(t, b"0SAF50\r")  # 6th command: safe mode from here
        return [await t.exchange(frame_safe(b"0"), safe_framer, 1.0) for _ in range(3)]

    replies, _, _ = simulate(["crc@#6=2"], script)
    good = frame_safe(b"00I")
    bad = good[:-2] + bytes((good[-2] ^ 0xFF,)) + good[-1:]
    assert replies == [bad, bad, good]


def test_truncate_cuts_replies_short_for_the_duration() -> None:
    async def script(t: InMemoryTransport, clock: Clock) -> list[bytes]:
        await at(clock, 6.0)
        cut = [await t.exchange(b"0VER\r", whatever_arrived, 1.0) for _ in range(2)]
        await at(clock, 10.0)
        return [*cut, await t.exchange(b"0VER\r", whatever_arrived, 1.0)]

    replies, _, _ = simulate(["truncate@5s:3s"], script)
    assert replies == [b"\x0200INE10", b"\x0200INE10", basic("00INE1000V3.928")]  # 8 of 17


def test_truncated_reply_times_out_a_framed_exchange() -> None:
    async def script(t: InMemoryTransport, clock: Clock) -> tuple[str, bytes]:
        with pytest.raises(PumpTimeout) as info:
            await ask(t)
        return str(info.value), await ask(t)  # the stale half is discarded

    (message, after), _, _ = simulate(["truncate@#5"], script)
    assert message == "no complete reply from sim://ne1000 at 19200 baud within 1 s"
    assert after == basic("00I")


def test_slow_replies_for_a_duration() -> None:
    async def script(t: InMemoryTransport, clock: Clock) -> list[float]:
        costs = []
        for when in (6.0, 16.0):
            await at(clock, when)
            assert await ask(t) == basic("00I")
            costs.append(clock.now() - when)
        return costs

    costs, _, _ = simulate(["slow@5s:10s=0.5"], script)
    assert costs[0] == pytest.approx(0.5, abs=0.006)  # polled every 5 ms of clock time
    assert costs[1] == 0.0


def test_reset_loses_program_and_counters_and_reports_the_alarm() -> None:
    async def script(t: InMemoryTransport, clock: Clock) -> list[bytes]:
        await at(clock, 11.0)
        return [await ask(t), await ask(t, b"0DIS\r"), await ask(t, b"0RAT\r")]

    replies, emu, _ = simulate(["reset@10s"], script)
    assert replies == [basic("00A?R"), basic("00SI0.000W0.000ML"), basic("00S0.000MH")]
    snap = emu.snapshot()[0]
    assert (snap.running, snap.alarm) == (False, "reset")
    assert snap.delivered_ml == pytest.approx(10.0 * ML_PER_S)  # ground truth is not reset


def test_reset_with_a_duration_is_silent_while_powered_off() -> None:
    async def script(t: InMemoryTransport, clock: Clock) -> list[bytes | None]:
        seen: list[bytes | None] = []
        for when in (11.0, 21.0):
            await at(clock, when)
            try:
                seen.append(await ask(t))
            except PumpTimeout:
                seen.append(None)
        return seen

    seen, _, _ = simulate(["reset@10s:5s"], script)
    assert seen == [None, basic("00A?R")]


def test_baud_change_garbles_until_it_reverts() -> None:
    async def script(t: InMemoryTransport, clock: Clock) -> list[str | bytes]:
        await at(clock, 9.5)
        seen: list[str | bytes] = []
        # asked at the right baud, answered (slowly) after the pump's baud changed
        seen.append(await t.exchange(b"0VER\r", whatever_arrived, 3.0))
        with pytest.raises(PumpTimeout) as info:
            await ask(t)  # asked at the wrong baud: the pump hears junk and never answers
        seen.append(str(info.value))
        await at(clock, 21.0)
        await t.send(b"\r")  # flush the junk the pump's UART took in
        seen.append(await ask(t))
        return seen

    seen, emu, schedule = simulate(["slow@9s:3s=2", "baud@10s:10s=9600"], script, seed=5)
    garbage = seen[0]
    assert isinstance(garbage, bytes)
    # 17 reply bytes sent at 9600 heard at 19200: 34 bytes, none of them STX, ETX, CR or LF
    assert len(garbage) == 34 and not set(garbage) & {0x02, 0x03, 0x0A, 0x0D}
    assert seen[1] == "no complete reply from sim://ne1000 at 19200 baud within 1 s"
    assert seen[2] == basic("00I")
    assert emu.uart_settings() == LineSettings(baud=19200)
    assert schedule.history[1:] == [
        (10.0, "start", "baud@10s:10s=9600"),
        (12.0, "end", "slow@9s:3s=2"),
        (20.0, "end", "baud@10s:10s=9600"),
    ]


def test_in_memory_client_at_another_baud_hears_nothing_useful() -> None:
    async def main(clock: Clock) -> str:
        t = InMemoryTransport(NE1000Emulation(), clock, baud_rate=9600, mismatch="silence")
        await t.open()
        with pytest.raises(PumpTimeout) as info:
            await ask(t)
        return str(info.value)

    message = run_with_clock(main, virtual=True)
    assert message == "no complete reply from sim://ne1000 at 9600 baud within 1 s"


def test_faults_on_a_later_pump_only() -> None:
    emu2 = NE1000Emulation([0, 1])
    schedule = FaultSchedule([parse_fault("stall/1@0s")], random.Random(0))
    schedule.apply_due(emu2, 0.0, 0)
    assert (emu2.physics(0).occluded, emu2.physics(1).occluded) == (False, True)


# --------------------------------------------------------------------------- base defaults


class BareEmulation(Emulation):
    """The least an emulation implements: the fault hooks' defaults work through these."""

    model = "bare"
    baud_rate = 2400

    def __init__(self) -> None:
        self.garbled: list[int] = []

    def feed(self, data: bytes) -> None:
        pass

    def read(self) -> bytes:
        return b""

    def advance(self, seconds: float) -> None:
        pass

    @property
    def now_s(self) -> float:
        return 0.0

    def snapshot(self) -> dict[int, PumpSnapshot]:
        return {}

    def set_occlusion(self, address: int, on: bool) -> None:
        pass

    def set_link_up(self, up: bool) -> None:
        pass

    def power_cycle(self, address: int) -> None:
        pass

    def garble_next_replies(self, n: int) -> None:
        self.garbled.append(n)

    def set_reply_delay_s(self, seconds: float) -> None:
        pass


def test_base_hook_defaults() -> None:
    bare = BareEmulation()
    assert bare.uart_settings() == LineSettings(baud=2400)  # the class's `baud_rate`, else 8N1
    bare.set_baud_rate(9600)
    assert bare.uart_settings() == LineSettings(baud=9600)
    bare.mangle_next_replies(2, bytes)
    bare.corrupt_next_checksums(3)
    assert bare.garbled == [2, 3]
    assert not BareEmulation.supports_contents() and NE1000Emulation.supports_contents()
    with pytest.raises(NotImplementedError, match="bare emulation has no syringe"):
        bare.set_syringe_remaining_ml(0, 1.0)
    assert LineSettings(baud=4800, data_bits=7, parity="O").bits_per_byte == 10
    assert LineSettings(baud=9600, stop_bits=2).bits_per_byte == 11
