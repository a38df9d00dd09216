"""The station file: the shipped example validates, and every mistake names its field."""

from __future__ import annotations

from pathlib import Path

import pytest

from pumpctl.station.spec import StationError, load_station, load_station_text

ROOT = Path(__file__).resolve().parents[1]

PUMP = "{model: ne1000, port: sim://ne1000, address: 0, journal: a.sqlite}"


def errors(text: str) -> dict[str, str]:
    with pytest.raises(StationError) as info:
        load_station_text(text, Path("/stations"))
    return {i.field: i.message for i in info.value.issues}


def test_shipped_example_loads_with_paths_relative_to_the_right_places(tmp_path: Path) -> None:
    spec = load_station(ROOT / "examples" / "station.yaml")
    assert list(spec.pumps) == ["left", "right", "media"]
    assert spec.pumps["left"].port == spec.pumps["right"].port == "/dev/ttyUSB0"
    assert spec.program_path("left") == (ROOT / "examples" / "acute-pain.yaml").resolve()
    assert spec.programs_dir() == (ROOT / "examples").resolve() / "."
    # journals are relative to where the station runs, like every --journal of the CLI
    assert spec.journal_path("left", tmp_path) == tmp_path / "journals" / "left.sqlite"
    media = spec.pumps["media"].container
    assert media is not None and media.tubing is not None and media.tubing.ml_per_rev == 0.8


def test_unknown_model_is_named_with_the_valid_ones() -> None:
    found = errors("pumps:\n  a: {model: ne2000, port: /dev/x, journal: a.sqlite}\n")
    assert "pumps.a.model" in found
    assert "ne2000" in found["pumps.a.model"] and "ne1000" in found["pumps.a.model"]


def test_sim_port_must_emulate_the_pump_s_own_model() -> None:
    found = errors("pumps:\n  a: {model: harvard-elite, port: sim://ne1000, journal: a.sqlite}\n")
    assert "emulates 'ne1000'" in found["pumps.a.port"]


def test_missing_journal_and_typo_fields_are_refused_by_name() -> None:
    found = errors("pumps:\n  a: {model: ne1000, port: /dev/x, adress: 1}\n")
    assert set(found) == {"pumps.a.journal", "pumps.a.adress"}


def test_two_pumps_may_not_share_a_place_or_a_journal() -> None:
    same_place = errors(f"pumps:\n  a: {PUMP}\n  b: {PUMP.replace('a.sqlite', 'b.sqlite')}\n")
    assert "is pumps.a's" in next(iter(same_place.values()))
    same_journal = errors(f"pumps:\n  a: {PUMP}\n  b: {PUMP.replace('address: 0', 'address: 1')}\n")
    assert "each pump needs its own journal" in next(iter(same_journal.values()))


def test_one_line_speaks_one_protocol() -> None:
    text = (
        "pumps:\n  a: {model: ne1000, port: /dev/x, address: 0, journal: a.sqlite}\n"
        "  b: {model: harvard-elite, port: /dev/x, address: 1, journal: b.sqlite}\n"
    )
    assert "one line speaks one protocol" in next(iter(errors(text).values()))


def test_override_needs_a_reason_and_names_are_plain() -> None:
    found = errors(
        "pumps:\n  'a b': {model: ne1000, port: /dev/x, journal: a.sqlite,"
        " overrides: {phases.loading.over: ' '}}\n"
    )
    assert any(f.startswith("pumps.a b") for f in found)
    assert any("reason must not be empty" in m for m in found.values())


def test_not_a_mapping_and_no_pumps() -> None:
    assert "station" in errors("- a\n- b\n")
    assert "pumps" in errors("station: empty\npumps: {}\n")
