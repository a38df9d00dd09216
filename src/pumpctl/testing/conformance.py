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
from dataclasses import dataclass
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
from pumpctl.families import family as family_spec
from pumpctl.simulator.devices.base import Emulation, PumpSnapshot
from pumpctl.simulator.endpoints import InMemoryTransport, PtyEndpoint
from pumpctl.simulator.registry import default_address, emulation_models
from pumpctl.simulator.server import build_emulation

__all__ = ["BUILTIN", "ConformanceSuite", "Family", "conformance_families"]

PTY_TIME_SCALE = 200.0
SAFETY_S = 30.0
WIRES = ("memory", "pty")


@dataclass(frozen=True)
class Family:
    """The parameters one family is checked with, and near-miss seeds for fuzzing `feed`."""

    model: str
    #: syringe inner diameter (mm) or tubing mL per revolution
    syringe_mm: float | None = None
    ml_per_rev: float | None = None
    rate_ml_per_h: float = 60.0
    target_ml: float = 0.5
    too_fast_ml_per_h: float = 1e6
    #: valid requests of the family's grammar; the fuzzer mutates them into near misses
    samples: tuple[bytes, ...] = ()

    async def configure(self, driver: PumpDriver) -> None:
        if self.syringe_mm is not None:
            await driver.configure_syringe(self.syringe_mm)
        else:
            assert self.ml_per_rev is not None
            await driver.configure_tubing(self.ml_per_rev)

    @property
    def resolution_ml(self) -> float:
        return 0.01 if self.ml_per_rev is not None else 0.001


def _safe(body: bytes) -> bytes:
    from pumpctl.simulator.devices.newera import frame_safe

    return frame_safe(body)


BUILTIN: dict[str, Family] = {
    "ne1000": Family(
        "ne1000",
        syringe_mm=26.7,
        samples=(
            b"0DIA26.59\r",
            b"0RAT14.5MH\r",
            b"0VOL0.05\r",
            b"0VOLUL\r",
            b"0DIRINF\r",
            b"0RUN\r",
            b"0STP\r",
            b"0DIS\r",
            b"0CLDINF\r",
            b"0SAF20\r",
            b"0\r",
            b"*ADR\r",
            _safe(b"0RUN"),
            _safe(b"0SAF3"),
        ),
    ),
    "masterflex-ls": Family(
        "masterflex-ls",
        ml_per_rev=0.8,
        rate_ml_per_h=240.0,
        target_ml=2.0,
        samples=(
            b"\x05",
            b"\x05P01\r",
            b"\x02P01\r",
            b"\x02P01S+100.0G\r",
            b"\x02P01S-50G0\r",
            b"\x02P01V0.5G\r",
            b"\x02P01H\r",
            b"\x02P01Z0\r",
            b"\x02P01I\r",
            b"\x02P01U02\r",
            b"\x02P01B10O01\r",
            b"\x18",
        ),
    ),
    "harvard-legacy": Family(
        "harvard-legacy",
        syringe_mm=26.7,
        samples=(
            b"00MMD14.43\r",
            b"00ULM500\r",
            b"00MLT12.345\r",
            b"00RUN\r",
            b"00VOL\r",
            b"00STP\r",
            b"1RAT1.5MM\r",
            b"1DIR REV\r",
            b"1MOD VOL\r",
            b"\r",
            b"00VER\r",
        ),
    ),
    "harvard-elite": Family(
        "harvard-elite",
        syringe_mm=26.7,
        samples=(
            b"0diameter 14.5670 mm\r\n",
            b"0irate 0.5 m/m\r\n",
            b"0tvolume 1e-05 m\r\n",
            b"0irun \r\n",
            b"0crate \r\n",
            b"12:irat 3.2 ul/min\r",
            b"address 3\r",
            b"baud 9600\r",
            b"force 30\r",
            b"0  \r\n",
            b"\r\n",
        ),
    ),
}

# issue #16: Chemyx, the Legato profile of the Elite, and the Cavro command set (the syringe's
# stroke volume is its `ml_per_rev`: 1 mL; the target spans one dispense-and-refill cycle)
_CAVRO_SAMPLES = (
    b"/1ZR\r",
    b"/1Z0,1,2R\r",
    b"/1N1R\r",
    b"/1Q\r",
    b"/1QR\r\n",
    b"/1?\r",
    b"/1?6\r",
    b"/1?16\r",
    b"/1OV100D24000IV3000P24000OR\r",
    b"/1gP50gP100D100G10G5R\r",
    b"/1V500R\r",
    b"/1TR\r",
    b"/_ZR\r",
    b"\x02\x31\x31ZR\x03\x09",
    b"\x02\x31\x39ZR\x03\x01",
    b"\x02\x31\x32Q\x03\x53",
)
for _model in (
    "tecan-xcalibur", "tecan-xcalibur-oem", "tecan-xlp6000", "tecan-xlp6000-oem",
    "hamilton-psd4", "hamilton-psd6",
):  # fmt: skip
    BUILTIN[_model] = Family(_model, ml_per_rev=1.0, target_ml=1.5, samples=_CAVRO_SAMPLES)
BUILTIN["chemyx-fusion"] = Family(
    "chemyx-fusion",
    syringe_mm=26.7,
    samples=(
        b"set units 1\r",
        b"set diameter 26.700\r",
        b"set rate 60\r",
        b"set volume -0.5\r",
        b"1 start\r\n",
        b"pump status\r",
        b"dispensed volume\r",
        b"read limit parameter 0\r",
        b"pause\r",
        b"stop \r",
        b" set units 0\r",
    ),
)
BUILTIN["kds-legato"] = Family(
    "kds-legato",
    syringe_mm=26.7,
    samples=(
        b"@poll on\r\n",
        b"@irate 1 ml/min\r\n",
        b"12irat 3.2 u/m\r",
        b"@irate lim\r\n",
        b"@version\r\n",
        b"@time 05/08/23 14:48:23\r\n",
        b"@load qs iw\r\n",
        b"@nvram none\r\n",
        b"@addr 2\r\n",
        b"@tvolume 0.5 ml\r\n",
        b"\r\n",
    ),
)


def conformance_families() -> tuple[Family, ...]:
    """Every installed family with both a driver and an emulation: the tuned built-in entries,
    and defaults from the spec (container kind) for families other packages register."""
    out = []
    for model in emulation_models():
        if model in BUILTIN:
            out.append(BUILTIN[model])
            continue
        if family_spec(model).container == "syringe":
            out.append(Family(model, syringe_mm=26.7))
        else:
            out.append(Family(model, ml_per_rev=0.8, rate_ml_per_h=240.0, target_ml=2.0))
    return tuple(out)


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
