"""One conformance suite for every pump family: its driver against its own emulation.

Driver and emulation of a family are written separately from the manufacturer's documentation
and share no codec, so this is where a framing or units disagreement shows. Each behaviour runs
in memory on the virtual clock and over a real pty at a high time scale; each emulation's
`feed` is fuzzed with random bytes and with near misses of its grammar (it must never raise).

A third-party family joins by installing its `FamilySpec` (entry point `pumpctl.families`): the
default `families` find it. To tune its parameters, subclass in a test module:

    from pumpctl.testing.conformance import ConformanceSuite, Family

    class TestMyPump(ConformanceSuite):
        families = (Family("my-pump", syringe_mm=14.5, samples=(b"0RUN\\r",)),)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pumpctl.clock import Clock, RealClock, run_with_clock
from pumpctl.drivers.base import (
    CommandRejected,
    Direction,
    PumpDriver,
    PumpError,
    PumpState,
    PumpTimeout,
    UnsupportedError,
)
from pumpctl.drivers.registry import driver_class, open_transport
from pumpctl.simulator.devices.base import Emulation, PumpSnapshot
from pumpctl.simulator.endpoints import InMemoryTransport, PtyEndpoint
from pumpctl.simulator.registry import default_address
from pumpctl.simulator.server import build_emulation
from pumpctl.testing.conformance_families import BUILTIN, Family, conformance_families

__all__ = ["BUILTIN", "ConformanceSuite", "Family", "conformance_families"]

PTY_TIME_SCALE = 200.0
SAFETY_S = 30.0
WIRES = ("memory", "pty")


Scenario = Callable[[PumpDriver, Emulation, Clock, Family], Awaitable[None]]


@asynccontextmanager
async def connected(
    fam: Family, wire: str, clock: Clock
) -> AsyncIterator[tuple[PumpDriver, Emulation]]:
    address = default_address(fam.model)
    emu = build_emulation(fam.model, [address])
    cls = driver_class(fam.model)
    if wire == "memory":
        transport = InMemoryTransport(emu, clock, name=f"sim://{fam.model}")
        async with cls(transport, address=address) as d:
            yield d, emu
        return
    endpoint = PtyEndpoint(emu, clock)
    path = await endpoint.start()
    try:
        async with cls(open_transport(path, clock=clock, model=fam.model), address=address) as d:
            yield d, emu
    finally:
        await endpoint.stop()


def run(fam: Family, wire: str, scenario: Scenario) -> None:
    """A hang must fail, not block: wall seconds over a pty, a simulated day in memory."""
    safety = SAFETY_S if wire == "pty" else 86400.0

    async def main(clock: Clock) -> None:
        async with asyncio.timeout(safety), connected(fam, wire, clock) as (driver, emu):
            await scenario(driver, emu, clock, fam)

    if wire == "memory":
        run_with_clock(main, virtual=True)
    else:
        asyncio.run(main(RealClock(PTY_TIME_SCALE)))


async def wait_for_state(driver: PumpDriver, clock: Clock, state: PumpState) -> None:
    while (await driver.read_status()).state is not state:
        await clock.sleep(1.0)


async def start_run(driver: PumpDriver, fam: Family, target_ml: float | None) -> None:
    await fam.configure(driver)
    await driver.clear_counters()
    await driver.set_rate(fam.rate_ml_per_h, Direction.INFUSE)
    await driver.set_target_volume(target_ml)
    await driver.start()


# --------------------------------------------------------------------------- fuzzing

#: bytes that trip parsers: framing, signs, points, exponents, Latin-1 digits that are not ASCII
_NASTY = b"0123456789.+-eE :/\r\n\x00\x02\x03\x05\x06\x15\x18\x7f\xb2\xb3\xb9\xbc\xff"
_BYTE = st.one_of(st.sampled_from(list(_NASTY)), st.integers(0, 255))
_EDIT = st.tuples(
    st.sampled_from(("insert", "delete", "replace", "repeat", "digit", "digit")),
    st.integers(0, 63),
    _BYTE,
)
#: Latin-1 characters `str.isdigit()` calls digits although `int()` refuses them (² ³ ¹)
_FAKE_DIGITS = b"\xb2\xb3\xb9"


def _mutate(sample: bytes, edits: Sequence[tuple[str, int, int]]) -> bytes:
    data = bytearray(sample)
    for kind, at, byte in edits:
        i = at % (len(data) + 1)
        if kind == "insert":
            data[i:i] = bytes((byte,))
        elif kind == "delete" and data:
            del data[min(i, len(data) - 1)]
        elif kind == "replace" and data:
            data[min(i, len(data) - 1)] = byte
        elif kind == "repeat":
            data += data[: i or 1]
        elif kind == "digit":  # one ASCII digit becomes a look-alike
            digits = [j for j, b in enumerate(data) if 0x30 <= b <= 0x39]
            if digits:
                data[digits[i % len(digits)]] = _FAKE_DIGITS[byte % len(_FAKE_DIGITS)]
    return bytes(data)


def _exercise(emu: Emulation, chunks: Sequence[bytes], step_s: float) -> None:
    """Feed every chunk with time passing between; the emulation must never raise."""
    for chunk in chunks:
        emu.feed(chunk)
        emu.advance(step_s)
        emu.read()
    for snap in emu.snapshot().values():
        assert isinstance(snap, PumpSnapshot)


_FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors],
)


# --------------------------------------------------------------------------- the suite


class ConformanceSuite:
    """Every test runs once per family in `families` (and, where it takes `wire`, per wire)."""

    families: ClassVar[Sequence[Family]] = conformance_families()

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        fams = list(self.families)
        ids = [f.model for f in fams]
        if "wire" in metafunc.fixturenames:
            cases = [(f, w) for f in fams for w in WIRES]
            metafunc.parametrize(("fam", "wire"), cases, ids=[f"{f.model}-{w}" for f, w in cases])
        elif "fam" in metafunc.fixturenames:
            metafunc.parametrize("fam", fams, ids=ids)

    def test_identify_and_capabilities(self, fam: Family, wire: str) -> None:
        async def scenario(driver: PumpDriver, emu: Emulation, clock: Clock, fam: Family) -> None:
            ident = await driver.identify()
            assert ident.model
            caps = driver.capabilities
            assert caps.family == fam.model
            assert caps.min_rate_ml_per_h < fam.rate_ml_per_h < caps.max_rate_ml_per_h

        run(fam, wire, scenario)

    def test_run_to_target_stops_by_itself_and_counts_it(self, fam: Family, wire: str) -> None:
        async def scenario(driver: PumpDriver, emu: Emulation, clock: Clock, fam: Family) -> None:
            await start_run(driver, fam, fam.target_ml)
            assert (await driver.read_status()).state is PumpState.RUNNING
            await wait_for_state(driver, clock, PumpState.STOPPED)
            delivered = await driver.read_delivered()
            assert delivered.infused_ml == pytest.approx(fam.target_ml, abs=fam.resolution_ml)
            emu.advance(0.0)
            truth = emu.snapshot()[default_address(fam.model)]
            assert truth.running is False
            assert truth.delivered_ml == pytest.approx(fam.target_ml, abs=2 * fam.resolution_ml)

        run(fam, wire, scenario)

    def test_pause_resume_stop(self, fam: Family, wire: str) -> None:
        async def scenario(driver: PumpDriver, emu: Emulation, clock: Clock, fam: Family) -> None:
            await start_run(driver, fam, 50 * fam.target_ml)
            await clock.sleep(5.0)
            await driver.pause()
            assert (await driver.read_status()).state is PumpState.PAUSED
            paused_at = (await driver.read_delivered()).infused_ml
            await clock.sleep(30.0)
            assert (await driver.read_delivered()).infused_ml == pytest.approx(paused_at)
            await driver.start()
            assert (await driver.read_status()).state is PumpState.RUNNING
            await driver.stop()
            assert (await driver.read_status()).state is PumpState.STOPPED
            await driver.stop()  # idempotent
            stopped_at = (await driver.read_delivered()).infused_ml
            await clock.sleep(30.0)
            assert (await driver.read_delivered()).infused_ml == pytest.approx(stopped_at)
            assert 0 < stopped_at < 50 * fam.target_ml

        run(fam, wire, scenario)

    def test_out_of_range_rate_is_refused_and_changes_nothing(self, fam: Family, wire: str) -> None:
        async def scenario(driver: PumpDriver, emu: Emulation, clock: Clock, fam: Family) -> None:
            await fam.configure(driver)
            with pytest.raises((CommandRejected, UnsupportedError, ValueError)):
                await driver.set_rate(fam.too_fast_ml_per_h, Direction.INFUSE)
            assert (await driver.read_status()).state is PumpState.STOPPED

        run(fam, wire, scenario)

    def test_silence_is_a_timeout(self, fam: Family, wire: str) -> None:
        async def scenario(driver: PumpDriver, emu: Emulation, clock: Clock, fam: Family) -> None:
            await driver.read_status()
            emu.set_link_up(False)
            driver.reply_timeout_s = 0.05  # wall s over a pty: no reply is coming
            with pytest.raises(PumpTimeout) as info:
                await driver.read_status()
            assert isinstance(info.value, PumpError)
            emu.set_link_up(True)
            assert (await driver.read_status()).state is PumpState.STOPPED

        run(fam, wire, scenario)

    @_FUZZ
    @given(
        chunks=st.lists(st.binary(max_size=48), max_size=12), step_s=st.sampled_from((0, 0.05, 7))
    )
    def test_feed_never_raises_on_random_bytes(
        self, fam: Family, chunks: list[bytes], step_s: float
    ) -> None:
        emu = build_emulation(fam.model, [default_address(fam.model)])
        _exercise(emu, chunks, step_s)

    @_FUZZ
    @given(data=st.data(), step_s=st.sampled_from((0, 0.05, 7)))
    def test_feed_never_raises_on_near_miss_commands(
        self, fam: Family, data: st.DataObject, step_s: float
    ) -> None:
        """Valid requests of the family's grammar with a few bytes inserted, deleted, replaced
        or repeated (non-ASCII digits, stray framing): answered or ignored, never an exception."""
        if not fam.samples:
            pytest.skip(f"{fam.model}: no grammar samples given (random bytes still fuzzed)")
        emu = build_emulation(fam.model, [default_address(fam.model)])
        chunks = []
        for _ in range(data.draw(st.integers(1, 6))):
            sample = data.draw(st.sampled_from(fam.samples))
            chunks.append(_mutate(sample, data.draw(st.lists(_EDIT, max_size=4))))
        _exercise(emu, chunks, step_s)
