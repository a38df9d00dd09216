"""Drug library (dose error reduction, dosing.md §3): versioned soft and hard limits.

An entry is keyed by drug + care area + route + concentration. Every parameter has optional
`soft_min/soft_max` (crossing needs an override with a reason, SR03) and `hard_min/hard_max`
(refused, no override), written with units and parsed to the canonical unit of its kind.
A `Violation` carries everything SR02 asks an error to name: field, value, limit, unit, library
version.
"""

from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pumpctl.dosing.program import CareArea, Concentration, ProgramError, load_yaml_mapping
from pumpctl.dosing.units import Kind, parse

__all__ = [
    "DEFAULT_LIBRARY",
    "DrugLibrary",
    "Entry",
    "Limit",
    "Override",
    "Severity",
    "Violation",
    "default_library",
    "load_library",
    "load_library_text",
]

#: packaged library used when a program names none, so a known drug never runs without limits
DEFAULT_LIBRARY = "examples/library/ketamine.yaml"

Severity = Literal["soft", "hard"]

#: relative tolerance for comparing against a limit: float noise, far below any pump resolution
_EPS = 1e-9


def _fmt(value: float | str | None) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class Violation(BaseModel):
    """A limit crossed by the program (SR02: names field, value, limit, unit, library version)."""

    model_config = ConfigDict(frozen=True)
    field: str
    value: float | str | None
    limit: float | str | None
    unit: str | None
    severity: Severity
    library_version: str | None
    rule: str = Field(description="safety requirement id, e.g. SR05, or 'schema'")
    message: str


class Override(BaseModel):
    """A soft limit crossed on purpose: who asked is the caller's business, the reason is kept."""

    model_config = ConfigDict(frozen=True)
    field: str
    value: float | str | None
    limit: float | str | None
    unit: str | None
    library_version: str | None
    rule: str
    reason: str


def violation(
    *,
    field: str,
    value: float | str | None,
    limit: float | str | None,
    unit: str | None,
    severity: Severity,
    version: str | None,
    rule: str,
    what: str,
    message: str | None = None,
) -> Violation:
    """Build a violation whose message reads on its own in a terminal or a journal.

    `what` reads before the limit ("above the hard maximum"); `message` replaces the middle
    part when the limit is not a number.
    """
    unit_txt = f" {unit}" if unit else ""
    middle = message or f"{what} {_fmt(limit)}{unit_txt}"
    message = (
        f"{field} = {_fmt(value)}{unit_txt}: {middle} "
        f"({severity} limit, library {version or 'none'}, {rule})"
    )
    return Violation(
        field=field,
        value=value,
        limit=limit,
        unit=unit,
        severity=severity,
        library_version=version,
        rule=rule,
        message=message,
    )


class Limit(BaseModel):
    """Soft and hard bounds of one parameter, in the canonical unit of `KIND`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    KIND: ClassVar[Kind] = Kind.MASS

    soft_min: float | None = None
    soft_max: float | None = None
    hard_min: float | None = None
    hard_max: float | None = None
    #: value used when the program does not give one (titration step and interval)
    default: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {
            k: (parse(v, cls.KIND, k) if k in cls.model_fields and v is not None else v)
            for k, v in data.items()
        }

    @model_validator(mode="after")
    def _ordered(self) -> Limit:
        chain = [self.hard_min, self.soft_min, self.default, self.soft_max, self.hard_max]
        present = [v for v in chain if v is not None]
        if any(not math.isfinite(v) or v < 0 for v in present):
            raise ValueError("limits must be finite and not negative")
        if present != sorted(present):
            raise ValueError("need hard_min <= soft_min <= default <= soft_max <= hard_max")
        return self

    def check(
        self, value: float, *, field: str, version: str | None, rule: str, unit: str | None = None
    ) -> Violation | None:
        """The most severe limit `value` crosses, or None. Hard is checked before soft."""
        unit = unit or self.KIND.value
        crossed: tuple[float, Severity, str] | None = None
        if self.hard_max is not None and value > self.hard_max * (1 + _EPS):
            crossed = (self.hard_max, "hard", "above the hard maximum")
        elif self.hard_min is not None and value < self.hard_min * (1 - _EPS):
            crossed = (self.hard_min, "hard", "below the hard minimum")
        elif self.soft_max is not None and value > self.soft_max * (1 + _EPS):
            crossed = (self.soft_max, "soft", "above the soft maximum")
        elif self.soft_min is not None and value < self.soft_min * (1 - _EPS):
            crossed = (self.soft_min, "soft", "below the soft minimum")
        if crossed is None:
            return None
        limit, severity, what = crossed
        return violation(
            field=field,
            value=value,
            limit=limit,
            unit=unit,
            severity=severity,
            version=version,
            rule=rule,
            what=what,
        )

    @property
    def upper(self) -> float | None:
        """The ceiling that applies without an override: soft max, else hard max."""
        return self.soft_max if self.soft_max is not None else self.hard_max


class WeightLimit(Limit):
    KIND = Kind.WEIGHT


class DurationLimit(Limit):
    KIND = Kind.TIME


class DoseLimit(Limit):
    KIND = Kind.DOSE_PER_WEIGHT


class RatePerWeightLimit(Limit):
    KIND = Kind.DOSE_RATE_PER_WEIGHT


class LoadingRateLimit(Limit):
    KIND = Kind.DOSE_RATE_PER_WEIGHT_PER_MIN


class AbsoluteRateLimit(Limit):
    KIND = Kind.DOSE_RATE


class VolumeRateLimit(Limit):
    KIND = Kind.VOLUME_RATE


class PlasmaLimit(Limit):
    """A predicted plasma concentration (µg/mL): TCI targets and every program's peak."""

    KIND = Kind.PLASMA_CONCENTRATION


