"""Tecan Cavro XCalibur / XLP 6000 and Hamilton PSD/4, PSD/6: the "Cavro command set" family.

These are syringe pumps with a valve, built to aspirate and dispense, not to push one syringe
for hours: a plunger stroke moves the syringe's nominal volume in `steps_per_stroke`
increments, at a top speed `V` in pulses/s (XCalibur operating manual 733085-B §3.3.2 "N",
§3.5.3 "V", App. E). To deliver more than one syringe, the driver dispenses through the output
port and refills from the reservoir port in cycles.

So pumpctl describes the pump by its syringe's *stroke volume* and the reservoir behind its
valve, which is what a program's `pump: {tubing: {ml_per_rev: S}, reservoir: {volume: R}}`
says: S mL per stroke ("revolution" of the cycle), R mL in the bottle on the reservoir port.
The supervisor then counts the reservoir as the container and the driver hides the strokes.

Quantization (rounded DOWN, as every family):
- a volume is a whole number of fine-positioning increments (`N1`): S / `steps_per_stroke` mL;
- a rate is the *average* over a dispense-and-refill cycle of a full stroke at an integer top
  speed `V`: S x 3600 / (pulses_per_stroke / V + refill time + two valve moves) mL/h. The
  instantaneous rate while dispensing is higher by the refill's share of the cycle, so a
  program's rate holds over hours of cycles, and its volumes are exact to one increment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

from pumpctl.families.quantize import NotRepresentable
from pumpctl.families.spec import Addresses, FamilySpec, LineSettings, NumberFormat, RotorMotor

__all__ = [
    "FIRMWARE_MARKS",
    "MODELS",
    "SPECS",
    "CavroModel",
    "CavroQuantizer",
    "SpeedSetting",
    "StepSetting",
    "other_model",
]

Protocol = Literal["dt", "oem"]


@dataclass(frozen=True, kw_only=True)
class CavroModel:
    """One pump model's mechanics (data both the driver and the emulation read)."""

    #: full-stroke increments in standard (`N0`) and fine-positioning (`N1`) mode
    standard_steps: int
    steps_per_stroke: int
    #: `V` pulses for one full stroke (V counts N0 half-steps per second)
    pulses_per_stroke: int
    #: top speed `V` range, pulses/s
    speed_range: tuple[int, int]
    #: `V` the driver aspirates from the reservoir with (a full stroke in pulses / this s)
    refill_speed: int
    #: seconds per valve move to the next port (XCalibur App. E: <= 250 ms)
    valve_move_s: float
    #: syringe sizes made for the pump, mL
    syringes_ml: tuple[float, ...]
    #: highest address switch position (0..E; a 16th, `@`, only on the Centris)
    last_address: int = 14
    #: the controller notices a finished stroke at its next poll: half the supervisor's default
    #: 1 s interval on average, counted in each cycle
    controller_wait_s: float = 0.5
    #: strokes per minute a program may ask for: the controller's wait is a poll interval at
    #: worst, so a stroke shorter than 48 s could drift the average by more than the pump's
    #: 1 % accuracy and trip the supervisor's rate x time check (SR22)
    max_strokes_per_min: float = 1.25

    @property
    def dead_time_s(self) -> float:
        """Refill of a full stroke, the two valve moves and the controller's wait, s."""
        refill_s = self.pulses_per_stroke / self.refill_speed
        return refill_s + 2 * self.valve_move_s + self.controller_wait_s

    def cycle_s(self, speed: int) -> float:
        """One full-stroke dispense at `V = speed` and its refill, s."""
        return self.pulses_per_stroke / speed + self.dead_time_s

    def strokes_per_min(self, speed: int) -> float:
        return 60.0 / self.cycle_s(speed)


XCALIBUR = CavroModel(
    standard_steps=3000,
    steps_per_stroke=24000,
    pulses_per_stroke=6000,
    speed_range=(5, 6000),
    refill_speed=3000,
    valve_move_s=0.25,
    syringes_ml=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
#: XLP 6000 manual 734237-C p.3-45: positions in half-steps (N0) or microsteps (N1); speeds in
#: pulses/s 5..6000 for 6000 pulses a stroke (as labmcp-cavro reads the same manual)
XLP6000 = CavroModel(
    standard_steps=6000,
    steps_per_stroke=48000,
    pulses_per_stroke=6000,
    speed_range=(5, 6000),
    refill_speed=3000,
    valve_move_s=0.25,
    syringes_ml=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0),
)
#: Hamilton PSD/4 and PSD/6 as pyHamiltonPSD 1.1.0 (Hamilton) encodes them: 3000/24000 and
#: 6000/48000 steps, 6000 and 12000 speed pulses a stroke, V 2..5800 (no manual seen)
PSD4 = CavroModel(
    standard_steps=3000,
    steps_per_stroke=24000,
    pulses_per_stroke=6000,
    speed_range=(2, 5800),
    refill_speed=3000,
    valve_move_s=0.25,
    syringes_ml=(0.0125, 0.025, 0.05, 0.1, 0.125, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0),
)
PSD6 = CavroModel(
    standard_steps=6000,
    steps_per_stroke=48000,
    pulses_per_stroke=12000,
    speed_range=(2, 5800),
    refill_speed=5800,
    valve_move_s=0.25,
    syringes_ml=PSD4.syringes_ml,
)


