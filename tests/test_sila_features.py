"""Every feature definition the station serves is valid to the SiLA library itself."""

from __future__ import annotations

from pathlib import Path

import pytest

import pumpctl.station.sila  # noqa: F401  (sila2 before anything imports protobuf)
from pumpctl.station.sila.features import FEATURE_FILES, feature, feature_path

FOLDER = feature_path("StationService").parent


def test_every_sila_xml_in_the_package_is_served() -> None:
    assert sorted(p.name.removesuffix(".sila.xml") for p in FOLDER.glob("*.sila.xml")) == sorted(
        FEATURE_FILES
    )


@pytest.mark.parametrize("name", FEATURE_FILES)
def test_feature_parses_validates_and_compiles(name: str) -> None:
    from sila2.framework import Feature

    parsed = Feature(feature_path(name).read_text(encoding="utf-8-sig"))
    assert parsed._identifier == name
    assert str(parsed.fully_qualified_identifier).endswith(f"/{name}/v1")


def test_the_library_refuses_a_broken_definition(tmp_path: Path) -> None:
    """The check above can fail: an undeclared error and a bad identifier are refused."""
    from lxml.etree import XMLSyntaxError
    from sila2.framework import Feature

    text = feature_path("InfusionProgramService").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="NoSuchError"):
        Feature(
            text.replace(
                "<Identifier>PumpIsBusy</Identifier>\n", "<Identifier>NoSuchError</Identifier>\n", 1
            )
        )
    with pytest.raises(XMLSyntaxError):
        Feature(
            text.replace(
                "<Identifier>RunProgram</Identifier>", "<Identifier>runProgram</Identifier>"
            )
        )


def test_our_features_carry_the_names_the_issue_promises() -> None:
    dosing = feature("PumpFluidDosingService")
    observable = set(dosing._observable_commands)
    assert observable == {"DoseVolume", "GenerateFlow", "SetFillLevel"}
    assert {"FlowRate", "SyringeFillLevel", "MaxFlowRate"} <= set(dosing._observable_properties)
    assert {"FlowRateOutOfRange", "PumpIsInFaultState"} <= set(dosing.defined_execution_errors)
    infusion = feature("InfusionProgramService")
    assert set(infusion._observable_commands) == {"RunProgram"}
    assert {"Pause", "Resume", "Stop", "Titrate", "SetTarget", "Bolus", "ContainerChanged"} <= set(
        infusion._unobservable_commands
    )
    assert {"TargetRefused", "BolusRefused"} <= set(infusion.defined_execution_errors)
    # the CETONI feature we ship unchanged keeps CETONI's identifier; the derived one does not
    assert str(feature("SyringeConfigurationController").fully_qualified_identifier).startswith(
        "de.cetoni/"
    )
    assert str(dosing.fully_qualified_identifier).startswith("org.pumpctl/")


def test_cetoni_licence_notice_ships_with_their_definitions() -> None:
    assert "CETONI GmbH" in (FOLDER / "LICENSE.cetoni").read_text(encoding="utf-8")
    assert "LICENSE.cetoni" in feature_path("PumpFluidDosingService").read_text(encoding="utf-8")
    assert "SiLA2" in (FOLDER / "LICENSE.sila_base").read_text(encoding="utf-8")
