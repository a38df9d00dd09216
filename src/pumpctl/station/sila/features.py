"""The feature definitions the station serves, loaded (and so validated) by `sila2`.

Constructing a `sila2.framework.Feature` validates the XML against the SiLA schema, compiles it to
protobuf and checks its references; `tests/test_sila_features.py` does it for every file here.
Ours: StationService, InfusionProgramService, PumpFluidDosingService (derived from CETONI's, see
the comment at its top). Verbatim: CETONI's SyringeConfigurationController (LICENSE.cetoni), the
SiLA core Simulation-, Cancel- and PauseController (LICENSE.sila_base); LockController and
SiLAService come with `sila2`.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from sila2.framework import DefinedExecutionError, Feature

__all__ = ["FEATURE_FILES", "defined_error", "feature", "feature_path"]

FEATURE_FILES = (
    "StationService",
    "InfusionProgramService",
    "PumpFluidDosingService",
    "SyringeConfigurationController",
    "SimulationController",
    "CancelController",
    "PauseController",
)


def feature_path(name: str) -> Path:
    """The `.sila.xml` of feature `name`, inside the installed package."""
    folder = resources.files("pumpctl.station.sila").joinpath("features")
    return Path(str(folder.joinpath(f"{name}.sila.xml")))


@cache
def feature(name: str) -> Feature:
    """The feature `name`, parsed once per process (the SiLA core files carry a BOM)."""
    if name not in FEATURE_FILES:
        raise KeyError(f"no feature {name!r}; features: {', '.join(FEATURE_FILES)}")
    return Feature(feature_path(name).read_text(encoding="utf-8-sig"))


def defined_error(feature_name: str, identifier: str, message: str) -> DefinedExecutionError:
    """A defined execution error of one of our features (raised; sila2 sends it typed)."""
    node = feature(feature_name).defined_execution_errors[identifier]
    return DefinedExecutionError(node, message=message)
