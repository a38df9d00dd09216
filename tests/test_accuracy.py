"""SR32: the IEC 60601-2-24 style accuracy protocol: pure computations on synthetic traces with
known answers, then the real NE-1000 driver against its emulation on the virtual clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from pumpctl.operator.accuracy import (
    TRUMPET_WINDOWS_MIN,
    AccuracyResult,
    AccuracyTrace,
    TrumpetPoint,
    flow_rate_curve,
    measure_accuracy,
    overall_error_pct,
    render_accuracy,
    trumpet_curve,
    window_errors_pct,
)
from pumpctl.operator.cli import main
from pumpctl.operator.cli.common import Exit

RATE = 5.0  # mL/h
S = 30.0  # s
N = 240  # intervals in 120 min


def linear(rate_ml_per_h: float, intervals: int = N) -> AccuracyTrace:
    return AccuracyTrace(S, tuple(rate_ml_per_h * k * S / 3600.0 for k in range(intervals + 1)))


def test_perfect_pump_has_zero_error_everywhere() -> None:
    trace = linear(RATE)
    assert overall_error_pct(trace, RATE) == pytest.approx(0.0, abs=1e-9)
    for point in trumpet_curve(trace, RATE):
        assert point.max_error_pct == pytest.approx(0.0, abs=1e-9)
        assert point.min_error_pct == pytest.approx(0.0, abs=1e-9)
    assert all(q == pytest.approx(RATE) for _, q in flow_rate_curve(trace))


def test_constant_rate_error_shows_in_every_window() -> None:
    trace = linear(RATE * 1.02)  # 2 % fast
    assert overall_error_pct(trace, RATE) == pytest.approx(2.0)
    for point in trumpet_curve(trace, RATE):
        assert (point.max_error_pct, point.min_error_pct) == (
            pytest.approx(2.0),
            pytest.approx(2.0),
        )


def test_window_counts_follow_the_standard() -> None:
    # (60 - P) / 0.5 + 1 windows sliding by one sample over the 2nd hour
    points = trumpet_curve(linear(RATE), RATE)
    assert [p.window_min for p in points] == list(TRUMPET_WINDOWS_MIN) == [2, 5, 11, 19, 31]
    assert [p.windows for p in points] == [117, 111, 99, 83, 59]


def test_one_extra_drop_makes_the_trumpet() -> None:
    """One 30 s interval in the 2nd hour delivers 0.01 mL extra: a window holding it reads
    0.01 mL / (P/60 h x 5 mL/h) fast, a window without it reads exactly right."""
    volumes = list(linear(RATE).volumes_ml)
    bump_at = 200  # the interval 100.0..100.5 min
    for k in range(bump_at + 1, N + 1):
        volumes[k] += 0.01
    trace = AccuracyTrace(S, tuple(volumes))
    expected = [
        TrumpetPoint(p, 100 * 0.01 / (RATE * p / 60), 0.0, n)
        for p, n in zip(TRUMPET_WINDOWS_MIN, [117, 111, 99, 83, 59], strict=True)
    ]
    for got, want in zip(trumpet_curve(trace, RATE), expected, strict=True):
        assert got.window_min == want.window_min
        assert got.windows == want.windows
        assert got.max_error_pct == pytest.approx(want.max_error_pct)
        assert got.min_error_pct == pytest.approx(0.0, abs=1e-9)
    # 2 min: 0.01 mL in a window expecting 0.1667 mL is +6 %
    assert trumpet_curve(trace, RATE)[0].max_error_pct == pytest.approx(6.0)
    # the 2nd hour delivered 5.01 mL: A = +0.2 %
    assert overall_error_pct(trace, RATE) == pytest.approx(0.2)
    # the flow-rate curve shows the drop in one interval: 0.01 mL in 30 s = +1.2 mL/h
    curve = flow_rate_curve(trace)
    assert curve[bump_at] == (pytest.approx(100.5), pytest.approx(RATE + 1.2))
    assert curve[bump_at - 1][1] == pytest.approx(RATE)


def test_first_hour_is_not_analysed() -> None:
    volumes = list(linear(RATE).volumes_ml)
    for k in range(10, N + 1):  # a start-up bolus at 5 min
        volumes[k] += 0.5
    trace = AccuracyTrace(S, tuple(volumes))
    assert overall_error_pct(trace, RATE) == pytest.approx(0.0, abs=1e-9)
    assert all(abs(p.max_error_pct) < 1e-9 for p in trumpet_curve(trace, RATE))


@given(st.floats(min_value=-10.0, max_value=10.0), st.sampled_from([0.5, 1.0, 5.0, 25.0, 100.0]))
def test_overall_error_of_any_constant_error(error_pct: float, rate: float) -> None:
    trace = linear(rate * (1 + error_pct / 100))
    assert overall_error_pct(trace, rate) == pytest.approx(error_pct, abs=1e-6)


def test_traces_and_windows_are_validated() -> None:
    with pytest.raises(ValueError, match="at least two samples"):
        AccuracyTrace(S, (0.0,))
    with pytest.raises(ValueError, match="> 0 s"):
        AccuracyTrace(0.0, (0.0, 1.0))
    short = linear(RATE, intervals=100)  # 50 min: no 2nd hour
    with pytest.raises(ValueError, match="not a sample time"):
        overall_error_pct(short, RATE)
    with pytest.raises(ValueError, match="multiple of the sample interval"):
        window_errors_pct(linear(RATE), RATE, 2.25)
    with pytest.raises(ValueError, match="longer than the analysis period"):
        window_errors_pct(linear(RATE), RATE, 61)


@pytest.fixture(scope="module")
def ne1000_result() -> AccuracyResult:
    return measure_accuracy("ne1000")


def test_SR32_ne1000_accuracy_on_the_simulator(ne1000_result: AccuracyResult) -> None:
    """The real driver against the emulation, 2 h at 5 mL/h sampled every 30 s."""
    r = ne1000_result
    assert r.set_rate_ml_per_h == 5.0  # IEC 60601-2-24 intermediate rate for syringe pumps
    assert r.stated_accuracy_pct == 1.0
    assert len(r.truth.volumes_ml) == len(r.counter.volumes_ml) == 241
    assert r.truth.volumes_ml[0] == 0.0
    assert r.truth.volumes_ml[-1] == pytest.approx(10.0, abs=1e-9)  # 5 mL/h x 2 h, exactly
    # the counter shows 4 digits and truncates: it lags the plunger by less than one step
    for truth, counted in zip(r.truth.volumes_ml, r.counter.volumes_ml, strict=True):
        step_ml = 0.01 if truth >= 10 else 0.001  # 4 digits: 9.999, then 10.00
        assert 0.0 <= truth - counted < step_ml
    assert abs(r.truth_error_pct) < 1e-6
    assert abs(r.counter_error_pct) <= 0.1
    assert r.passed
    # the counter's 1 µL steps make a trumpet: ±1 µL in the 0.1667 mL of a 2 min window
    counter_2min = trumpet_curve(r.counter, 5.0)[0]
    assert counter_2min.max_error_pct <= 100 * 0.001 / (5.0 * 2 / 60) + 1e-9
    assert counter_2min.min_error_pct >= -100 * 0.001 / (5.0 * 2 / 60) - 1e-9


def test_accuracy_plot(ne1000_result: AccuracyResult, tmp_path: Path) -> None:
    out = render_accuracy(ne1000_result, tmp_path / "trumpet.png")
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    svg = render_accuracy(ne1000_result, tmp_path / "trumpet.svg")
    assert b"<svg" in svg.read_bytes()
    with pytest.raises(ValueError, match=r"use \.png or \.svg"):
        render_accuracy(ne1000_result, tmp_path / "trumpet.html")


def test_summary_lines(ne1000_result: AccuracyResult) -> None:
    lines = ne1000_result.summary_lines()
    assert lines[0] == (
        "ne1000: 5 mL/h for 120 min, sampled every 30 s (IEC 60601-2-24 style, simulator)"
    )
    assert lines[1].startswith("2nd-hour rate error: plunger +0.000 %, pump counter ")
    assert lines[1].endswith("(stated accuracy ±1 %): PASS")
    assert [line.split()[0] for line in lines[3:]] == ["2", "5", "11", "19", "31"]


def test_accuracy_command(tmp_path: Path) -> None:
    out = tmp_path / "acc.png"
    result = CliRunner().invoke(main, ["accuracy", "ne1000", "--rate", "7.3", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "ne1000: 7.3 mL/h for 120 min" in result.output
    assert f"wrote {out}" in result.output
    assert out.read_bytes().startswith(b"\x89PNG")
    unknown = CliRunner().invoke(main, ["accuracy", "nosuchpump", "-o", str(out)])
    assert unknown.exit_code == Exit.USAGE
    assert "unknown" in unknown.output


@pytest.mark.parametrize("model", ["harvard-legacy", "harvard-elite"])
def test_SR32_other_syringe_models_within_stated_accuracy(model: str) -> None:
    r = measure_accuracy(model)
    assert (r.container, r.set_rate_ml_per_h) == ("syringe", 5.0)
    assert r.truth.volumes_ml[-1] == pytest.approx(10.0, abs=1e-6)
    assert r.passed, r.summary_lines()
