"""Endpoints: in-memory transport on the virtual clock, pty and TCP with plain os/socket clients,
and the `simulate` server with its state file."""

from __future__ import annotations

import asyncio
import json
import os
import random
import termios
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pumpctl.clock import Clock, RealClock, run_with_clock
from pumpctl.drivers.base import AlarmReason, PumpConnectionError, PumpState, PumpTimeout
from pumpctl.drivers.newera import NE1000Driver
from pumpctl.simulator.devices.base import LineSettings
from pumpctl.simulator.devices.newera import NE1000Emulation
from pumpctl.simulator.endpoints import (
    InMemoryTransport,
    PtyEndpoint,
    TcpEndpoint,
    _Pacer,
    pty_line_settings,
    set_pty_line_settings,
    wrong_baud,
)
from pumpctl.simulator.faults import FaultSchedule, garble_bytes, parse_fault
from pumpctl.simulator.server import FACTORY_ADDRESS, build_emulation, build_faults, serve

SAFETY_S = 10.0  # generous: only guards against a hang, never decides pass/fail


def basic(text: str) -> bytes:
    return b"\x02" + text.encode() + b"\x03"


def basic_frame_length(buf: bytes) -> int | None:
    """Test-side framer for NE basic replies: up to and including the first ETX."""
    end = buf.find(b"\x03")
    return None if end < 0 else end + 1


# --------------------------------------------------------------------------- in-memory


def test_in_memory_fast_path_costs_no_clock_time() -> None:
    async def main(clock: Clock) -> tuple[bytes, bytes, float]:
        t = InMemoryTransport(NE1000Emulation(), clock)
        await t.open()
        first = await t.exchange(b"0\r", basic_frame_length, 1.0)
        second = await t.exchange(b"0VER\r", basic_frame_length, 1.0)
        return first, second, clock.now()

    first, second, now = run_with_clock(main, virtual=True)
    assert first == basic("00A?R")
    assert second == basic("00SNE1000V3.928")
    assert now == 0.0


def test_in_memory_waits_on_clock_for_a_slow_reply() -> None:
    async def main(clock: Clock) -> tuple[bytes, float]:
        emu = NE1000Emulation()
        emu.set_reply_delay_s(0.3)
        t = InMemoryTransport(emu, clock)
        await t.open()
        reply = await t.exchange(b"0\r", basic_frame_length, 1.0)
        return reply, clock.now()

    reply, now = run_with_clock(main, virtual=True)
    assert reply == basic("00A?R")
    assert now == pytest.approx(0.3, abs=0.006)


def test_in_memory_timeout_names_the_port_when_link_is_down() -> None:
    async def main(clock: Clock) -> float:
        emu = NE1000Emulation()
        emu.set_link_up(False)
        t = InMemoryTransport(emu, clock, name="sim://bench-7")
        await t.open()
        with pytest.raises(PumpTimeout, match="sim://bench-7"):
            await t.exchange(b"0\r", basic_frame_length, 1.0)
        return clock.now()

    assert run_with_clock(main, virtual=True) == pytest.approx(1.0)


def test_in_memory_closed_transport_refuses() -> None:
    async def main(clock: Clock) -> None:
        t = InMemoryTransport(NE1000Emulation(), clock)
        with pytest.raises(PumpConnectionError):
            await t.exchange(b"0\r", basic_frame_length, 1.0)

    run_with_clock(main, virtual=True)


def test_five_day_run_on_the_virtual_clock() -> None:
    emu = NE1000Emulation()

    async def main(clock: Clock) -> bytes:
        t = InMemoryTransport(emu, clock)
        await t.open()
        await t.exchange(b"0\r", basic_frame_length, 1.0)  # acknowledge the power-up reset
        for cmd in (b"0DIA26.59\r", b"0RAT0.45MH\r", b"0VOL0\r", b"0RUN\r"):
            await t.exchange(cmd, basic_frame_length, 1.0)
        for _ in range(5 * 24 * 6):  # poll every 10 min for 5 days
            await clock.sleep(600.0)
            assert await t.exchange(b"0\r", basic_frame_length, 1.0) == basic("00I")
        return await t.exchange(b"0DIS\r", basic_frame_length, 1.0)

    assert run_with_clock(main, virtual=True) == basic("00II54.00W0.000ML")
    assert emu.snapshot()[0].delivered_ml == pytest.approx(54.0, abs=1e-9)


