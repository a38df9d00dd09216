"""Family specs and quantizers: one spec per family as data, the registry and its entry points,
and each family's rounding exactly as its manual formats numbers (always down)."""

from __future__ import annotations

import dataclasses
import math
from importlib.metadata import EntryPoint

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pumpctl.clock import VirtualClock
from pumpctl.drivers import registry as driver_registry
from pumpctl.drivers.registry import default_address, driver_class, family_spec, open_transport
from pumpctl.families import (
    FamilySpec,
    FixedStepQuantizer,
    NotRepresentable,
    UnknownModel,
    WireQuantizer,
    families,
    family,
    models,
    quantizer,
)
from pumpctl.families import registry as family_registry
from pumpctl.families.newera import SPEC as NE
from pumpctl.families.spec import LineSettings

BUILTIN = [
    "chemyx-fusion", "hamilton-psd4", "hamilton-psd6", "harvard-elite", "harvard-legacy",
    "kds-legato", "masterflex-ls", "ne1000", "tecan-xcalibur", "tecan-xcalibur-oem",
    "tecan-xlp6000", "tecan-xlp6000-oem",
]  # fmt: skip


def q_for(model: str, diameter_mm: float = 26.7, ml_per_rev: float = 0.06) -> WireQuantizer:
    q = quantizer(model, inner_diameter_mm=diameter_mm, ml_per_rev=ml_per_rev)
    assert isinstance(q, WireQuantizer)
    return q


# --------------------------------------------------------------------------- the specs


def test_every_builtin_family_has_a_spec_with_its_facts() -> None:
    assert models() == BUILTIN
    by_model = {f.model: f for f in families()}
    assert str(by_model["ne1000"].line) == "19200 8N1"
    assert str(by_model["harvard-legacy"].line) == "9600 8N2"
    assert str(by_model["harvard-elite"].line) == "115200 8N1"
    assert str(by_model["masterflex-ls"].line) == "4800 7O1"
    assert by_model["masterflex-ls"].addresses.default == 1
    assert [v.name for v in by_model["harvard-legacy"].variants] == ["pump11", "phd2000"]
    assert by_model["ne1000"].has_link_watchdog and by_model["ne1000"].link_watchdog_s == (1, 255)
    assert not by_model["harvard-elite"].has_link_watchdog
    assert by_model["masterflex-ls"].demo_program == "acute-pain-peristaltic.yaml"
    assert by_model["ne1000"].demo_program == "acute-pain.yaml"
    assert by_model["harvard-legacy"].target_volume_unit == "by_diameter"  # Pump 11 (lead)
    assert by_model["harvard-legacy"].variant("phd2000").target_volume_unit == "ml"
    assert by_model["ne1000"].volume_units is not None
    assert by_model["ne1000"].volume_units.threshold_mm == 14.0


@pytest.mark.parametrize("model", BUILTIN)
def test_spec_names_an_importable_driver_of_that_family_and_an_emulation(model: str) -> None:
    spec = family(model)
    cls = driver_class(model)
    assert cls.family == model and spec.driver.endswith(f":{cls.__name__}")
    assert spec.emulation is not None and spec.emulation.startswith("pumpctl.simulator.devices.")
    assert default_address(model) == spec.addresses.default


@pytest.mark.parametrize("model", BUILTIN)
def test_open_transport_uses_the_spec_line_settings(model: str) -> None:
    spec = family(model)
    t = open_transport("loop://", clock=VirtualClock(), model=model)
    line = (t.baudrate, t.bytesize, t.parity, t.stopbits)
    assert line == (spec.line.baud, spec.line.bytesize, spec.line.parity, spec.line.stopbits)
    assert open_transport("loop://", baudrate=1200, clock=VirtualClock(), model=model).baudrate == (
        1200
    )


def test_unknown_model_is_one_line_naming_the_valid_ones() -> None:
    with pytest.raises(UnknownModel) as info:
        family("ne9999")
    assert str(info.value) == ("unknown pump model 'ne9999'; valid models: " + ", ".join(BUILTIN))
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)
    with pytest.raises(ValueError, match="valid models: chemyx-fusion"):
        driver_class("ne9999")


