"""Model name -> emulation class, line settings and factory address, from the family specs.

Built-in families name their emulation in their `FamilySpec` (`pumpctl.families`); a
third-party package can add one either with a whole family (entry-point group
`pumpctl.families`) or, for a model whose spec it does not own, under the entry-point group
`pumpctl.emulations` (name = model, value = `"module:Class"`), beside the drivers'
`pumpctl.drivers`. A built-in family's emulation wins over an entry point of the same name.
Imports are lazy: listing models never imports an emulation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pumpctl.families import UnknownModel, family, import_target, models
from pumpctl.families.registry import BUILTIN_FAMILIES, entry_point_targets
from pumpctl.simulator.devices.base import Emulation, LineSettings

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "ENTRY_POINT_GROUP",
    "default_address",
    "emulation_class",
    "emulation_models",
    "emulation_target",
    "line_settings",
]

ENTRY_POINT_GROUP = "pumpctl.emulations"


def _entry_points() -> Mapping[str, str]:
    return entry_point_targets(ENTRY_POINT_GROUP)


def emulation_target(model: str) -> str | None:
    """`"module:Class"` of the emulation of `model`; None when it has none."""
    if model in BUILTIN_FAMILIES:
        return family(model).emulation
    registered = _entry_points().get(model)
    if registered is not None:
        return registered
    try:
        return family(model).emulation
    except UnknownModel:
        return None


def emulation_models() -> list[str]:
    """Every model `pumpctl simulate` (and `sim://MODEL`) accepts, sorted."""
    names = set(_entry_points()) | set(models())
    return sorted(m for m in names if emulation_target(m) is not None)


def emulation_class(model: str) -> type[Emulation]:
    """The emulation class of `model`; ValueError on one line naming the valid models."""
    target = emulation_target(model)
    if target is None:
        raise ValueError(f"unknown model {model!r}; valid models: {', '.join(emulation_models())}")
    cls = import_target(target)
    if not (isinstance(cls, type) and issubclass(cls, Emulation)):
        raise TypeError(f"{target} (model {model!r}) is not an Emulation subclass")
    return cls


def default_address(model: str) -> int:
    """The address a pump of `model` answers at from the factory (Masterflex: 1)."""
    try:
        return family(model).addresses.default
    except UnknownModel:
        return 0


def line_settings(model: str) -> LineSettings | None:
    """The UART settings `model` ships with (its family spec); None without a spec."""
    try:
        line = family(model).line
    except UnknownModel:
        return None
    stop_bits = 2 if line.stopbits > 1 else 1  # 1.5 stop bits: a UART sees one and a gap
    return LineSettings.model_validate(
        {
            "baud": line.baud,
            "data_bits": line.bytesize,
            "parity": line.parity,
            "stop_bits": stop_bits,
        }
    )