def test_watchdog_stops_the_pump_during_a_silence_once_time_catches_up() -> None:
    """After SAF3 (a safe packet) and 10 s of silence, the pump stopped at 3 s with A?T.

    The in-memory transport advances the emulation lazily (at each exchange): ground truth read
    during a silence needs `sync()` first. The emulation itself arms the watchdog at the SAF
    packet (the first valid safe packet since power-up).
    """
    emu = NE1000Emulation()

    async def main(clock: Clock) -> tuple[bool, str | None, float]:
        t = InMemoryTransport(emu, clock)
        driver = NE1000Driver(t)
        await driver.open()
        await driver.configure_syringe(26.59)
        await driver.set_rate(60.0)
        await driver.set_target_volume(None)
        await driver.start()
        await driver.enable_link_watchdog(3)
        await clock.sleep(10.0)
        stale = emu.snapshot()[0].running  # nothing advanced the emulation yet
        t.sync()
        status = await driver.read_status()
        return stale, status.alarm.value if status.alarm else None, clock.now()

    stale, alarm, now = run_with_clock(main, virtual=True)
    assert stale is True
    assert alarm == AlarmReason.LINK_TIMEOUT.value
    snap = emu.snapshot()[0]
    assert (snap.running, snap.alarm) == (False, "link_timeout")
    assert snap.delivered_ml == pytest.approx(3.0 / 60.0)  # stopped at the 3 s deadline
    assert now == 10.0
    assert PumpState.ALARM  # the driver maps A?T to an alarm state (checked in driver tests)


def test_in_memory_transport_applies_faults_at_their_simulated_time() -> None:
    emu = NE1000Emulation()
    schedule = FaultSchedule([parse_fault("reset@5s")], random.Random(0))

    async def main(clock: Clock) -> list[bytes]:
        t = InMemoryTransport(emu, clock, faults=schedule)
        await t.open()
        replies = [await t.exchange(b"0\r", basic_frame_length, 1.0)]
        await clock.sleep(4.0)
        replies.append(await t.exchange(b"0\r", basic_frame_length, 1.0))
        await clock.sleep(60.0)  # one sync from 4 s to 64 s: the reset still happens at 5 s
        replies.append(await t.exchange(b"0\r", basic_frame_length, 1.0))
        assert t.commands_seen == 3
        return replies

    assert run_with_clock(main, virtual=True) == [basic("00A?R"), basic("00S"), basic("00A?R")]
    assert schedule.history == [(5.0, "start", "reset@5s")]


# --------------------------------------------------------------------------- the line


def test_wrong_baud_garbage_length_follows_the_baud_ratio() -> None:
    slow, fast = LineSettings(baud=9600), LineSettings(baud=19200)
    data = bytes(range(40, 60))
    assert len(wrong_baud(data, slow, fast, random.Random(1))) == 40
    assert len(wrong_baud(data, fast, slow, random.Random(1))) == 10
    assert len(wrong_baud(b"x", LineSettings(baud=115200), slow, random.Random(1))) == 1
    assert wrong_baud(b"", slow, fast, random.Random(1)) == b""
    junk = wrong_baud(bytes(500), slow, slow, random.Random(1))
    assert not set(junk) & {0x02, 0x03, 0x0A, 0x0D}
    assert junk == wrong_baud(bytes(500), slow, slow, random.Random(1))


def test_pacer_releases_bytes_at_the_wire_rate() -> None:
    pacer = _Pacer()
    byte_s = 10 / 9600  # 8N1 at 9600 baud
    pacer.push(b"abcdef", 1.0)
    assert pacer.pop(1.0, byte_s) == b""  # the first byte is still on the wire
    assert pacer.pop(1.0 + 2.5 * byte_s, byte_s) == b"ab"
    assert pacer.pop(1.0 + 6 * byte_s, byte_s) == b"cdef"
    pacer.push(b"g", 5.0)  # idle line: timing restarts at the push
    assert pacer.pop(5.0 + 0.9 * byte_s, byte_s) == b""
    assert pacer.pop(5.0 + byte_s, byte_s) == b"g"


