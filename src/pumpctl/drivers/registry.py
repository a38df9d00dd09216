"""Model name -> driver class, imported only when asked for.

Built-in models live in `BUILTIN_DRIVERS` as `"module:Class"` strings so that listing models or
parsing a command line never imports a driver (or `serial`). Third-party drivers register under
the entry-point group `pumpctl.drivers` (name = model, value = `"module:Class"`); a built-in
name wins over an entry point of the same name.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from pumpctl.drivers.base import PumpDriver

if TYPE_CHECKING:
    from pumpctl.clock import Clock
    from pumpctl.drivers.transport import SerialTransport

__all__ = [
    "BUILTIN_DRIVERS",
    "ENTRY_POINT_GROUP",
    "available_models",
    "default_address",
    "driver_class",
    "open_transport",
]

ENTRY_POINT_GROUP = "pumpctl.drivers"

BUILTIN_DRIVERS: dict[str, str] = {
    "ne1000": "pumpctl.drivers.newera:NE1000Driver",
    "harvard-legacy": "pumpctl.drivers.harvard_legacy:HarvardLegacyDriver",
    "harvard-elite": "pumpctl.drivers.harvard_elite:HarvardEliteDriver",
    "masterflex-ls": "pumpctl.drivers.masterflex:MasterflexDriver",
}

#: baud rate a model ships with, when `open_transport` is not told one
_DEFAULT_BAUDRATE = 19200


def _entry_point_targets() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_models() -> list[str]:
    """Every model name `driver_class` accepts, sorted."""
    return sorted(set(BUILTIN_DRIVERS) | set(_entry_point_targets()))


def driver_class(model: str) -> type[PumpDriver]:
    """The driver class for `model`; `ValueError` naming the valid models if unknown."""
    target = BUILTIN_DRIVERS.get(model) or _entry_point_targets().get(model)
    if target is None:
        raise ValueError(
            f"unknown pump model {model!r}; valid models: {', '.join(available_models())}"
        )
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, PumpDriver)):
        raise TypeError(f"{target} (model {model!r}) is not a PumpDriver subclass")
    return cls


def open_transport(
    port: str, *, baudrate: int | None = None, clock: Clock, model: str | None = None
) -> SerialTransport:
    """A (not yet opened) serial transport for `port`: a device path or a pyserial URL.

    Without `baudrate`, the model's `default_baudrate` when it declares one, else 19200 (the
    NE-1000 manual's default). The driver opens it (`async with driver`).
    """
    from pumpctl.drivers.transport import SerialTransport

    cls = driver_class(model) if model else None
    if baudrate is None:
        declared = getattr(cls, "default_baudrate", None)
        baudrate = declared if isinstance(declared, int) else _DEFAULT_BAUDRATE
    # line settings differ per family (Masterflex 7O1, Harvard legacy 8N2): the model declares them
    return SerialTransport(
        port,
        baudrate=baudrate,
        bytesize=int(getattr(cls, "default_bytesize", 8)),
        parity=str(getattr(cls, "default_parity", "N")),
        stopbits=float(getattr(cls, "default_stopbits", 1)),
        clock=clock,
    )


def default_address(model: str) -> int:
    """The address a model's pumps answer to out of the box (Masterflex numbers start at 1)."""
    return int(getattr(driver_class(model), "default_address", 0))