class StepSetting(NamedTuple):
    steps: int  # N1 increments
    value_ml: float


class SpeedSetting(NamedTuple):
    speed: int  # V, pulses/s
    value_ml_per_h: float  # the cycle's average rate


@dataclass(frozen=True)
class CavroQuantizer:
    """Increments and integer top speeds for one syringe (`stroke_ml`) on one model."""

    mechanics: CavroModel
    stroke_ml: float

    @classmethod
    def for_container(
        cls, spec: FamilySpec, inner_diameter_mm: float | None, ml_per_rev: float | None
    ) -> CavroQuantizer:
        if ml_per_rev is None:
            raise ValueError(f"{spec.model}: give the syringe's stroke volume (tubing.ml_per_rev)")
        return cls(MODELS[spec.model][0], ml_per_rev)

    @property
    def step_ml(self) -> float:
        return self.stroke_ml / self.mechanics.steps_per_stroke

    def volume_setting(self, volume_ml: float, *, slack_ml: float = 0.0) -> StepSetting:
        """Whole increments at or below `volume_ml` (+ `slack_ml`: float noise a caller's own
        rounding added, at most a nanolitre). The value is exactly `steps` increments, so it
        comes back as the same number of increments."""
        if not math.isfinite(volume_ml) or volume_ml < 0:
            raise NotRepresentable("volume", volume_ml, "mL", self.step_ml)
        steps = math.floor((volume_ml + slack_ml) / self.step_ml + 1e-6)
        if steps <= 0:
            raise NotRepresentable("volume", volume_ml, "mL", self.step_ml)
        return StepSetting(steps, steps * self.step_ml)

    def average_ml_per_h(self, speed: int) -> float:
        return self.stroke_ml * 3600.0 / self.mechanics.cycle_s(speed)

    def dispense_ml_per_h(self, speed: int) -> float:
        """The rate while the plunger moves (above the average by the refill's share)."""
        return self.stroke_ml * 3600.0 * speed / self.mechanics.pulses_per_stroke

    def rate_setting(self, rate_ml_per_h: float) -> SpeedSetting:
        m = self.mechanics
        low, high = m.speed_range
        step = self.rate_step_ml_per_h(rate_ml_per_h)
        if not math.isfinite(rate_ml_per_h) or rate_ml_per_h <= 0:
            raise NotRepresentable("rate", rate_ml_per_h, "mL/h", step)
        if rate_ml_per_h > self.average_ml_per_h(high) * (1 + 1e-9):
            raise NotRepresentable(
                "rate", rate_ml_per_h, "mL/h", step,
                f"rate {rate_ml_per_h:g} mL/h above the {self.average_ml_per_h(high):.6g} mL/h "
                f"of V{high} with a {self.stroke_ml:g} mL syringe",
            )  # fmt: skip
        cycle = self.stroke_ml * 3600.0 / rate_ml_per_h - m.dead_time_s
        speed = high if cycle <= 0 else min(high, math.floor(m.pulses_per_stroke / cycle + 1e-6))
        if speed < low:
            raise NotRepresentable(
                "rate", rate_ml_per_h, "mL/h", step,
                f"rate {rate_ml_per_h:g} mL/h below the {self.average_ml_per_h(low):.6g} mL/h of "
                f"V{low} with a {self.stroke_ml:g} mL syringe",
            )  # fmt: skip
        return SpeedSetting(speed, self.average_ml_per_h(speed))

    def floor_volume_ml(self, volume_ml: float) -> float:
        return self.volume_setting(volume_ml).value_ml

    def floor_rate_ml_per_h(self, rate_ml_per_h: float) -> float:
        return self.rate_setting(rate_ml_per_h).value_ml_per_h

    def volume_step_ml(self, volume_ml: float) -> float:
        return self.step_ml

    def rate_step_ml_per_h(self, rate_ml_per_h: float) -> float:
        m = self.mechanics
        low, high = m.speed_range
        guess = m.pulses_per_stroke / max(self.stroke_ml * 3600.0 / max(rate_ml_per_h, 1e-12)
                                          - m.dead_time_s, 1e-9)  # fmt: skip
        v = min(max(int(guess), low), high - 1)
        return self.average_ml_per_h(v + 1) - self.average_ml_per_h(v)

    def wire_volume(self, volume_ml: float | None) -> str:
        if volume_ml is None:
            return "dispense until stopped (refills from the reservoir)"
        setting = self.volume_setting(volume_ml)
        return f"D{setting.steps} increments in strokes of {self.mechanics.steps_per_stroke}"

    def wire_rate(self, rate_ml_per_h: float) -> str:
        return f"V{self.rate_setting(rate_ml_per_h).speed}"