def test_pty_line_settings_round_trip() -> None:
    master, slave = os.openpty()
    try:
        tty.setraw(slave, termios.TCSANOW)
        for line in (
            LineSettings(baud=4800, data_bits=7, parity="O"),
            LineSettings(baud=9600, stop_bits=2),
            LineSettings(baud=115200, parity="E"),
        ):
            set_pty_line_settings(slave, line)
            # Linux: one termios for both ends; baud and stop bits kept, always 8N
            expected = LineSettings(baud=line.baud, stop_bits=line.stop_bits)
            assert pty_line_settings(slave) == expected
            assert pty_line_settings(master) == expected
    finally:
        os.close(master)
        os.close(slave)


# --------------------------------------------------------------------------- real-time helpers


async def read_frames(fd: int, count: int = 1) -> bytes:
    """Read from a non-blocking fd until `count` ETX bytes arrived (event-driven)."""
    loop = asyncio.get_running_loop()
    buf = bytearray()
    done: asyncio.Future[None] = loop.create_future()

    def on_readable() -> None:
        try:
            buf.extend(os.read(fd, 4096))
        except BlockingIOError:
            return
        if buf.count(0x03) >= count and not done.done():
            done.set_result(None)

    loop.add_reader(fd, on_readable)
    try:
        await asyncio.wait_for(done, SAFETY_S)
    finally:
        loop.remove_reader(fd)
    return bytes(buf)


def open_raw(path: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd, termios.TCSANOW)
    return fd


# --------------------------------------------------------------------------- pty


async def test_pty_serves_and_survives_client_reopen() -> None:
    endpoint = PtyEndpoint(NE1000Emulation(), RealClock())
    path = await endpoint.start()
    try:
        assert path.startswith("/dev/")
        fd = open_raw(path)
        os.write(fd, b"0\r")
        assert await read_frames(fd) == basic("00A?R")
        os.close(fd)
        fd = open_raw(path)  # a client closing and reopening the port keeps working
        os.write(fd, b"0VER\r")
        assert await read_frames(fd) == basic("00SNE1000V3.928")
        os.close(fd)
    finally:
        await endpoint.stop()


async def test_pty_on_an_existing_device_path() -> None:
    master, slave = os.openpty()  # stands in for a socat pty pair
    tty.setraw(slave, termios.TCSANOW)
    os.set_blocking(master, False)
    endpoint = PtyEndpoint(NE1000Emulation(), RealClock(), path=os.ttyname(slave))
    await endpoint.start()
    try:
        os.write(master, b"0\r0DIA14.5\r0DIA\r")
        assert await read_frames(master, 3) == basic("00A?R") + basic("00S") + basic("00S14.50")
    finally:
        await endpoint.stop()
        os.close(master)
        os.close(slave)


