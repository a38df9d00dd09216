"""Program file schema: exact field names, extra fields refused, phase rules, library path."""

from __future__ import annotations

from pathlib import Path

import pytest

from pumpctl.dosing.program import ProgramError, load_program, load_program_text
from pumpctl.dosing.units import RateKind

ISSUE_EXAMPLE = """\
program: acute-pain-70kg
drug: {name: ketamine, concentration: 1 mg/mL}
patient: {weight: 70 kg, care_area: adult}          # care_area: adult | pediatric | canine | feline
library: library/ketamine.yaml                      # optional, relative to this file
pump: {syringe: {inner_diameter: 26.7 mm, volume: 60 mL}}   # or {tubing: {ml_per_rev: 0.8}}
phases:
  prime: {volume: 0.5 mL}                           # optional; or {skip: true, reason: ...}
  loading: {dose: 0.35 mg/kg, over: 10 min}         # optional
  maintenance: {rate: 0.2 mg/kg/h, duration: 4 h}   # or volume: 56 mL; or until_stopped: true
  kvo: {rate: 0.5 mL/h}                             # optional, after maintenance ends
titration: {max_step: 0.1 mg/kg/h, min_interval: 15 min}   # optional, library supplies defaults
"""


def fields(exc: ProgramError) -> list[str]:
    return [i.field for i in exc.issues]


def test_issue_example_parses_to_canonical_units(tmp_path: Path) -> None:
    p = load_program_text(ISSUE_EXAMPLE, tmp_path)
    assert p.program == "acute-pain-70kg"
    assert (p.drug.name, p.drug.concentration, p.drug.route) == ("ketamine", 1.0, "IV")
    assert (p.patient.weight, p.patient.care_area) == (70.0, "adult")
    assert p.pump.syringe is not None
    assert (p.pump.syringe.inner_diameter, p.pump.syringe.volume) == (26.7, 60.0)
    assert p.phases.prime is not None and p.phases.prime.volume == 0.5
    assert p.phases.loading is not None
    assert (p.phases.loading.dose, p.phases.loading.over) == (0.35, 600.0)
    m = p.phases.maintenance
    assert m is not None and m.rate.kind is RateKind.PER_WEIGHT
    assert (m.rate.canonical, m.duration, m.volume, m.until_stopped) == (0.2, 14400.0, None, False)
    assert p.phases.kvo is not None and p.phases.kvo.rate == 0.5
    assert p.titration is not None and p.titration.min_interval == 900.0
    assert p.library_path() == tmp_path / "library" / "ketamine.yaml"


def test_load_program_resolves_library_next_to_file(tmp_path: Path) -> None:
    f = tmp_path / "sub" / "prog.yaml"
    f.parent.mkdir()
    f.write_text(ISSUE_EXAMPLE)
    assert load_program(f).library_path() == f.parent / "library" / "ketamine.yaml"


def test_typo_is_an_error_naming_the_field() -> None:
    text = ISSUE_EXAMPLE.replace("duration: 4 h", "duraton: 4 h")
    with pytest.raises(ProgramError) as info:
        load_program_text(text)
    assert "phases.maintenance.duraton" in fields(info.value)


def test_wrong_unit_names_field_and_value() -> None:
    text = ISSUE_EXAMPLE.replace("dose: 0.35 mg/kg", "dose: 0.35 mg")
    with pytest.raises(ProgramError) as info:
        load_program_text(text)
    (issue,) = info.value.issues
    assert issue.field == "phases.loading.dose"
    assert issue.value == "0.35 mg"
    assert "dose per body weight" in issue.message


def test_every_problem_is_reported_at_once() -> None:
    text = ISSUE_EXAMPLE.replace("70 kg", "70").replace("26.7 mm", "26.7 mL")
    with pytest.raises(ProgramError) as info:
        load_program_text(text)
    assert fields(info.value) == ["patient.weight", "pump.syringe.inner_diameter"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("prime: {volume: 0.5 mL}", "prime: {skip: true}", "skipping the prime needs a reason"),
        ("prime: {volume: 0.5 mL}", "prime: {}", "give volume, or skip"),
        ("duration: 4 h}", "duration: 4 h, volume: 56 mL}", "exactly one of duration"),
        ("duration: 4 h}", "until_stopped: false}", "exactly one of duration"),
        ("care_area: adult", "care_area: equine", "'adult', 'pediatric', 'canine' or 'feline'"),
        ("rate: 0.2 mg/kg/h", "rate: -0.2 mg/kg/h", "greater than 0"),
        ("weight: 70 kg", "weight: 0 kg", "greater than 0"),
        (
            "{syringe: {inner_diameter: 26.7 mm, volume: 60 mL}}",
            "{syringe: {inner_diameter: 26.7 mm, volume: 60 mL}, tubing: {ml_per_rev: 0.8}}",
            "exactly one of syringe or tubing",
        ),
        ("rate: 0.5 mL/h}", "rate: 0.5 mg/h}", "volumetric rate"),
    ],
)
def test_schema_rules(old: str, new: str, message: str) -> None:
    assert old in ISSUE_EXAMPLE
    with pytest.raises(ProgramError, match=message):
        load_program_text(ISSUE_EXAMPLE.replace(old, new))


def test_prime_skip_with_reason_and_tubing() -> None:
    text = ISSUE_EXAMPLE.replace(
        "prime: {volume: 0.5 mL}", "prime: {skip: true, reason: line primed by gravity}"
    ).replace(
        "{syringe: {inner_diameter: 26.7 mm, volume: 60 mL}}",
        "{tubing: {ml_per_rev: 0.8}, reservoir: {volume: 500 mL}}",
    )
    p = load_program_text(text)
    assert p.phases.prime is not None and p.phases.prime.skip
    assert p.pump.tubing is not None and p.pump.tubing.ml_per_rev == 0.8
    assert p.pump.reservoir is not None and p.pump.reservoir.volume == 500.0


def test_duplicate_yaml_keys_are_refused() -> None:
    text = ISSUE_EXAMPLE + "titration: {max_step: 1 mg/kg/h}\n"
    with pytest.raises(ProgramError, match="duplicate key 'titration'"):
        load_program_text(text)


@pytest.mark.parametrize("text", ["", "- a list", "key: [unclosed"])
def test_not_a_mapping_or_not_yaml(text: str) -> None:
    with pytest.raises(ProgramError):
        load_program_text(text)


def test_missing_file_is_a_program_error(tmp_path: Path) -> None:
    with pytest.raises(ProgramError, match="cannot read"):
        load_program(tmp_path / "nope.yaml")
