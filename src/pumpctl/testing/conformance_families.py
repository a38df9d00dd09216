"""The families the conformance suite checks, and the parameters each is checked with.

The built-in families are tuned here (syringe or tubing, rate, target, a rate too fast for the
pump, and valid requests of their grammar that the fuzzer mutates into near misses); a family
another package registers gets defaults from its spec's container kind.
"""

from __future__ import annotations

from dataclasses import dataclass

from pumpctl.drivers.base import PumpDriver
from pumpctl.families import family as family_spec
from pumpctl.simulator.registry import emulation_models

__all__ = ["BUILTIN", "Family", "conformance_families"]


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
