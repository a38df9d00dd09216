"""The pump models `--model` accepts, with their pumps and serial line settings.

`pump_models()` is the one place the operator layer reads this: `pumpctl models`, the connection
errors ("no ne1000 answered at 19200 8N1") and the probe for what is on a port all use it. Until
the family registry (`pumpctl.families`) lands it reads `pumpctl.drivers.registry` and the driver
classes' line-setting attributes; switching is a change to `pump_models()` alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from pumpctl.drivers.registry import available_models, default_address, driver_class

__all__ = ["ModelInfo", "UnknownModel", "model_info", "pump_models"]

#: the pumps each built-in model drives (moves to the family registry with the line settings)
_PUMPS = {
    "ne1000": ("New Era", "NE-500/1000/1002X/1600/4000/8000, WPI Aladdin"),
    "harvard-legacy": ("Harvard", "Pump 11 / 11 Plus, PHD2000, Model 22/33/44 and clones"),
    "harvard-elite": ("Harvard", "11 Elite, PHD Ultra, Pump 33 DDS"),
    "masterflex-ls": ("Cole-Parmer", "Masterflex L/S computer-compatible drives (peristaltic)"),
}


class UnknownModel(ValueError):
    """`--model` names no known model; the message lists the valid ones."""


@dataclass(frozen=True)
class ModelInfo:
    """One model: who makes it, which pumps, and how its serial line is set by default."""

    model: str
    maker: str
    pumps: str
    baudrate: int
    bytesize: int
    parity: str
    stopbits: float
    default_address: int

    def line(self, baudrate: int | None = None) -> str:
        """The line settings as a pump's manual writes them: `19200 8N1`, `4800 7O1`."""
        stop = f"{self.stopbits:g}"
        return f"{baudrate or self.baudrate} {self.bytesize}{self.parity}{stop}"


def _info(model: str) -> ModelInfo:
    cls = driver_class(model)
    maker, pumps = _PUMPS.get(model, ("", (cls.__doc__ or model).strip().splitlines()[0]))
    baud = getattr(cls, "default_baudrate", 19200)
    return ModelInfo(
        model=model,
        maker=maker,
        pumps=pumps,
        baudrate=baud if isinstance(baud, int) else 19200,
        bytesize=int(getattr(cls, "default_bytesize", 8)),
        parity=str(getattr(cls, "default_parity", "N")),
        stopbits=float(getattr(cls, "default_stopbits", 1)),
        default_address=default_address(model),
    )


def pump_models() -> list[ModelInfo]:
    """Every model `driver_class` accepts (built-in and entry points), sorted by name."""
    return [_info(m) for m in available_models()]


def model_info(model: str) -> ModelInfo:
    """The model called `model`; `UnknownModel` naming the valid ones otherwise."""
    known = available_models()
    if model not in known:
        raise UnknownModel(
            f"unknown pump model {model!r}; models: {', '.join(known)} (see `pumpctl models`)"
        )
    return _info(model)
