"""SerialTransport over loop://, socket:// (asyncio TCP responder) and a pty pair."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import sys
from collections.abc import AsyncIterator, Callable

import pytest
from structlog.testing import capture_logs

from pumpctl.clock import Clock, RealClock, run_with_clock
from pumpctl.drivers.base import PumpConnectionError, PumpTimeout
from pumpctl.drivers.transport import PortInfo, SerialTransport, list_ports

#: generous safety bound for replies that do come: never decides pass/fail
SAFE_S = 5.0

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="needs posix ptys")


def etx_framer(buf: bytes) -> int | None:
    end = buf.find(b"\x03")
    return end + 1 if end >= 0 else None


def never_complete(buf: bytes) -> int | None:
    return None


def answer(request: bytes) -> bytes:
    """The responders' protocol: `text` CR -> STX TEXT ETX."""
    return b"\x02" + request.rstrip(b"\r").upper() + b"\x03"


class Responder:
    """Asyncio TCP peer: answers each CR-terminated request and records how many requests it held
    unanswered at once (the transport's lock must keep that at 1)."""

    def __init__(self, extra: Callable[[bytes], bytes] = lambda req: b"") -> None:
        self.extra = extra
        self.requests: list[bytes] = []
        self.max_pending = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.connected = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        self.connected.set()
        buf = b""
        while data := await reader.read(1024):
            buf += data
            self.max_pending = max(self.max_pending, buf.count(b"\r"))
            while b"\r" in buf:
                req, _, buf = buf.partition(b"\r")
                self.requests.append(req)
                writer.write(answer(req) + self.extra(req))
                await writer.drain()
        writer.close()


