"""Model name -> driver class, imported only when asked for.

A family's spec (`pumpctl.families`) names its driver as `"module:Class"`, so listing models or
parsing a command line never imports a driver (or `serial`). Drivers without a family spec still
register under the entry-point group `pumpctl.drivers` (name = model, value = `"module:Class"`);
a family wins over such an entry point of the same name. Line settings and the factory address
come from the spec, or from the driver class's `default_*` attributes when it has none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pumpctl.drivers.base import PumpDriver
from pumpctl.families import FamilySpec, UnknownModel, family, import_target, models
from pumpctl.families.registry import entry_point_targets

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pumpctl.clock import Clock
    from pumpctl.drivers.transport import SerialTransport

__all__ = [
    "ENTRY_POINT_GROUP",
    "available_models",
    "default_address",
    "driver_class",
    "family_spec",
    "open_transport",
]

ENTRY_POINT_GROUP = "pumpctl.drivers"


def _entry_point_targets() -> Mapping[str, str]:
    return entry_point_targets(ENTRY_POINT_GROUP)


def available_models() -> list[str]:
    """Every model name `driver_class` accepts, sorted."""
    return sorted(set(models()) | set(_entry_point_targets()))


def family_spec(model: str) -> FamilySpec | None:
    """The family spec of `model`, or None for a driver registered without one."""
    try:
        return family(model)
    except UnknownModel:
        if model in _entry_point_targets():
            return None
        raise UnknownModel(model, available_models()) from None


def driver_class(model: str) -> type[PumpDriver]:
    """The driver class for `model`; `UnknownModel` (a ValueError) naming the valid models."""
    spec = family_spec(model)
    target = spec.driver if spec is not None else _entry_point_targets()[model]
    cls = import_target(target)
    if not (isinstance(cls, type) and issubclass(cls, PumpDriver)):
        raise TypeError(f"{target} (model {model!r}) is not a PumpDriver subclass")
    return cls


def open_transport(
    port: str, *, baudrate: int | None = None, clock: Clock, model: str | None = None
) -> SerialTransport:
    """A (not yet opened) serial transport for `port`: a device path or a pyserial URL.

    Line settings are the model's (its spec's `line`; Masterflex 4800 7O1, Harvard legacy 8N2),
    `baudrate` overriding the baud. Without a model, 19200 8N1. The driver opens it
    (`async with driver`).
    """
    from pumpctl.drivers.transport import SerialTransport

    spec = family_spec(model) if model else None
    if spec is not None:
        line = spec.line
        return SerialTransport(
            port,
            baudrate=baudrate or line.baud,
            bytesize=line.bytesize,
            parity=line.parity,
            stopbits=line.stopbits,
            clock=clock,
        )
    cls = driver_class(model) if model else PumpDriver
    return SerialTransport(
        port,
        baudrate=baudrate or cls.default_baudrate,
        bytesize=cls.default_bytesize,
        parity=cls.default_parity,
        stopbits=cls.default_stopbits,
        clock=clock,
    )


def default_address(model: str) -> int:
    """The address a model's pumps answer to out of the box (Masterflex numbers start at 1)."""
    spec = family_spec(model)
    if spec is not None:
        return spec.addresses.default
    return driver_class(model).default_address
