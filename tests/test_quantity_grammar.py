"""Quantities are a number and a unit, nothing else (issue 17): the strict grammar refuses
expressions before pint can evaluate them, and no program text, however malformed, escapes
`load_program_text` or `pumpctl check` as anything but a program error on one line per problem.
"""

from __future__ import annotations

import copy
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pumpctl.dosing.check import check_program
from pumpctl.dosing.program import ProgramError, example_path, load_program_text
from pumpctl.dosing.units import UNIT_SPELLINGS, Kind, QuantityError, parse, parse_dose_rate
from pumpctl.operator.cli import main

EXAMPLES = example_path("acute-pain.yaml").parent

#: every quantity field of a program, with the kind it holds (None: any rate kind)
QUANTITY_FIELDS: dict[tuple[str, ...], Kind | None] = {
    ("drug", "concentration"): Kind.CONCENTRATION,
    ("patient", "weight"): Kind.WEIGHT,
    ("pump", "syringe", "inner_diameter"): Kind.LENGTH,
    ("pump", "syringe", "volume"): Kind.VOLUME,
    ("phases", "prime", "volume"): Kind.VOLUME,
    ("phases", "prime", "rate"): Kind.VOLUME_RATE,
    ("phases", "loading", "dose"): Kind.DOSE_PER_WEIGHT,
    ("phases", "loading", "over"): Kind.TIME,
    ("phases", "maintenance", "rate"): None,
    ("phases", "maintenance", "duration"): Kind.TIME,
    ("phases", "maintenance", "max_rate"): None,
    ("phases", "kvo", "rate"): Kind.VOLUME_RATE,
    ("titration", "max_step"): None,
    ("titration", "min_interval"): Kind.TIME,
}

BASE: dict[str, Any] = yaml.safe_load(example_path("acute-pain.yaml").read_text())


def with_value(path: tuple[str, ...], value: object) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return data


def valid(value: object, kind: Kind | None) -> bool:
    """Would the grammar accept `value` for `kind`? (None: YAML null, the field left out.)"""
    if value is None:
        return True
    try:
        if kind is None:
            parse_dose_rate(value, "f")
        else:
            parse(value, kind, "f")
    except QuantityError:
        return False
    return True


# ------------------------------------------------------------------ the cases of the issue


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("10**400 mL", "write a number and a unit, nothing else"),  # was OverflowError
        ("(" * 500 + "1" + ")" * 500 + " mL", "longer than 64 characters"),  # RecursionError
        ("((((((((((1)))))))))) mL", "write a number and a unit, nothing else"),
        ("1/0 mL", "write a number and a unit, nothing else"),  # was ZeroDivisionError
        ("(1 mL", "write a number and a unit, nothing else"),  # was TokenError
        ("inf mL", "not a finite number"),
        ("-inf mL", "not a finite number"),
        ("nan mL", "not a finite number"),
        ("1e400 mL", "out of range: allowed 1e-09 to 100000 mL"),
        ("1e-300 mL", "out of range"),
        ("2*3 mL", "write a number and a unit, nothing else"),  # was 6 mL
        ("1,5 mL", "use a decimal point, not a comma"),  # was 15 mL
        ("−1 mL", "write a number and a unit, nothing else"),  # unicode minus: was +1 mL
        ("١ mL", "write a number and a unit, nothing else"),  # arabic-indic digit
        ("1_000 mL", "write a number and a unit, nothing else"),  # was 1000 mL
        ("mL", "write a number and a unit, nothing else"),  # was 1 mL
        ("5", "a unit is required"),
        ("5 cc", "unknown unit 'cc'"),
        ("5 mL/boltzmann", "unknown unit 'boltzmann'"),
    ],
)
def test_malformed_quantities_are_refused_before_pint_sees_them(text: str, detail: str) -> None:
    with pytest.raises(QuantityError) as info:
        parse(text, Kind.VOLUME, "pump.syringe.volume")
    assert str(info.value).startswith("pump.syringe.volume: ")
    assert "a volume such as '56 mL'" in str(info.value)
    assert detail in str(info.value)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("1e2 mL", Kind.VOLUME, 100.0),
        ("+.5 mL", Kind.VOLUME, 0.5),
        ("5mL", Kind.VOLUME, 5.0),
        ("  5 ml  ", Kind.VOLUME, 5.0),
        ("250 uL", Kind.VOLUME, 0.25),
        ("250 µL", Kind.VOLUME, 0.25),
        ("1 L", Kind.VOLUME, 1000.0),
        ("3 days", Kind.TIME, 259200.0),
        ("90 sec", Kind.TIME, 90.0),
        ("0 mL", Kind.VOLUME, 0.0),  # zero is a number; the field decides whether it may be 0
        ("1500 g", Kind.WEIGHT, 1.5),
        ("10 μg/kg/min", Kind.DOSE_RATE_PER_WEIGHT, 0.6),
    ],
)
def test_well_formed_quantities_still_parse(text: str, kind: Kind, expected: float) -> None:
    assert parse(text, kind, "f") == pytest.approx(expected)