def set_client_baud(fd: int, baud: int) -> None:
    attrs = termios.tcgetattr(fd)
    attrs[4] = attrs[5] = getattr(termios, f"B{baud}")
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll `predicate` on the event loop (safety deadline only)."""
    clock = RealClock()
    deadline = clock.now() + SAFETY_S
    while not predicate():
        assert clock.now() < deadline, "condition never held"
        await clock.sleep(0.001)


async def read_bytes(fd: int, count: int) -> bytes:
    """Read from a non-blocking fd until `count` bytes arrived (event-driven)."""
    loop = asyncio.get_running_loop()
    buf = bytearray()
    done: asyncio.Future[None] = loop.create_future()

    def on_readable() -> None:
        try:
            buf.extend(os.read(fd, 4096))
        except BlockingIOError:
            return
        if len(buf) >= count and not done.done():
            done.set_result(None)

    loop.add_reader(fd, on_readable)
    try:
        await asyncio.wait_for(done, SAFETY_S)
    finally:
        loop.remove_reader(fd)
    return bytes(buf)


async def test_pty_starts_at_the_pump_line_settings_and_garbles_at_another_baud() -> None:
    emu = NE1000Emulation()
    endpoint = PtyEndpoint(emu, RealClock())
    path = await endpoint.start()
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        assert pty_line_settings(fd) == LineSettings(baud=19200)  # what a client finds
        os.write(fd, b"0\r")
        assert await read_frames(fd) == basic("00A?R")
        emu.set_reply_delay_s(0.2)
        os.write(fd, b"0VER\r")  # heard at the right baud...
        await wait_until(lambda: endpoint.commands_seen == 2)
        set_client_baud(fd, 9600)  # ...answered after the client switched to 9600
        garbage = await read_bytes(fd, 8)
        assert len(garbage) == 8  # 17 bytes at 19200 heard at 9600: round(8.5) = 8
        assert not set(garbage) & {0x02, 0x03, 0x0A, 0x0D}
        emu.set_reply_delay_s(0.0)
        set_client_baud(fd, 19200)
        os.write(fd, b"0VER\r")
        assert await read_frames(fd) == basic("00SNE1000V3.928")
        os.close(fd)
    finally:
        await endpoint.stop()


async def test_pty_paces_bytes_at_the_pump_baud() -> None:
    emu = NE1000Emulation()
    emu.set_baud_rate(1200)  # 8N1: 120 bytes/s
    endpoint = PtyEndpoint(emu, RealClock(), pace=True)
    path = await endpoint.start()
    clock = RealClock()
    try:
        fd = open_raw(path)
        assert pty_line_settings(fd) == LineSettings(baud=1200)
        start = clock.now()
        os.write(fd, b"0\r")
        assert await read_frames(fd) == basic("00A?R")
        wire_s = clock.now() - start
        assert wire_s >= (2 + 7) / 120  # 2 bytes in, 7 out: never faster than the wire
        os.close(fd)
    finally:
        await endpoint.stop()


async def test_pty_endpoint_applies_faults_by_command_count() -> None:
    schedule = FaultSchedule([parse_fault("reset@#1")], random.Random(0))
    endpoint = PtyEndpoint(NE1000Emulation(), RealClock(), faults=schedule)
    path = await endpoint.start()
    try:
        fd = open_raw(path)
        replies = []
        for _ in range(3):
            os.write(fd, b"0\r")
            replies.append(await read_frames(fd))
        assert replies == [basic("00A?R"), basic("00A?R"), basic("00S")]
        assert endpoint.commands_seen == 3
        os.close(fd)
    finally:
        await endpoint.stop()


async def test_tcp_endpoint_applies_faults() -> None:
    schedule = FaultSchedule([parse_fault("garble@#1")], random.Random(4))
    endpoint = TcpEndpoint(NE1000Emulation(), RealClock(), faults=schedule)
    host, port = await endpoint.start()
    try:
        reader, writer = await asyncio.open_connection(host, port)
        replies = []
        for _ in range(3):
            writer.write(b"0\r")
            replies.append(await asyncio.wait_for(reader.readuntil(b"\x03"), SAFETY_S))
        expected_garble = garble_bytes(basic("00S"), random.Random(4))
        assert replies == [basic("00A?R"), expected_garble, basic("00S")]
        writer.close()
    finally:
        await endpoint.stop()


# --------------------------------------------------------------------------- tcp


async def test_tcp_serves_several_clients_on_one_line() -> None:
    endpoint = TcpEndpoint(NE1000Emulation(), RealClock(), port=0)
    host, port = await endpoint.start()
    try:
        assert port > 0
        r1, w1 = await asyncio.open_connection(host, port)
        w1.write(b"0\r")
        assert await asyncio.wait_for(r1.readuntil(b"\x03"), SAFETY_S) == basic("00A?R")
        r2, w2 = await asyncio.open_connection(host, port)
        w2.write(b"0VER\r")
        expected = basic("00SNE1000V3.928")
        assert await asyncio.wait_for(r2.readuntil(b"\x03"), SAFETY_S) == expected
        assert await asyncio.wait_for(r1.readuntil(b"\x03"), SAFETY_S) == expected  # shared line
        for w in (w1, w2):
            w.close()
    finally:
        await endpoint.stop()


# --------------------------------------------------------------------------- server


def test_build_emulation_lists_valid_models() -> None:
    assert build_emulation("ne1000", [0, 5]).snapshot().keys() == {0, 5}
    with pytest.raises(ValueError, match="ne1000"):
        build_emulation("nosuchpump", [0])


@pytest.mark.parametrize(
    ("model", "line"),
    [
        ("ne1000", LineSettings(baud=19200)),
        ("harvard-legacy", LineSettings(baud=9600, stop_bits=2)),
        ("harvard-elite", LineSettings(baud=115200)),
        ("masterflex-ls", LineSettings(baud=4800, data_bits=7, parity="O")),
    ],
)
def test_build_emulation_for_every_model(model: str, line: LineSettings) -> None:
    address = FACTORY_ADDRESS.get(model, 0)
    emulation = build_emulation(model, [address])
    assert emulation.model == model
    assert list(emulation.snapshot()) == [address]
    assert emulation.uart_settings() == line


def test_build_emulation_checks_phd_addresses_and_faults() -> None:
    legacy = build_emulation("harvard-legacy", [0], phd_addresses=[3])
    assert sorted(legacy.snapshot()) == [0, 3]
    with pytest.raises(ValueError, match="--phd-address is for harvard-legacy, not ne1000"):
        build_emulation("ne1000", [0], phd_addresses=[3])
    with pytest.raises(ValueError, match="stall/4@1s: no pump at address 4"):
        build_emulation("ne1000", [0], faults=build_faults(["stall/4@1s"]))
    assert build_faults([]) is None


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return state


def file_names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def wait_for_state(
    path: Path, predicate: Callable[[dict[str, Any]], bool], clock: Clock
) -> dict[str, Any]:
    """Poll the state file until `predicate(state)` holds (safety deadline only)."""
    deadline = clock.now() + SAFETY_S
    while True:
        state = read_state(path)
        if state is not None and predicate(state):
            return state
        assert clock.now() < deadline, "state file never reached the expected state"
        await clock.sleep(0.02)


async def test_server_over_tcp_keeps_the_state_file(tmp_path: Path) -> None:
    clock = RealClock()
    state_file = tmp_path / "state.json"
    announced: list[str] = []
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(
        serve(
            "ne1000",
            port=None,
            tcp="127.0.0.1:0",
            addresses=[0],
            state_file=state_file,
            clock=clock,
            announce=announced.append,
            stop=stop,
        )
    )
    state = await wait_for_state(state_file, lambda s: "pumps" in s, clock)
    assert state == {
        "pumps": {
            "0": {
                "running": False,
                "direction": "infuse",
                "rate_ml_per_h": 0.0,
                "delivered_ml": 0.0,
                "target_ml": None,
                "alarm": "reset",
            }
        }
    }
    assert announced[0].startswith("TCP=127.0.0.1:")
    port = int(announced[0].rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for cmd in (b"0\r", b"0RAT1500MH\r", b"0VOLML\r", b"0VOL56\r", b"0RUN\r"):
        writer.write(cmd)
        await asyncio.wait_for(reader.readuntil(b"\x03"), SAFETY_S)
    running = await wait_for_state(state_file, lambda s: s["pumps"]["0"]["running"], clock)
    assert running["pumps"] == {
        "0": {
            "running": True,
            "direction": "infuse",
            "rate_ml_per_h": 1500.0,
            "delivered_ml": running["pumps"]["0"]["delivered_ml"],
            "target_ml": 56.0,
            "alarm": None,
        }
    }
    writer.write(b"0STP\r")
    await asyncio.wait_for(reader.readuntil(b"\x03"), SAFETY_S)
    writer.close()
    stop.set()
    await asyncio.wait_for(task, SAFETY_S)
    final = (read_state(state_file) or {})["pumps"]["0"]
    assert final["running"] is False
    assert 0 < final["delivered_ml"] < 56.0
    assert file_names(tmp_path) == ["state.json"]  # no temp files left behind


async def test_server_without_port_creates_a_pty_and_announces_it_first() -> None:
    announced: list[str] = []
    stop = asyncio.Event()
    task = asyncio.get_running_loop().create_task(
        serve(
            "ne1000",
            port=None,
            tcp=None,
            addresses=[3],
            state_file=None,
            clock=RealClock(),
            announce=announced.append,
            stop=stop,
        )
    )
    clock = RealClock()
    deadline = clock.now() + SAFETY_S
    while not announced:
        assert clock.now() < deadline
        await clock.sleep(0.01)
    assert announced[0].startswith("PTY=/dev/")
    fd = open_raw(announced[0].removeprefix("PTY="))
    os.write(fd, b"3\r")
    assert await read_frames(fd) == basic("03A?R")
    os.close(fd)
    stop.set()
    await asyncio.wait_for(task, SAFETY_S)