@pytest.fixture
async def tcp() -> AsyncIterator[tuple[Responder, str]]:
    responder = Responder()
    server = await asyncio.start_server(responder.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield responder, f"socket://127.0.0.1:{port}"
    for w in responder.writers:
        w.close()
    server.close()
    await server.wait_closed()


async def test_loop_url_echo() -> None:
    t = SerialTransport("loop://", clock=RealClock())
    await t.open()
    try:
        reply = await t.exchange(b"\x02abc\x03", etx_framer, SAFE_S)
        assert reply == b"\x02abc\x03"
        # the framer decides where a reply ends; the rest is stale for the next exchange
        assert await t.exchange(b"\x02x\x03\x02y\x03", etx_framer, SAFE_S) == b"\x02x\x03"
    finally:
        await t.close()
    assert not t.is_open


async def test_socket_exchange(tcp: tuple[Responder, str]) -> None:
    responder, url = tcp
    t = SerialTransport(url, baudrate=9600, clock=RealClock())
    await t.open()
    try:
        assert await t.exchange(b"0ver\r", etx_framer, SAFE_S) == b"\x020VER\x03"
        assert await t.exchange(b"0dis\r", etx_framer, SAFE_S) == b"\x020DIS\x03"
    finally:
        await t.close()
    assert responder.requests == [b"0ver", b"0dis"]


async def test_lock_serialises_concurrent_exchanges(tcp: tuple[Responder, str]) -> None:
    responder, url = tcp
    t = SerialTransport(url, clock=RealClock())
    await t.open()
    try:
        requests = [f"{n}run".encode() + b"\r" for n in range(8)]
        replies = await asyncio.gather(*(t.exchange(r, etx_framer, SAFE_S) for r in requests))
    finally:
        await t.close()
    assert replies == [answer(r) for r in requests]
    assert responder.max_pending == 1


async def test_stale_bytes_are_discarded_and_logged() -> None:
    responder = Responder(extra=lambda req: b"\x02LATE\x03" if req == b"first" else b"")
    server = await asyncio.start_server(responder.handle, "127.0.0.1", 0)
    url = f"socket://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    t = SerialTransport(url, clock=RealClock())
    await t.open()
    try:
        assert await t.exchange(b"first\r", etx_framer, SAFE_S) == b"\x02FIRST\x03"
        with capture_logs() as logs:
            assert await t.exchange(b"second\r", etx_framer, SAFE_S) == b"\x02SECOND\x03"
    finally:
        await t.close()
        server.close()
        await server.wait_closed()
    stale = [e for e in logs if e["event"] == "transport.stale_bytes"]
    assert [e["rx"] for e in stale] == ["02 4c 41 54 45 03"]


async def test_a_packet_still_arriving_is_dropped_whole_not_split(
    tcp: tuple[Responder, str],
) -> None:
    """An unsolicited packet (an NE auto-alarm) half received when the next command goes out:
    dropping only its head would leave its tail to pass for the reply (seen on a pty at 600x)."""
    _, url = tcp
    t = SerialTransport(url, clock=RealClock())
    await t.open()
    try:
        t._buffer += b"\x02AL"  # the head of a packet is in; the rest is on the wire
        task = asyncio.create_task(t.exchange(b"second\r", etx_framer, SAFE_S))
        for _ in range(5):
            await asyncio.sleep(0)  # let the exchange reach its stale check
        assert not task.done()
        t._buffer += b"ARM\x03"
        t._data_event.set()
        assert await task == b"\x02SECOND\x03"
    finally:
        await t.close()


async def test_timeout_names_port_and_baud() -> None:
    t = SerialTransport("loop://", baudrate=2400, clock=RealClock())
    await t.open()
    try:
        with pytest.raises(PumpTimeout) as info:
            await t.exchange(b"0\r", never_complete, 0.05)
    finally:
        await t.close()
    assert "loop://" in str(info.value) and "2400 baud" in str(info.value)
    assert isinstance(info.value, TimeoutError)


async def test_a_scaled_rig_clock_does_not_shorten_the_reply_timeout() -> None:
    """Bytes on a wire take wall time whatever the clock's scale: at 1000x a 0.05 s reply
    timeout must still wait 0.05 s of wall time, not 50 µs."""
    t = SerialTransport("loop://", clock=RealClock(time_scale=1000.0))
    await t.open()
    loop = asyncio.get_running_loop()
    try:
        t0 = loop.time()
        with pytest.raises(PumpTimeout, match=r"within 0\.05 s"):
            await t.exchange(b"0\r", never_complete, 0.05)
        waited = loop.time() - t0
    finally:
        await t.close()
    assert waited >= 0.05  # a loop timer never fires before its time; no upper bound asserted


async def test_peer_hangup_is_a_connection_error(tcp: tuple[Responder, str]) -> None:
    responder, url = tcp
    t = SerialTransport(url, clock=RealClock())
    await t.open()
    try:
        await responder.connected.wait()
        for w in responder.writers:
            w.close()
        with pytest.raises(PumpConnectionError):
            await t.exchange(b"0\r", etx_framer, SAFE_S)
    finally:
        await t.close()


@pytest.mark.parametrize("port", ["/dev/pumpctl-no-such-port", "socket://127.0.0.1:1", "bogus://x"])
async def test_open_failure(port: str) -> None:
    t = SerialTransport(port, clock=RealClock())
    with pytest.raises(PumpConnectionError, match="cannot open") as info:
        await t.open()
    assert info.value.__cause__ is not None
    with pytest.raises(PumpConnectionError, match="not open"):
        await t.exchange(b"0\r", etx_framer, SAFE_S)


@pytest.fixture
async def pty_pump() -> AsyncIterator[str]:
    """A pty whose master side answers like the TCP responder, read by the event loop."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    loop = asyncio.get_running_loop()
    buf = bytearray()

    def on_master() -> None:
        try:
            buf.extend(os.read(master, 1024))
        except OSError:
            loop.remove_reader(master)
            return
        while b"\r" in buf:
            req, _, rest = bytes(buf).partition(b"\r")
            buf[:] = rest
            os.write(master, answer(req))

    loop.add_reader(master, on_master)
    yield path
    loop.remove_reader(master)
    os.close(slave)
    os.close(master)


@posix_only
async def test_pty_exchange(pty_pump: str) -> None:
    t = SerialTransport(pty_pump, clock=RealClock())
    await t.open()
    try:
        assert await t.exchange(b"0 rat 5 mm\r", etx_framer, SAFE_S) == b"\x020 RAT 5 MM\x03"
        with pytest.raises(PumpTimeout, match=f"{pty_pump} at 19200 baud"):
            await t.exchange(b"0\r", never_complete, 0.05)
    finally:
        await t.close()


@posix_only
async def test_pty_is_exclusive(pty_pump: str) -> None:
    first = SerialTransport(pty_pump, clock=RealClock())
    await first.open()
    try:
        with pytest.raises(PumpConnectionError, match="cannot open"):
            await SerialTransport(pty_pump, clock=RealClock()).open()
    finally:
        await first.close()
    again = SerialTransport(pty_pump, clock=RealClock())
    await again.open()
    await again.close()


def test_list_ports() -> None:
    ports = list_ports()
    assert all(isinstance(p, PortInfo) for p in ports)
    assert [p.device for p in ports] == sorted(p.device for p in ports)


def test_socket_on_the_virtual_clock() -> None:
    """An in-loop TCP peer answers within one virtual instant; silence times out at once."""

    async def main(clock: Clock) -> tuple[bytes, str, float]:
        responder = Responder()
        server = await asyncio.start_server(responder.handle, "127.0.0.1", 0)
        silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        t = SerialTransport(f"socket://127.0.0.1:{server.sockets[0].getsockname()[1]}", clock=clock)
        mute = SerialTransport(
            f"socket://127.0.0.1:{silent.sockets[0].getsockname()[1]}", clock=clock
        )
        await t.open()
        await mute.open()
        try:
            reply = await t.exchange(b"0\r", etx_framer, 1.0)
            t0 = clock.now()
            with pytest.raises(PumpTimeout) as info:
                await mute.exchange(b"0\r", etx_framer, 30.0)
            waited = clock.now() - t0
        finally:
            await t.close()
            await mute.close()
            server.close()
            silent.close()
        return reply, str(info.value), waited

    reply, message, waited = run_with_clock(main, virtual=True)
    assert reply == b"\x020\x03"
    assert "within 30 s" in message
    assert waited == pytest.approx(30.0)


@pytest.fixture
async def raw_pty() -> AsyncIterator[tuple[int, SerialTransport]]:
    """A transport open on a bare pty: the test plays the pump on the master side by hand."""
    master, slave = os.openpty()
    t = SerialTransport(os.ttyname(slave), clock=RealClock())
    await t.open()
    yield master, t
    await t.close()
    os.close(slave)
    with contextlib.suppress(OSError):
        os.close(master)


async def request_seen(master: int) -> None:
    """Read the pump side until a whole request is in (blocking reads, off the loop)."""
    got = b""
    while not got.endswith(b"\r"):
        got += await asyncio.to_thread(os.read, master, 64)


@posix_only
async def test_pty_reply_in_pieces_completes_only_when_whole(
    raw_pty: tuple[int, SerialTransport],
) -> None:
    master, t = raw_pty
    task = asyncio.create_task(t.exchange(b"0\r", etx_framer, SAFE_S))
    await request_seen(master)
    os.write(master, b"\x0200")
    for _ in range(5):
        await asyncio.sleep(0)  # the head is delivered; no whole reply yet
    assert not task.done()
    os.write(master, b"S\x03")
    assert await task == b"\x0200S\x03"


@posix_only
async def test_pty_bytes_not_yet_delivered_are_drained_before_a_request(
    raw_pty: tuple[int, SerialTransport],
) -> None:
    """A late reply still in the OS queue when the next request goes out (the loop has not run
    since) must not pass for that request's reply."""
    master, t = raw_pty
    os.write(master, b"\x02LATE\x03")
    # block the loop itself until the port holds the bytes, so the loop never reads them
    assert select.select([t._fd], [], [], SAFE_S)[0]

    async def pump() -> None:
        await request_seen(master)
        os.write(master, b"\x02NEW\x03")

    with capture_logs() as logs:
        answered = asyncio.create_task(pump())
        assert await t.exchange(b"0\r", etx_framer, SAFE_S) == b"\x02NEW\x03"
        await answered
    stale = [e for e in logs if e["event"] == "transport.stale_bytes"]
    assert [e["rx"] for e in stale] == ["02 4c 41 54 45 03"]


@posix_only
async def test_pty_other_end_closing_mid_wait_is_a_connection_error(
    raw_pty: tuple[int, SerialTransport],
) -> None:
    master, t = raw_pty
    task = asyncio.create_task(t.exchange(b"0\r", never_complete, SAFE_S))
    await request_seen(master)
    os.close(master)
    with pytest.raises(PumpConnectionError):
        await task


def test_a_timeout_after_quick_replies_waits_its_whole_time() -> None:
    """The transport keeps one reply timer across exchanges: a silent reply after a run of quick
    ones still waits its own timeout from its own request, no less and no more."""

    async def main(clock: Clock) -> list[float]:
        responder = Responder()
        server = await asyncio.start_server(responder.handle, "127.0.0.1", 0)
        t = SerialTransport(f"socket://127.0.0.1:{server.sockets[0].getsockname()[1]}", clock=clock)
        await t.open()
        waits = []
        try:
            for _ in range(3):
                for _ in range(20):  # quick replies 0.35 s apart: one armed timer outlives them
                    assert await t.exchange(b"0\r", etx_framer, 1.0) == b"\x020\x03"
                    await clock.sleep(0.35)
                t0 = clock.now()
                with pytest.raises(PumpTimeout):
                    await t.exchange(b"0\r", never_complete, 1.0)
                waits.append(clock.now() - t0)
        finally:
            await t.close()
            server.close()
        return waits

    assert run_with_clock(main, virtual=True) == [pytest.approx(1.0)] * 3
