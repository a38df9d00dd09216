"""What is true of a pump family whichever side of the wire you stand on.

The lowest layer of pumpctl next to `clock` and `log`: dosing (to quantize a plan), drivers (to
format what they send) and the simulator (to accept what the pump accepts) all read it; it imports
none of them.
"""

from pumpctl.families.quantize import (
    FixedStepQuantizer,
    NotRepresentable,
    Quantizer,
    WireQuantizer,
    floor_to,
)
from pumpctl.families.registry import (
    ENTRY_POINT_GROUP,
    UnknownModel,
    families,
    family,
    import_target,
    models,
    quantizer,
)
from pumpctl.families.spec import (
    Addresses,
    FamilySpec,
    LineSettings,
    NumberFormat,
    RotorMotor,
    SyringeMotor,
    Variant,
    VolumeUnits,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Addresses",
    "FamilySpec",
    "FixedStepQuantizer",
    "LineSettings",
    "NotRepresentable",
    "NumberFormat",
    "Quantizer",
    "RotorMotor",
    "SyringeMotor",
    "UnknownModel",
    "Variant",
    "VolumeUnits",
    "WireQuantizer",
    "families",
    "family",
    "floor_to",
    "import_target",
    "models",
    "quantizer",
]