def test_a_spec_refuses_inconsistent_data() -> None:
    with pytest.raises(ValueError, match="module:Class"):
        dataclasses.replace(NE, driver="no_colon")
    with pytest.raises(ValueError, match="matching motor"):
        dataclasses.replace(NE, container="tubing")
    with pytest.raises(ValueError, match="line settings"):
        LineSettings(baud=9600, bytesize=9)


def test_rate_range_follows_the_bore_area() -> None:
    # the numbers: a 2.67 mm bore on an NE-1000 tops out at 17.13 mL/h
    low, high = NE.rate_range_ml_per_h(inner_diameter_mm=2.67)
    assert high == pytest.approx(17.13086240843893)
    assert low == pytest.approx(0.00023568638371754467)
    assert NE.rate_range_ml_per_h() == pytest.approx((0.00073, 1699.0))
    mf = family("masterflex-ls")
    assert mf.rate_range_ml_per_h(ml_per_rev=0.8) == pytest.approx((48.0, 28800.0))


# --------------------------------------------------------------------------- entry points


def _with_entry_points(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, group: str, **targets: str
) -> None:
    eps = [EntryPoint(name, value, group) for name, value in targets.items()]

    def fake(*, group: str) -> list[EntryPoint]:
        return [ep for ep in eps if ep.group == group]

    # both registries read entry points through the families' cached scan: fake it, and start
    # and end with an empty cache
    monkeypatch.setattr(family_registry, "entry_points", fake)
    family_registry.entry_point_targets.cache_clear()
    request.addfinalizer(family_registry.entry_point_targets.cache_clear)