class CountLimit(Limit):
    """A plain count (boluses per hour): written without a unit."""

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        return data


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoadingLimits(_Strict):
    allowed: bool = True
    dose: DoseLimit = DoseLimit()
    duration: DurationLimit = DurationLimit()
    rate: LoadingRateLimit = LoadingRateLimit()


class MaintenanceLimits(_Strict):
    rate: RatePerWeightLimit = RatePerWeightLimit()
    #: absolute ceiling whatever the weight (e.g. CRPS max 40 mg/h)
    absolute_rate: AbsoluteRateLimit = AbsoluteRateLimit()


class TitrationSpec(_Strict):
    max_step: RatePerWeightLimit = RatePerWeightLimit()
    min_interval: DurationLimit = DurationLimit()


class RollingLimits(_Strict):
    """Drug delivered in any window of 1 h, 4 h, 24 h, per body weight (SR08)."""

    per_1h: DoseLimit = DoseLimit()
    per_4h: DoseLimit = DoseLimit()
    per_24h: DoseLimit = DoseLimit()


class KvoLimits(_Strict):
    rate: VolumeRateLimit = VolumeRateLimit()


class TciLimits(_Strict):
    #: largest target change by `ctl target` (its interval is the titration interval)
    max_step: PlasmaLimit = PlasmaLimit()


class BolusLimits(_Strict):
    """Clinician bolus (PCA-style): dose, lockout, count per hour, bolus drug per 4 h."""

    dose: DoseLimit = DoseLimit()
    lockout: DurationLimit = DurationLimit()
    max_per_hour: CountLimit = CountLimit()
    per_4h: DoseLimit = DoseLimit()


class Entry(_Strict):
    drug: str = Field(min_length=1)
    care_area: CareArea
    route: str = "IV"
    concentrations: tuple[Concentration, ...] = Field(min_length=1)
    weight: WeightLimit = WeightLimit()
    loading: LoadingLimits = LoadingLimits()
    maintenance: MaintenanceLimits = MaintenanceLimits()
    titration: TitrationSpec = TitrationSpec()
    rolling: RollingLimits = RollingLimits()
    kvo: KvoLimits = KvoLimits()
    #: predicted plasma concentration: TCI target and ceiling, and every program's peak
    concentration: PlasmaLimit = PlasmaLimit()
    tci: TciLimits = TciLimits()
    bolus: BolusLimits = BolusLimits()

    def matches(self, drug: str, care_area: str, route: str) -> bool:
        return (
            self.drug.casefold() == drug.casefold()
            and self.care_area == care_area
            and self.route.casefold() == route.casefold()
        )

    def has_concentration(self, mg_per_ml: float) -> bool:
        return any(math.isclose(c, mg_per_ml, rel_tol=_EPS) for c in self.concentrations)

    def describe(self, mg_per_ml: float) -> str:
        return f"{self.drug} {self.care_area} {self.route} {mg_per_ml:g} mg/mL"


class DrugLibrary(_Strict):
    #: quoted in YAML ("2026.11-1"), so 2026.10 never becomes 2026.1
    version: str = Field(min_length=1)
    name: str = "drug library"
    entries: tuple[Entry, ...]

    @model_validator(mode="after")
    def _unique_keys(self) -> DrugLibrary:
        seen: set[tuple[str, str, str, float]] = set()
        for e in self.entries:
            for c in e.concentrations:
                key = (e.drug.casefold(), e.care_area, e.route.casefold(), c)
                if key in seen:
                    raise ValueError(f"two entries for {e.describe(c)}")
                seen.add(key)
        return self

    def has_drug(self, drug: str) -> bool:
        return any(e.drug.casefold() == drug.casefold() for e in self.entries)

    def entries_for(self, drug: str, care_area: str, route: str) -> list[Entry]:
        return [e for e in self.entries if e.matches(drug, care_area, route)]

    def lookup(self, drug: str, care_area: str, route: str, mg_per_ml: float) -> Entry | None:
        """The entry for drug + care area + route + concentration, or None."""
        return next(
            (e for e in self.entries_for(drug, care_area, route) if e.has_concentration(mg_per_ml)),
            None,
        )


@lru_cache(maxsize=16)
def load_library_text(text: str) -> DrugLibrary:
    """The library this text validates to, kept by its text: a library is immutable, and
    checking a program parses a few hundred quantities of it (about 60 ms)."""
    data = load_yaml_mapping(text, "library")
    try:
        return DrugLibrary.model_validate(data)
    except ValidationError as exc:
        raise ProgramError.from_validation(exc, prefix="library") from exc


def load_library(path: Path) -> DrugLibrary:
    """Read and validate a library file; errors are `ProgramError` with `library.*` fields."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProgramError.from_os_error(exc, "library", str(path)) from exc
    return load_library_text(text)


def default_library() -> DrugLibrary:
    """The library shipped inside the package (works from an installed wheel)."""
    text = resources.files("pumpctl").joinpath(DEFAULT_LIBRARY).read_text(encoding="utf-8")
    return load_library_text(text)