def _spec(
    model: str,
    name: str,
    title: str,
    pumps: tuple[str, ...],
    mechanics: CavroModel,
    protocol: Protocol,
    driver: str,
    emulation: str,
) -> FamilySpec:
    low, high = mechanics.speed_range
    framing = "DT `/1...R` CR" if protocol == "dt" else "OEM STX/ETX, sequence, checksum"
    return FamilySpec(
        model=model,
        name=name,
        title=title,
        pumps=pumps,
        protocol=f"Cavro command set, {framing}; syringe + valve, refill cycles",
        container="tubing",
        # XC Table 3-3/3-4: 9600 8N1 (38400 with U47), both protocols
        line=LineSettings(baud=9600),
        baud_rates=(9600, 38400),
        addresses=Addresses(first=0, last=mechanics.last_address, default=0, reply_digits=None),
        numbers={"steps": NumberFormat(max_decimals=0), "speed": NumberFormat(max_decimals=0)},
        motor=RotorMotor(
            rpm=(
                mechanics.strokes_per_min(low),
                min(mechanics.strokes_per_min(high), mechanics.max_strokes_per_min),
            ),
            tubing_ml_per_rev={round(s * 1000): s for s in mechanics.syringes_ml},
        ),
        # XCalibur App. E: accuracy < 1 % at full stroke (precision < 0.05 % CV)
        accuracy_percent=1.0,
        demo_program="acute-pain-cavro.yaml",
        driver=driver,
        emulation=emulation,
        make_quantizer=CavroQuantizer.for_container,
    )


_DRV, _EMU = "pumpctl.drivers.cavro", "pumpctl.simulator.devices.cavro"
_XC = ("XCalibur", "Tecan Cavro XCalibur", ("XCalibur", "XC 3000"))
_XLP = ("XLP 6000", "Tecan Cavro XLP 6000", ("XLP 6000", "XMP 6000"))
_PSD4 = ("PSD/4", "Hamilton PSD/4", ("PSD/4",))
_PSD6 = ("PSD/6", "Hamilton PSD/6", ("PSD/6",))


def _entry(
    model: str, names: tuple[str, str, tuple[str, ...]], mechanics: CavroModel,
    protocol: Protocol, cls: str,
) -> tuple[CavroModel, Protocol, FamilySpec]:  # fmt: skip
    name, title, pumps = names
    spec = _spec(
        model, name, f"{title} ({protocol.upper()} protocol)", pumps, mechanics, protocol,
        f"{_DRV}:{cls}Driver", f"{_EMU}:{cls}Emulation",
    )  # fmt: skip
    return mechanics, protocol, spec


#: model name -> (mechanics, protocol, spec)
MODELS: dict[str, tuple[CavroModel, Protocol, FamilySpec]] = {
    "tecan-xcalibur": _entry("tecan-xcalibur", _XC, XCALIBUR, "dt", "XCalibur"),
    "tecan-xcalibur-oem": _entry("tecan-xcalibur-oem", _XC, XCALIBUR, "oem", "XCaliburOem"),
    "tecan-xlp6000": _entry("tecan-xlp6000", _XLP, XLP6000, "dt", "Xlp6000"),
    "tecan-xlp6000-oem": _entry("tecan-xlp6000-oem", _XLP, XLP6000, "oem", "Xlp6000Oem"),
    "hamilton-psd4": _entry("hamilton-psd4", _PSD4, PSD4, "dt", "Psd4"),
    "hamilton-psd6": _entry("hamilton-psd6", _PSD6, PSD6, "dt", "Psd6"),
}
SPECS = {model: spec for model, (_, _, spec) in MODELS.items()}
XCALIBUR_SPEC = SPECS["tecan-xcalibur"]
XCALIBUR_OEM_SPEC = SPECS["tecan-xcalibur-oem"]
XLP6000_SPEC = SPECS["tecan-xlp6000"]
XLP6000_OEM_SPEC = SPECS["tecan-xlp6000-oem"]
PSD4_SPEC = SPECS["hamilton-psd4"]
PSD6_SPEC = SPECS["hamilton-psd6"]

#: words a model's firmware text (`&`) carries, where known (the emulations' texts; real
#: pumps' texts not verified): a pump naming another model is not this one
FIRMWARE_MARKS = {
    "tecan-xcalibur": ("XCALIBUR",),
    "tecan-xcalibur-oem": ("XCALIBUR",),
    "tecan-xlp6000": ("XLP", "XMP"),
    "tecan-xlp6000-oem": ("XLP", "XMP"),
    "hamilton-psd4": ("PSD/4",),
    "hamilton-psd6": ("PSD/6",),
}


def other_model(firmware: str, model: str) -> str | None:
    """The model a firmware text names if that is another model of the family and not
    `model` (None: it names this one, or none known)."""
    text = firmware.upper()
    others = [m for m, marks in FIRMWARE_MARKS.items() if any(k in text for k in marks)]
    return others[0] if others and model not in others else None
