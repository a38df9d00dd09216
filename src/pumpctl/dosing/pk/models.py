"""PK models as versioned data (`models/<drug>.yaml`): sources, populations, effect-site basis.

The YAML is the record (what each model is, where it comes from, what was checked, who it was
fitted on); this module validates it, scales a model to one patient (`ModelSpec.kinetics`), says
when a patient is outside the model's population, and picks the default model for a care area.
"""

from __future__ import annotations

import math
from functools import cache
from importlib import resources
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pumpctl.dosing.pk.solver import Kinetics, ke0_from_t_peak
from pumpctl.dosing.program import CareArea, load_yaml_mapping

__all__ = [
    "DEFAULT_MODELS",
    "EffectSite",
    "ModelFile",
    "ModelSpec",
    "Population",
    "UnknownModel",
    "default_model_name",
    "get_model",
    "load_models",
    "model_names",
    "population_warnings",
]

#: default model per care area (document any change in docs/pharmacology.md)
DEFAULT_MODELS: dict[str, str] = {"adult": "domino", "pediatric": "herd2007"}
#: without a care area, a patient lighter than this gets the paediatric default
PEDIATRIC_BELOW_KG = 40.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PerKg(_Strict):
    """Micro-constants with V1 proportional to weight (Domino, Clements, Hijazi)."""

    scaling: Literal["per_kg"]
    v1_l_per_kg: float = Field(gt=0)
    k10_per_min: float = Field(gt=0)
    k12_per_min: float = Field(ge=0)
    k21_per_min: float = Field(ge=0)
    k13_per_min: float = Field(default=0.0, ge=0)
    k31_per_min: float = Field(default=0.0, ge=0)

    def kinetics(self, name: str, weight_kg: float) -> Kinetics:
        return Kinetics(
            name=name,
            weight_kg=weight_kg,
            v1_l=self.v1_l_per_kg * weight_kg,
            k10_per_min=self.k10_per_min,
            k12_per_min=self.k12_per_min,
            k21_per_min=self.k21_per_min,
            k13_per_min=self.k13_per_min,
            k31_per_min=self.k31_per_min,
        )


class Allometric(_Strict):
    """Volumes and clearances per reference weight, scaled by (W/Wref)^exponent (Herd 2007)."""

    scaling: Literal["allometric"]
    reference_weight_kg: float = Field(gt=0)
    v1_l: float = Field(gt=0)
    v2_l: float = Field(default=0.0, ge=0)
    v3_l: float = Field(default=0.0, ge=0)
    cl_l_per_h: float = Field(gt=0)
    q2_l_per_h: float = Field(default=0.0, ge=0)
    q3_l_per_h: float = Field(default=0.0, ge=0)
    volume_exponent: float
    clearance_exponent: float

    def kinetics(self, name: str, weight_kg: float) -> Kinetics:
        ratio = weight_kg / self.reference_weight_kg
        fv, fc = ratio**self.volume_exponent, ratio**self.clearance_exponent / 60.0  # L/h->L/min
        v1, v2, v3 = self.v1_l * fv, self.v2_l * fv, self.v3_l * fv
        cl, q2, q3 = self.cl_l_per_h * fc, self.q2_l_per_h * fc, self.q3_l_per_h * fc
        return Kinetics(
            name=name,
            weight_kg=weight_kg,
            v1_l=v1,
            k10_per_min=cl / v1,
            k12_per_min=q2 / v1,
            k21_per_min=q2 / v2 if v2 else 0.0,
            k13_per_min=q3 / v1,
            k31_per_min=q3 / v3 if v3 else 0.0,
        )


Parameters = Annotated[PerKg | Allometric, Field(discriminator="scaling")]


class Spread(_Strict):
    """A published range, or a mean and SD (then the checked range is mean ± 2 SD)."""

    mean: float | None = None
    sd: float | None = Field(default=None, ge=0)
    min: float | None = None
    max: float | None = None

    def bounds(self) -> tuple[float, float, str] | None:
        if self.min is not None and self.max is not None:
            return self.min, self.max, f"published range {self.min:g}-{self.max:g}"
        if self.mean is not None and self.sd is not None:
            lo, hi = max(0.0, self.mean - 2 * self.sd), self.mean + 2 * self.sd
            return lo, hi, f"mean ± 2 SD of {self.mean:g} ± {self.sd:g}: {lo:.3g}-{hi:.3g}"
        return None


class Population(_Strict):
    verified: bool
    summary: str
    n: int | None = None
    design: str
    age_years: Spread | None = None
    weight_kg: Spread | None = None


class EffectSite(_Strict):
    """Where ke0 comes from: a published equilibration half-time, or an assumed time to peak."""

    basis: Literal["assumed_t_peak", "published"]
    t_peak_s: float | None = Field(default=None, gt=0)
    t_half_keo_s: float | None = Field(default=None, gt=0)
    why: str | None = None
    source: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> EffectSite:
        if self.basis == "assumed_t_peak" and (self.t_peak_s is None or not self.why):
            raise ValueError("an assumed effect site needs t_peak_s and why")
        if self.basis == "published" and (self.t_half_keo_s is None or not self.source):
            raise ValueError("a published effect site needs t_half_keo_s and source")
        return self


