"""Drug library: the shipped ketamine library, lookups, limit parsing and ordering."""

from __future__ import annotations

from pathlib import Path

import pytest

from pumpctl.dosing.library import DoseLimit, default_library, load_library, load_library_text
from pumpctl.dosing.program import ProgramError

SHIPPED = (
    Path(__file__).parent.parent / "src" / "pumpctl" / "examples" / "library" / "ketamine.yaml"
)


def test_shipped_library_is_versioned_with_four_care_areas() -> None:
    lib = load_library(SHIPPED)
    assert lib.version == "2026.11-1"
    assert sorted(e.care_area for e in lib.entries) == ["adult", "canine", "feline", "pediatric"]
    assert default_library() == lib  # the same file, through importlib.resources
    assert "Sources" in SHIPPED.read_text()


def test_shipped_adult_limits_in_canonical_units() -> None:
    adult = default_library().lookup("ketamine", "adult", "IV", 2.0)
    assert adult is not None
    assert (adult.loading.dose.soft_max, adult.loading.dose.hard_max) == (0.35, 1.0)
    assert (adult.loading.duration.hard_min, adult.loading.duration.soft_min) == (60.0, 600.0)
    assert adult.loading.rate.hard_max == 0.5
    assert (adult.maintenance.rate.hard_max, adult.maintenance.absolute_rate.soft_max) == (1.0, 40)
    assert adult.titration.min_interval.default == 900.0


def test_shipped_veterinary_rates_in_mg_per_kg_per_h() -> None:
    dog = default_library().lookup("KETAMINE", "canine", "iv", 1.0)
    assert dog is not None
    assert dog.maintenance.rate.soft_max == pytest.approx(0.6)  # 10 mcg/kg/min
    assert dog.maintenance.rate.hard_max == pytest.approx(1.2)  # 20 mcg/kg/min


def test_SR07_no_entry_allows_undiluted_100_mg_per_ml() -> None:
    lib = default_library()
    for area in ("adult", "pediatric", "canine", "feline"):
        assert lib.entries_for("ketamine", area, "IV")
        assert lib.lookup("ketamine", area, "IV", 100.0) is None
        assert lib.lookup("ketamine", area, "IV", 1.0) is not None


def test_limit_check_hard_before_soft() -> None:
    lim = DoseLimit.model_validate({"soft_max": "0.35 mg/kg", "hard_max": "1 mg/kg"})
    assert lim.check(0.35, field="f", version="v", rule="SR05") is None
    soft = lim.check(0.5, field="f", version="v", rule="SR05")
    hard = lim.check(1.01, field="f", version="v", rule="SR05")
    assert soft is not None and (soft.severity, soft.limit, soft.unit) == ("soft", 0.35, "mg/kg")
    assert hard is not None and (hard.severity, hard.limit) == ("hard", 1.0)
    assert hard.message == (
        "f = 1.01 mg/kg: above the hard maximum 1 mg/kg (hard limit, library v, SR05)"
    )


def test_limit_in_other_units_is_converted() -> None:
    lim = DoseLimit.model_validate({"hard_max": "500 mcg/kg"})
    assert lim.hard_max == 0.5


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        ({"soft_max": "1 mg/kg", "hard_max": "0.5 mg/kg"}, "hard_min <= soft_min"),
        ({"hard_max": "1 mg"}, "dose per body weight"),
        ({"hard_max": "1 mg/kg", "typo": 1}, "Extra inputs"),
    ],
)
def test_bad_limits_are_refused(limit: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DoseLimit.model_validate(limit)


LIB = """\
version: "t-1"
entries:
  - drug: ketamine
    care_area: adult
    concentrations: [1 mg/mL]
"""


def test_minimal_library_and_defaults() -> None:
    lib = load_library_text(LIB)
    entry = lib.lookup("ketamine", "adult", "IV", 1.0)
    assert entry is not None and entry.loading.allowed
    assert entry.weight.hard_max is None


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (LIB.replace('"t-1"', "2026.10"), "library.version"),  # must be quoted: 2026.10 != 2026.1
        (LIB + LIB.split("entries:\n")[1], "library"),  # two entries for the same key
        (LIB.replace("[1 mg/mL]", "[1 mg]"), "library.entries.0.concentrations.0"),
    ],
)
def test_bad_library_files(text: str, field: str) -> None:
    with pytest.raises(ProgramError) as info:
        load_library_text(text)
    assert info.value.issues[0].field == field