def test_pounds_are_refused_for_body_weight() -> None:
    """kg/lb mix-ups are a classic weight-based dosing error: refused, not converted."""
    with pytest.raises(QuantityError, match="unknown unit 'lb'; units: kg or g"):
        parse("154 lb", Kind.WEIGHT, "patient.weight")


def test_a_program_error_names_the_field_once_with_the_accepted_form() -> None:
    text = yaml.safe_dump(with_value(("phases", "loading", "dose"), "1/0 mg/kg"))
    with pytest.raises(ProgramError) as info:
        load_program_text(text, EXAMPLES)
    (issue,) = info.value.issues
    assert issue.field == "phases.loading.dose"
    assert issue.message.startswith("'1/0 mg/kg' is not a dose per body weight")
    assert "units: mg/kg or mcg/kg" in issue.message


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 1e9, "0.8 mL", "inf", True, 0])
def test_tubing_calibration_is_a_finite_sane_number(value: object) -> None:
    data = with_value(("pump",), {"tubing": {"ml_per_rev": value}})
    with pytest.raises(ProgramError) as info:
        load_program_text(yaml.safe_dump(data), EXAMPLES)
    assert [i.field for i in info.value.issues] == ["pump.tubing.ml_per_rev"]


def test_tubing_calibration_written_with_an_exponent_is_a_number() -> None:
    """YAML 1.1 reads `6e-05` (no decimal point) as text: still the number it says."""
    text = (
        example_path("acute-pain.yaml")
        .read_text()
        .replace(
            "pump: {syringe: {inner_diameter: 26.7 mm, volume: 60 mL}}",
            "pump: {tubing: {ml_per_rev: 6e-05}, reservoir: {volume: 100 mL}}",
        )
    )
    assert load_program_text(text, EXAMPLES).pump.tubing.ml_per_rev == 6e-05  # type: ignore[union-attr]


def test_yaml_errors_are_one_line_with_line_and_column() -> None:
    with pytest.raises(ProgramError) as info:
        load_program_text("program: x\ndrug: {name: ketamine, concentration: [2 mg/mL\n")
    (issue,) = info.value.issues
    assert issue.message.startswith("not valid YAML: ")
    assert "line 3" in issue.message and "\n" not in issue.message


def test_deeply_nested_yaml_is_a_program_error() -> None:
    with pytest.raises(ProgramError, match="not valid YAML"):
        load_program_text("program: " + "[" * 5000 + "]" * 5000)


# ------------------------------------------------------------------------------- the fuzz

_NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**500), max_value=10**500).map(str),
    st.sampled_from(
        ["10**400", "1/0", "(1", "((2))", "1e999", "-0", ".", "1.", "1e", "0x1F", "1_0", "1,5"]
    ),
    st.text(alphabet="0123456789.eE+-()*/ ", max_size=12),
)
_UNITS = st.one_of(
    st.sampled_from(sorted(UNIT_SPELLINGS)),
    st.lists(st.sampled_from(sorted(UNIT_SPELLINGS)), min_size=1, max_size=4).map("/".join),
    st.sampled_from(["mg/kg/", "/h", "mg//kg", "mg/kg/h/min", "lb", "MG/KG", "mg kg", "pint"]),
    st.text(max_size=8),
)
NEAR_MISSES = st.builds(
    lambda n, sep, u: f"{n}{sep}{u}", _NUMBERS, st.sampled_from(["", " ", "  ", "\t", "*"]), _UNITS
)
ANY_VALUE = st.one_of(
    NEAR_MISSES,
    st.text(max_size=80),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
)
FIELDS = st.sampled_from(sorted(QUANTITY_FIELDS))


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(NEAR_MISSES, st.text(max_size=100)), kind=st.sampled_from(list(Kind)))
def test_fuzz_parse_returns_a_sane_number_or_a_quantity_error(text: str, kind: Kind) -> None:
    try:
        value = parse(text, kind, "field")
    except QuantityError as exc:
        assert str(exc).startswith("field: ") and "\n" not in str(exc)
        return
    assert value == value and abs(value) < 1e7 * 86400  # finite, within every kind's range


def check_quantity_field(path: tuple[str, ...], value: object) -> None:
    text = yaml.safe_dump(with_value(path, value), allow_unicode=True)
    try:
        load_program_text(text, EXAMPLES)
    except ProgramError as exc:
        assert exc.issues and all("\n" not in i.message for i in exc.issues)
        if not valid(value, QUANTITY_FIELDS[path]):
            assert ".".join(path) in [i.field for i in exc.issues]


@settings(max_examples=100, deadline=None)
@given(path=FIELDS, value=ANY_VALUE)
def test_fuzz_every_quantity_field_ends_in_a_program_error_or_a_result(
    path: tuple[str, ...], value: object
) -> None:
    check_quantity_field(path, value)


@pytest.mark.slow
@settings(max_examples=1500, deadline=None)
@given(path=FIELDS, value=ANY_VALUE)
def test_fuzz_every_quantity_field_larger_sample(path: tuple[str, ...], value: object) -> None:
    check_quantity_field(path, value)


@settings(max_examples=150, deadline=None)
@given(path=FIELDS, raw=st.one_of(NEAR_MISSES, st.text(max_size=40)))
def test_fuzz_raw_program_text_never_escapes_as_another_exception(
    path: tuple[str, ...], raw: str
) -> None:
    """The value pasted into the YAML as typed, so YAML syntax errors are fuzzed too."""
    text = example_path("acute-pain.yaml").read_text()
    leaf = path[-1]
    text = "\n".join(
        line.replace(f"{leaf}: ", f"{leaf}: {raw} #", 1) if f" {leaf}: " in line else line
        for line in text.splitlines()
    )
    try:
        load_program_text(text, EXAMPLES)
    except ProgramError as exc:
        assert all("\n" not in i.message for i in exc.issues)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=FIELDS, value=ANY_VALUE)
def test_fuzz_pumpctl_check_exits_1_with_one_line_per_error_and_no_traceback(
    path: tuple[str, ...], value: object
) -> None:
    data = with_value(path, value)
    data["library"] = str(EXAMPLES / "library" / "ketamine.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        program = Path(tmp) / "program.yaml"
        program.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        result = CliRunner().invoke(main, ["check", str(program)])
        expected = check_program(program)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    assert result.exit_code == expected.exit_code
    if valid(value, QUANTITY_FIELDS[path]):
        return
    assert result.exit_code == 1
    refusals = [line for line in result.stdout.splitlines() if line.startswith("REFUSED ")]
    assert len(refusals) == len(expected.violations)
    named = [
        line for line in refusals if re.match(rf"REFUSED {re.escape('.'.join(path))}[ :]", line)
    ]
    assert len(named) == 1, refusals
    assert result.stdout.splitlines()[-1] == "REFUSED: nothing may be sent to the pump"
