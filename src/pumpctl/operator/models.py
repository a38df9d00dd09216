"""The pump models `--model` accepts, with their pumps and serial line settings.

`pump_models()` is the one place the operator layer reads this: `pumpctl models`, the connection
errors ("no ne1000 answered at 19200 8N1") and the probe for what is on a port all use it. The
facts come from the family registry (`pumpctl.families`); a driver registered without a family
spec (`pumpctl.drivers` entry point only) is described from its class's line attributes.
"""

from __future__ import annotations

from dataclasses import dataclass

from pumpctl.drivers.registry import available_models, default_address, driver_class
from pumpctl.families import UnknownModel, family

__all__ = ["ModelInfo", "UnknownModel", "model_info", "pump_models"]


@dataclass(frozen=True)
class ModelInfo:
    """One model: what it is, which pumps, and how its serial line is set by default."""

    model: str
    title: str
    pumps: str
    baudrate: int
    bytesize: int
    parity: str
    stopbits: float
    default_address: int
    addresses: str = ""  # "0-99", "1-89"

    def line(self, baudrate: int | None = None) -> str:
        """The line settings as a pump's manual writes them: `19200 8N1`, `4800 7O1`."""
        return f"{baudrate or self.baudrate} {self.bytesize}{self.parity}{self.stopbits:g}"


def _from_family(model: str) -> ModelInfo:
    spec = family(model)
    return ModelInfo(
        model=model,
        title=spec.title,
        pumps=", ".join(spec.pumps),
        baudrate=spec.line.baud,
        bytesize=spec.line.bytesize,
        parity=spec.line.parity,
        stopbits=spec.line.stopbits,
        default_address=spec.addresses.default,
        addresses=f"{spec.addresses.first}-{spec.addresses.last}",
    )


def _from_driver(model: str) -> ModelInfo:
    """A driver without a family spec: its class's line attributes, its docstring's first line."""
    cls = driver_class(model)
    return ModelInfo(
        model=model,
        title=(cls.__doc__ or model).strip().splitlines()[0],
        pumps="",
        baudrate=cls.default_baudrate,
        bytesize=cls.default_bytesize,
        parity=cls.default_parity,
        stopbits=cls.default_stopbits,
        default_address=default_address(model),
    )


def _info(model: str) -> ModelInfo:
    try:
        return _from_family(model)
    except UnknownModel:
        return _from_driver(model)


def pump_models() -> list[ModelInfo]:
    """Every model `driver_class` accepts (built-in and entry points), sorted by name."""
    return [_info(m) for m in available_models()]


def model_info(model: str) -> ModelInfo:
    """The model called `model`; `UnknownModel` naming the valid ones otherwise."""
    known = available_models()
    if model not in known:
        raise UnknownModel(model, known)
    return _info(model)