class ModelSpec(_Strict):
    name: str = Field(pattern=r"^[a-z0-9]+$")
    title: str
    compartments: Literal[2, 3]
    care_areas: list[CareArea] = Field(min_length=1)
    source: str
    verified: str
    parameters: Parameters
    population: Population
    effect_site: EffectSite
    notes: str | None = None

    @model_validator(mode="after")
    def _compartments_match(self) -> ModelSpec:
        p = self.parameters
        third = p.k13_per_min > 0 if isinstance(p, PerKg) else p.q3_l_per_h > 0
        if third != (self.compartments == 3):
            raise ValueError(
                f"{self.name}: parameters do not match {self.compartments} compartments"
            )
        return self

    def kinetics(self, weight_kg: float, *, t_peak_s: float | None = None) -> Kinetics:
        """The model scaled to `weight_kg`, with its ke0 (or one for `t_peak_s`, if given)."""
        if not (weight_kg > 0 and math.isfinite(weight_kg)):
            raise ValueError(f"weight must be > 0 kg, got {weight_kg}")
        base = self.parameters.kinetics(self.name, weight_kg)
        es = self.effect_site
        if t_peak_s is not None:
            return base.with_ke0(ke0_from_t_peak(base, t_peak_s))
        if es.basis == "published":
            assert es.t_half_keo_s is not None
            return base.with_ke0(math.log(2) / (es.t_half_keo_s / 60.0))
        assert es.t_peak_s is not None
        return base.with_ke0(ke0_from_t_peak(base, es.t_peak_s))

    def effect_site_note(self, kinetics: Kinetics) -> str:
        es = self.effect_site
        if es.basis == "published":
            return f"ke0 {kinetics.ke0_per_min:.3g}/min (published T½keo {es.t_half_keo_s:g} s)"
        return (
            f"ke0 {kinetics.ke0_per_min:.3g}/min from an ASSUMED time to peak effect of "
            f"{es.t_peak_s:g} s (no published ke0)"
        )


class Excluded(_Strict):
    name: str
    source: str
    reason: str


class ModelFile(_Strict):
    #: quoted in YAML, like the drug library's version
    version: str = Field(min_length=1)
    drug: str
    models: list[ModelSpec] = Field(min_length=1)
    excluded: list[Excluded] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> ModelFile:
        names = [m.name for m in self.models] + [e.name for e in self.excluded]
        if len(names) != len(set(names)):
            raise ValueError("model names must be unique")
        return self


class UnknownModel(ValueError):
    """No such model (or a model left out on purpose: the message says why)."""


@cache
def load_models(drug: str = "ketamine") -> ModelFile:
    """The packaged model file for `drug` (validated once, then cached)."""
    name = drug.casefold()
    path = resources.files("pumpctl.dosing.pk").joinpath("models", f"{name}.yaml")
    if not path.is_file():
        raise UnknownModel(f"no pharmacokinetic models for {drug!r}")
    return ModelFile.model_validate(load_yaml_mapping(path.read_text("utf-8"), "pk models"))


def model_names(drug: str = "ketamine") -> list[str]:
    return [m.name for m in load_models(drug).models]


def get_model(name: str, drug: str = "ketamine") -> ModelSpec:
    models = load_models(drug)
    for m in models.models:
        if m.name == name:
            return m
    for e in models.excluded:
        if e.name == name:
            raise UnknownModel(f"{name} is not provided: {e.reason}")
    raise UnknownModel(f"no {drug} model {name!r}; known: {', '.join(model_names(drug))}")


def default_model_name(care_area: str | None, weight_kg: float) -> str:
    """Adult -> Domino (STANPUMP's ketamine model, 3 compartments); pediatric -> Herd 2007 (the
    only paediatric set with verified values and a published effect site). Veterinary patients
    have no default: no model here was fitted on animals."""
    if care_area is None:
        care_area = "pediatric" if weight_kg < PEDIATRIC_BELOW_KG else "adult"
    try:
        return DEFAULT_MODELS[care_area]
    except KeyError:
        raise UnknownModel(
            f"no default pharmacokinetic model for {care_area} patients: every model here was "
            "fitted on humans; name one explicitly to use it anyway"
        ) from None


def population_warnings(
    spec: ModelSpec,
    *,
    weight_kg: float,
    care_area: str | None = None,
    age_years: float | None = None,
) -> list[str]:
    """Why this patient may not be like the model's population (empty: inside it)."""
    found: list[str] = []
    pop = spec.population
    if care_area is not None and care_area not in spec.care_areas:
        found.append(
            f"{spec.name} was fitted on {'/'.join(spec.care_areas)} patients; this patient is "
            f"{care_area}"
        )
    checks = [("weight", weight_kg, "kg", pop.weight_kg), ("age", age_years, "y", pop.age_years)]
    for what, value, unit, spread in checks:
        if value is None:
            continue
        bounds = spread.bounds() if spread is not None else None
        if bounds is None:
            found.append(f"{spec.name}: the population's {what} range is not known: not checked")
            continue
        lo, hi, basis = bounds
        if not lo <= value <= hi:
            found.append(
                f"{what} {value:g} {unit} is outside {spec.name}'s population ({basis} {unit})"
            )
    if not pop.verified:
        found.append(f"{spec.name}: population not verified against the paper")
    return found
