"""`pumpctl serve`: a station file's programs on their pumps, exit codes as `pumpctl run`'s."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pumpctl.operator.cli import main

PROGRAM = """
program: cli-short
drug: {name: ketamine, concentration: 2 mg/mL}
patient: {weight: 70 kg, care_area: adult}
pump: {syringe: {inner_diameter: 26.7 mm, volume: 60 mL}}
phases:
  prime: {volume: 0.5 mL}
  maintenance: {rate: 0.2 mg/kg/h, duration: 1 min}
"""


def station(tmp_path: Path, program_b: str = "short-peristaltic.yaml") -> Path:
    (tmp_path / "short.yaml").write_text(PROGRAM)
    tubing = "pump: {tubing: {ml_per_rev: 0.06}, reservoir: {volume: 100 mL}}"
    peristaltic = PROGRAM.replace(
        "pump: {syringe: {inner_diameter: 26.7 mm, volume: 60 mL}}", tubing
    )
    (tmp_path / "short-peristaltic.yaml").write_text(peristaltic)
    path = tmp_path / "station.yaml"
    path.write_text(
        "station: cli\npumps:\n"
        "  a: {model: ne1000, port: /dev/ttyUSB7, address: 1, journal: j/a.sqlite,"
        " program: short.yaml}\n"
        "  b: {model: masterflex-ls, port: sim://masterflex-ls, journal: j/b.sqlite,"
        f" program: {program_b}}}\n"
    )
    return path


def test_serve_simulated_runs_every_program_and_exits_with_the_worst_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = station(tmp_path)
    monkeypatch.chdir(tmp_path)  # journals are relative to where the station runs
    runner = CliRunner()
    fast = ["serve", str(path), "--simulate", "--time-scale", "30"]  # 90 s programs in 3 s
    ok = runner.invoke(main, fast)
    assert ok.exit_code == 0, ok.output
    assert "a: completed" in ok.output and "b: completed" in ok.output
    assert (tmp_path / "j/a.sqlite").is_file() and (tmp_path / "j/b.sqlite").is_file()
    # a stall on one pump (occluded 5 s in, stalls during its prime): that pump alarms and the
    # station exits 3; the other pump still completes. Fresh journals: no resume question.
    path.write_text(path.read_text().replace("j/", "k/"))
    stalled = runner.invoke(main, [*fast, "--fault", "a:stall@5s"])
    assert stalled.exit_code == 3, stalled.output
    assert "a: alarm (stall)" in stalled.output and "b: completed" in stalled.output


def test_SR01_serve_refuses_a_program_before_any_port_or_journal_is_opened(
    tmp_path: Path,
) -> None:
    path = station(tmp_path, program_b="rejected-loading.yaml")
    result = CliRunner().invoke(main, ["serve", str(path), "--simulate"])
    assert result.exit_code == 1
    assert "pumps.b: phases.loading.dose = 5 mg/kg" in result.output
    assert not (tmp_path / "j").exists()


def test_station_file_errors_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "station.yaml"
    path.write_text("pumps:\n  a: {model: ne1000, port: sim://harvard-elite, journal: a.sqlite}\n")
    result = CliRunner().invoke(main, ["serve", str(path)])
    assert result.exit_code == 1
    assert "pumps.a.port" in result.output
