"""Model name -> `FamilySpec`: the built-in families and those other packages register.

A third-party package registers a whole family under the entry-point group `pumpctl.families`
(name = model, value = `"module:ATTRIBUTE"`, a `FamilySpec` or a function returning one). Its
spec names its driver and emulation, so installing the package is enough for `pumpctl demo`,
`simulate`, `run`, `check --model` and the conformance suite to know the family. A built-in
model name wins over an entry point of the same name.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import TYPE_CHECKING

from pumpctl.families.quantize import Quantizer
from pumpctl.families.spec import FamilySpec

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "BUILTIN_FAMILIES",
    "ENTRY_POINT_GROUP",
    "UnknownModel",
    "entry_point_targets",
    "families",
    "family",
    "import_target",
    "models",
    "quantizer",
]

ENTRY_POINT_GROUP = "pumpctl.families"

BUILTIN_FAMILIES: dict[str, str] = {
    "ne1000": "pumpctl.families.newera:SPEC",
    "harvard-legacy": "pumpctl.families.harvard_legacy:SPEC",
    "harvard-elite": "pumpctl.families.harvard_elite:SPEC",
    "masterflex-ls": "pumpctl.families.masterflex:SPEC",
    # issue #16
    "chemyx-fusion": "pumpctl.families.chemyx:SPEC",
    "kds-legato": "pumpctl.families.kds_legato:SPEC",
    "tecan-xcalibur": "pumpctl.families.cavro:XCALIBUR_SPEC",
    "tecan-xcalibur-oem": "pumpctl.families.cavro:XCALIBUR_OEM_SPEC",
    "tecan-xlp6000": "pumpctl.families.cavro:XLP6000_SPEC",
    "tecan-xlp6000-oem": "pumpctl.families.cavro:XLP6000_OEM_SPEC",
    "hamilton-psd4": "pumpctl.families.cavro:PSD4_SPEC",
    "hamilton-psd6": "pumpctl.families.cavro:PSD6_SPEC",
}


class UnknownModel(ValueError):
    """No family of that name; the message names the valid models, on one line."""

    def __init__(self, model: str, valid: list[str]) -> None:
        self.model = model
        self.valid = valid
        super().__init__(f"unknown pump model {model!r}; valid models: {', '.join(valid)}")


def import_target(target: str) -> object:
    """The object a `"module:attribute"` string names (imported now)."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"expected 'module:attribute', got {target!r}")
    obj: object = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


@cache
def entry_point_targets(group: str) -> Mapping[str, str]:
    """Name -> `"module:attribute"` registered under an entry-point group, read once a process.

    A scan of the installed distributions costs about 10 ms, and model lookups ask on every
    connect, probe and listing; a plugin installed while a process runs is seen after
    `entry_point_targets.cache_clear()`.
    """
    return MappingProxyType({ep.name: ep.value for ep in entry_points(group=group)})


def _entry_point_targets() -> Mapping[str, str]:
    return entry_point_targets(ENTRY_POINT_GROUP)


def models() -> list[str]:
    """Every model name `family` accepts, sorted."""
    return sorted(set(BUILTIN_FAMILIES) | set(_entry_point_targets()))


@cache
def _builtin(model: str) -> FamilySpec:
    return _load(model, BUILTIN_FAMILIES[model])


def _load(model: str, target: str) -> FamilySpec:
    obj = import_target(target)
    spec = obj() if callable(obj) and not isinstance(obj, FamilySpec) else obj
    if not isinstance(spec, FamilySpec):
        raise TypeError(f"{target} (model {model!r}) is not a FamilySpec")
    if spec.model != model:
        raise ValueError(f"{target} describes model {spec.model!r}, registered as {model!r}")
    return spec


def family(model: str) -> FamilySpec:
    """The spec of `model`; `UnknownModel` (a ValueError) naming the valid models."""
    if model in BUILTIN_FAMILIES:
        return _builtin(model)
    target = _entry_point_targets().get(model)
    if target is None:
        raise UnknownModel(model, models())
    return _load(model, target)


def families() -> list[FamilySpec]:
    """Every family, by model name."""
    return [family(m) for m in models()]


def quantizer(
    model: str, inner_diameter_mm: float | None = None, ml_per_rev: float | None = None
) -> Quantizer:
    """What `model` is actually sent, for this syringe or tubing (see `families.quantize`)."""
    return family(model).quantizer(inner_diameter_mm=inner_diameter_mm, ml_per_rev=ml_per_rev)
