"""Emulations are a backend like any other: family specs, plus the `pumpctl.emulations` group."""

from __future__ import annotations

import pytest

from pumpctl.simulator import registry
from pumpctl.simulator.devices.newera import NE1000Emulation


def test_builtin_emulations_come_from_the_family_specs() -> None:
    assert registry.emulation_models() == [
        "harvard-elite", "harvard-legacy", "masterflex-ls", "ne1000",
    ]  # fmt: skip
    assert registry.default_address("masterflex-ls") == 1
    assert str(registry.line_settings("harvard-legacy")) == "9600 8N2"
    assert str(registry.line_settings("masterflex-ls")) == "4800 7O1"


def test_an_entry_point_adds_an_emulation(monkeypatch: pytest.MonkeyPatch) -> None:
    target = "pumpctl.simulator.devices.newera:NE1000Emulation"
    monkeypatch.setattr(registry, "_entry_points", lambda: {"toy-pump": target, "ne1000": "x:Y"})
    assert "toy-pump" in registry.emulation_models()
    assert registry.emulation_class("toy-pump") is NE1000Emulation
    assert registry.emulation_class("ne1000") is NE1000Emulation  # a built-in family wins
    assert registry.default_address("toy-pump") == 0  # no spec: address 0, no line settings
    assert registry.line_settings("toy-pump") is None


def test_unknown_model_is_one_line_naming_the_models() -> None:
    with pytest.raises(ValueError, match=r"^unknown model 'nope'; valid models: harvard-elite, "):
        registry.emulation_class("nope")