def test_a_third_party_family_joins_by_entry_point(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    _with_entry_points(
        monkeypatch, request, "pumpctl.families", **{"acme-ne": "tests.acme_family:SPEC"}
    )
    assert "acme-ne" in models()
    spec = family("acme-ne")
    assert spec.name == "Acme NE clone" and spec.line.baud == 9600
    assert driver_class("acme-ne").__name__ == "NE1000Driver"
    assert default_address("acme-ne") == 3
    assert quantizer("acme-ne", inner_diameter_mm=26.7).floor_volume_ml(12.4775) == 12.47
    t = open_transport("loop://", clock=VirtualClock(), model="acme-ne")
    assert t.baudrate == 9600


def test_an_entry_point_that_is_not_a_spec_of_that_model_is_refused(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    _with_entry_points(
        monkeypatch,
        request,
        "pumpctl.families",
        **{"other": "tests.acme_family:SPEC", "bad": "tests.acme_family:NOT_A_SPEC"},
    )
    with pytest.raises(ValueError, match="registered as 'other'"):
        family("other")
    with pytest.raises(TypeError, match="not a FamilySpec"):
        family("bad")


def test_drivers_entry_points_still_work_without_a_spec(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    _with_entry_points(
        monkeypatch,
        request,
        "pumpctl.drivers",
        **{"acme-old": "pumpctl.drivers.newera:NE1000Driver"},
    )
    assert "acme-old" in driver_registry.available_models()
    assert family_spec("acme-old") is None
    assert driver_class("acme-old").__name__ == "NE1000Driver"
    assert default_address("acme-old") == 0
    with pytest.raises(UnknownModel):
        family("acme-old")  # no spec: check --model cannot know its ranges


# --------------------------------------------------------------------------- quantizers


@pytest.mark.parametrize(
    ("model", "volume_ml", "sent_ml", "rate", "sent_rate", "commands"),
    [
        # 4 digits, at most 3 decimals; mL units above 14.00 mm
        ("ne1000", 12.4775, 12.47, 74.865, 74.86, ("VOLML VOL12.47", "RAT74.86MH")),
        # 5 characters; the most precise rate unit (ULH 74865 is exact)
        ("harvard-legacy", 12.4775, 12.47, 74.865, 74.865, ("MLT12.47", "ULH74865")),
        # 6 significant digits, text units
        (
            "harvard-elite",
            12.47751,
            12.4775,
            0.5555555,
            0.555555,
            ("tvolume 12.4775 ml", "irate 555.555 ul/hr"),
        ),
        # 0.01 rev and 0.1 rpm of 0.06 mL/rev tubing (0.0006 mL, 0.36 mL/h)
        ("masterflex-ls", 12.4775, 12.477, 7.13, 6.84, ("V00207.95", "S+001.9")),
    ],
)
def test_each_family_rounds_down_into_its_own_format(
    model: str,
    volume_ml: float,
    sent_ml: float,
    rate: float,
    sent_rate: float,
    commands: tuple[str, str],
) -> None:
    q = q_for(model)
    assert q.floor_volume_ml(volume_ml) == pytest.approx(sent_ml, abs=1e-12)
    assert q.floor_rate_ml_per_h(rate) == pytest.approx(sent_rate, abs=1e-12)
    assert (q.wire_volume(volume_ml), q.wire_rate(rate)) == commands


def test_ne_volume_units_follow_the_diameter_at_14_mm() -> None:
    small = q_for("ne1000", diameter_mm=14.0)
    assert small.wire_volume(0.5) == "VOLUL VOL500"
    assert small.volume_step_ml(0.5) == pytest.approx(1e-4)  # 500 µL: 0.1 µL
    assert small.floor_volume_ml(1.23456) == 1.234  # 1234 µL
    with pytest.raises(NotRepresentable, match="above the largest NE target"):
        small.floor_volume_ml(12.0)  # 12000 µL does not fit 4 digits
    large = q_for("ne1000", diameter_mm=14.01)
    assert large.wire_volume(12.0) == "VOLML VOL12"


def test_ne_rate_unit_keeps_room_for_the_syringe_maximum() -> None:
    # 1 mL syringe (max 54 mL/h): 0.5 mL/h is exact in UH and MH; MH can also reach 54 mL/h
    assert q_for("ne1000", diameter_mm=4.699).wire_rate(0.5) == "RAT0.5MH"
    # the 1 mL syringe's minimum is only expressible in µL/h
    assert q_for("ne1000", diameter_mm=4.699).wire_rate(0.00073) == "RAT0.73UH"


def test_not_representable_names_the_step() -> None:
    q = q_for("masterflex-ls")
    with pytest.raises(NotRepresentable) as info:
        q.floor_rate_ml_per_h(0.3)  # below 0.1 rpm of 0.06 mL/rev
    assert (info.value.what, info.value.value, info.value.unit) == ("rate", 0.3, "mL/h")
    assert info.value.step == pytest.approx(0.36)
    with pytest.raises(ValueError, match="mL per revolution"):
        quantizer("masterflex-ls")
    assert isinstance(family("ne1000").quantizer(), WireQuantizer)


def test_a_spec_without_a_quantizer_gets_fixed_steps() -> None:
    plain = dataclasses.replace(NE, make_quantizer=None, volume_step_ml=0.01)
    q = plain.quantizer(inner_diameter_mm=26.7)
    assert isinstance(q, FixedStepQuantizer)
    assert q.floor_volume_ml(12.4775) == 12.47


SYRINGES_MM = [4.699, 8.585, 11.99, 14.0, 14.43, 19.05, 21.59, 26.59, 26.7, 29.1]


@given(
    model=st.sampled_from(BUILTIN),
    diameter_mm=st.sampled_from(SYRINGES_MM),
    ml_per_rev=st.sampled_from([0.06, 0.21, 0.8, 1.7, 2.8, 4.8]),
    volume_ml=st.floats(0.001, 500.0),
    rate_ml_per_h=st.floats(0.001, 5000.0),
)
def test_quantizers_never_round_up_and_are_idempotent(
    model: str, diameter_mm: float, ml_per_rev: float, volume_ml: float, rate_ml_per_h: float
) -> None:
    """What the plan holds is what the driver sends: floor(floor(x)) == floor(x) <= x, and the
    value is at most one step below the request."""
    q = quantizer(model, inner_diameter_mm=diameter_mm, ml_per_rev=ml_per_rev)
    for floor, step, value in (
        (q.floor_volume_ml, q.volume_step_ml, volume_ml),
        (q.floor_rate_ml_per_h, q.rate_step_ml_per_h, rate_ml_per_h),
    ):
        try:
            sent = floor(value)
        except NotRepresentable:
            continue
        assert sent <= value * (1 + 1e-9)
        assert floor(sent) == sent
        assert value - sent <= step(value) * 1.000001 + value * 1e-3
        assert math.isfinite(sent) and sent > 0


def test_spec_is_hashable_data() -> None:
    assert isinstance(NE, FamilySpec)
    assert len({family(m) for m in BUILTIN}) == len(BUILTIN)
