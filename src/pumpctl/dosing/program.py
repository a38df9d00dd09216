"""The infusion program file: pydantic models with the portable field names of the issue.

Quantities are written with units ("0.35 mg/kg", "10 min") and parsed once, by `pumpctl.dosing.units`,
into canonical floats (mg, kg, mL, mL/h, s, mg/kg, mg/mL); dose rates keep how they were written
for display. Unknown fields are errors, so a typo ("duraton") can never silently drop a limit.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from pumpctl.dosing.units import (
    DoseRate,
    Kind,
    QuantityError,
    RateKind,
    parse,
    parse_dose_rate,
    plain_number,
)
from pumpctl.dosing.yaml_input import Issue, ProgramError, load_yaml_mapping

__all__ = [
    "Bolus",
    "CareArea",
    "Drug",
    "Issue",
    "Kvo",
    "Loading",
    "Maintenance",
    "Patient",
    "Phases",
    "Prime",
    "Program",
    "ProgramError",
    "Pump",
    "Syringe",
    "Taper",
    "Tci",
    "Titration",
    "Tubing",
    "example_path",
    "load_program",
    "load_program_text",
    "load_yaml_mapping",
]

CareArea = Literal["adult", "pediatric", "canine", "feline"]


def _quantity(kind: Kind) -> Callable[[Any, ValidationInfo], float]:
    def validate(value: Any, info: ValidationInfo) -> float:
        try:
            return parse(value, kind, info.field_name or "value")
        except QuantityError as exc:  # pydantic's location names the field in full
            raise ValueError(exc.reason) from None

    return validate


def _plain(expected: str) -> Callable[[Any, ValidationInfo], float]:
    def validate(value: Any, info: ValidationInfo) -> float:
        try:
            return plain_number(value, info.field_name or "value", expected)
        except QuantityError as exc:
            raise ValueError(exc.reason) from None

    return validate


def _rate(*allowed: RateKind) -> Callable[[Any, ValidationInfo], DoseRate]:
    def validate(value: Any, info: ValidationInfo) -> DoseRate:
        if isinstance(value, DoseRate):
            return value
        try:
            return parse_dose_rate(value, info.field_name or "rate", allowed=allowed)
        except QuantityError as exc:
            raise ValueError(exc.reason) from None

    return validate


def _positive_rate(rate: DoseRate) -> DoseRate:
    if rate.canonical <= 0:
        raise ValueError(f"rate must be greater than 0, got {rate}")
    return rate


Mass = Annotated[float, BeforeValidator(_quantity(Kind.MASS)), Field(gt=0)]
Weight = Annotated[float, BeforeValidator(_quantity(Kind.WEIGHT)), Field(gt=0)]
Volume = Annotated[float, BeforeValidator(_quantity(Kind.VOLUME)), Field(gt=0)]
Length = Annotated[float, BeforeValidator(_quantity(Kind.LENGTH)), Field(gt=0)]
Duration = Annotated[float, BeforeValidator(_quantity(Kind.TIME)), Field(gt=0)]
Concentration = Annotated[float, BeforeValidator(_quantity(Kind.CONCENTRATION)), Field(gt=0)]
DosePerWeight = Annotated[float, BeforeValidator(_quantity(Kind.DOSE_PER_WEIGHT)), Field(gt=0)]
VolumeRate = Annotated[float, BeforeValidator(_quantity(Kind.VOLUME_RATE)), Field(gt=0)]
PlasmaConcentration = Annotated[
    float, BeforeValidator(_quantity(Kind.PLASMA_CONCENTRATION)), Field(gt=0)
]
AnyRate = Annotated[DoseRate, BeforeValidator(_rate(*RateKind)), AfterValidator(_positive_rate)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Drug(_Strict):
    name: str = Field(min_length=1)
    concentration: Concentration
    #: the library's allowed concentrations are per route (SR07: no undiluted 100 mg/mL IV)
    route: str = Field(default="IV", min_length=1)


class Patient(_Strict):
    weight: Weight
    care_area: CareArea
    id: str | None = None


class Syringe(_Strict):
    inner_diameter: Length
    volume: Volume


class Tubing(_Strict):
    #: calibrated volume per revolution; L/S tubing spans about 0.001 to 5 mL/rev
    ml_per_rev: Annotated[float, BeforeValidator(_plain("mL per revolution, e.g. 0.8"))] = Field(
        gt=0, le=100
    )


class Reservoir(_Strict):
    volume: Volume


class Pump(_Strict):
    syringe: Syringe | None = None
    tubing: Tubing | None = None
    #: bag or bottle feeding a peristaltic pump; its volume is the container capacity
    reservoir: Reservoir | None = None
    #: "allowed": the plan may need more than one container (syringe changes by the operator)
    changes: Literal["allowed", "none"] = "none"

    @model_validator(mode="after")
    def _one_mechanism(self) -> Pump:
        if (self.syringe is None) == (self.tubing is None):
            raise ValueError("give exactly one of syringe or tubing")
        if self.reservoir is not None and self.tubing is None:
            raise ValueError("reservoir applies to tubing; a syringe's capacity is syringe.volume")
        return self


class Prime(_Strict):
    volume: Volume | None = None
    rate: VolumeRate | None = None
    skip: bool = False
    reason: str | None = None

    @model_validator(mode="after")
    def _volume_or_skip(self) -> Prime:
        if self.skip:
            if not (self.reason and self.reason.strip()):
                raise ValueError("skipping the prime needs a reason")
            if self.volume is not None:
                raise ValueError("give volume or skip, not both")
        elif self.volume is None:
            raise ValueError("give volume, or skip: true with a reason")
        return self


class Loading(_Strict):
    dose: DosePerWeight
    over: Duration


class Taper(_Strict):
    """The maintenance ends by stepping down: `steps` equal steps over its last `over`."""

    steps: int = Field(ge=1, le=20)
    over: Duration


class Maintenance(_Strict):
    rate: AnyRate
    duration: Duration | None = None
    volume: Volume | None = None
    until_stopped: bool = False
    #: the prescriber's ceiling for this program (e.g. outpatient "cap 25 mg/h"); caps titration
    max_rate: AnyRate | None = None
    taper: Taper | None = None

    @model_validator(mode="after")
    def _one_end(self) -> Maintenance:
        ends = [self.duration is not None, self.volume is not None, self.until_stopped]
        if sum(ends) != 1:
            raise ValueError("give exactly one of duration, volume or until_stopped: true")
        if self.taper is not None and self.until_stopped:
            raise ValueError("a maintenance that runs until stopped has no end to taper")
        return self


class Tci(_Strict):
    """Target-controlled infusion: the supervisor computes the rate every 10 s from the volume
    the pump reports delivered, so the predicted concentration at `site` reaches `target`."""

    target: PlasmaConcentration
    site: Literal["plasma", "effect"] = "plasma"
    #: the PK model (`pumpctl models`); default: the care area's (domino for adults)
    model: str | None = None
    duration: Duration
    #: the predicted plasma concentration the rate may never push above (default: the
    #: library's concentration limit)
    max_concentration: PlasmaConcentration | None = None
    #: a rate ceiling of its own (default: the library's maintenance maximum)
    max_rate: AnyRate | None = None
    #: largest target change by `ctl target` (default: the library's)
    max_step: PlasmaConcentration | None = None

    @model_validator(mode="after")
    def _target_below_ceiling(self) -> Tci:
        if self.max_concentration is not None and self.target > self.max_concentration:
            raise ValueError(
                f"target {self.target:g} ug/mL is above max_concentration "
                f"{self.max_concentration:g} ug/mL"
            )
        return self


class Kvo(_Strict):
    rate: VolumeRate


class Phases(_Strict):
    prime: Prime | None = None
    loading: Loading | None = None
    maintenance: Maintenance | None = None
    tci: Tci | None = None
    kvo: Kvo | None = None

    @model_validator(mode="after")
    def _something_to_infuse(self) -> Phases:
        if self.tci is not None:
            if self.loading is not None or self.maintenance is not None:
                raise ValueError("tci computes its own rates: give it without loading/maintenance")
            return self
        if self.loading is None and self.maintenance is None:
            raise ValueError("a program needs a loading, a maintenance or a tci phase")
        return self


class Bolus(_Strict):
    """Clinician boluses on request (`pumpctl ctl bolus`), with a lockout (PCA-style)."""

    #: the largest single bolus (the library limits it)
    dose: DosePerWeight
    #: time one full-dose bolus is given over (sets the bolus rate)
    over: Duration = 60.0
    #: minimum time from the end of one bolus to the next
    lockout: Annotated[float, BeforeValidator(_quantity(Kind.TIME)), Field(ge=0)]
    max_per_hour: int = Field(ge=1, le=60)
    #: bolus drug allowed in any 4 h; once reached the infusion stays at its basal (or KVO)
    max_per_4h: DosePerWeight

    @model_validator(mode="after")
    def _four_hours_hold_one(self) -> Bolus:
        if self.max_per_4h < self.dose:
            raise ValueError(
                f"max_per_4h {self.max_per_4h:g} mg/kg is less than one bolus ({self.dose:g})"
            )
        return self


class Titration(_Strict):
    max_step: AnyRate | None = None
    min_interval: Annotated[float, BeforeValidator(_quantity(Kind.TIME)), Field(ge=0)] | None = None


class Program(_Strict):
    program: str = Field(min_length=1)
    drug: Drug
    patient: Patient
    library: str | None = None
    pump: Pump
    phases: Phases
    titration: Titration | None = None
    bolus: Bolus | None = None

    _base_dir: Path | None = PrivateAttr(default=None)

    @property
    def base_dir(self) -> Path | None:
        """Directory of the program file; `library` is relative to it."""
        return self._base_dir

    def library_path(self) -> Path | None:
        """The library file named by the program, resolved against the program's directory."""
        if self.library is None:
            return None
        path = Path(self.library)
        if not path.is_absolute() and self._base_dir is not None:
            path = self._base_dir / path
        return path


def load_program_text(text: str, base_dir: Path | None = None) -> Program:
    """Validate program YAML; `base_dir` resolves a relative `library:` path."""
    data = load_yaml_mapping(text, "program")
    try:
        program = Program.model_validate(data)
    except ValidationError as exc:
        raise ProgramError.from_validation(exc) from exc
    program._base_dir = base_dir
    return program


def load_program(path: Path) -> Program:
    """Read and validate a program file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProgramError.from_os_error(exc, "program", str(path)) from exc
    return load_program_text(text, path.parent)


def example_path(name: str) -> Path:
    """A program shipped inside the package (`acute-pain.yaml`, ...), as a file path.

    The examples sit next to their library (`examples/library/`), so relative `library:` paths
    resolve from an installed package just as from a checkout.
    """
    path = Path(str(resources.files("pumpctl").joinpath("examples", name)))
    if not path.is_file():
        raise ProgramError([Issue(field="program", value=name, message="no such example")])
    return path
