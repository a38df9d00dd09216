"""The command line as users run it: exit codes, JSON output, refusals that send nothing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pumpctl.dosing.check import check_program
from pumpctl.dosing.program import example_path
from pumpctl.families import family
from pumpctl.operator.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def check_json(program: Path, *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    result = CliRunner().invoke(main, ["check", str(program), "--json", *extra])
    return result.exit_code, json.loads(result.stdout)


def write_program(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "program.yaml"
    path.write_text(body)
    return path


PROGRAM_70KG_1MG = """
program: worked-check
drug: {{name: ketamine, concentration: {conc}}}
patient: {{weight: {weight}, care_area: {area}}}
pump: {{syringe: {{inner_diameter: 26.7 mm, volume: 60 mL}}, changes: allowed}}
phases:
{phases}
"""


@pytest.mark.parametrize(
    ("conc", "weight", "area", "phases", "expected"),
    [
        # dosing.md 1: 70 kg, 0.35 mg/kg over 10 min, 1 mg/mL -> 24.5 mL at 147 mL/h
        (
            "1 mg/mL",
            "70 kg",
            "adult",
            "  loading: {dose: 0.35 mg/kg, over: 10 min}\n  maintenance: {rate: 0.2 mg/kg/h, duration: 4 h}",
            [("loading", 24.5, 147.0), ("maintenance", 56.0, 14.0)],
        ),
        # 70 kg, 0.1 mg/kg/h, 2 mg/mL -> 3.5 mL/h
        (
            "2 mg/mL",
            "70 kg",
            "adult",
            "  maintenance: {rate: 0.1 mg/kg/h, duration: 4 h}",
            [("maintenance", 14.0, 3.5)],
        ),
        # dog 20 kg, 0.5 mg/kg loading, then 10 mcg/kg/min at 1 mg/mL -> 10 mL, 12 mL/h
        (
            "1 mg/mL",
            "20 kg",
            "canine",
            "  loading: {dose: 0.5 mg/kg, over: 2 min}\n  maintenance: {rate: 10 mcg/kg/min, duration: 1 h}",
            [("loading", 10.0, 300.0), ("maintenance", 12.0, 12.0)],
        ),
    ],
)
def test_worked_checks_through_check_json(tmp_path, conc, weight, area, phases, expected) -> None:  # type: ignore[no-untyped-def]
    path = write_program(
        tmp_path, PROGRAM_70KG_1MG.format(conc=conc, weight=weight, area=area, phases=phases)
    )
    code, out = check_json(path)
    assert code == 0, out["violations"]
    got = [(s["phase"], s["volume_ml"], s["rate_ml_per_h"]) for s in out["segments"]]
    assert got == [(p, pytest.approx(v), pytest.approx(r)) for p, v, r in expected]
    assert out["total_volume_ml"] == pytest.approx(sum(v for _, v, _ in expected))


@pytest.mark.parametrize("name", ["acute-pain", "crps-inpatient", "outpatient-4h", "canine-cri"])
def test_shipped_examples_check_clean(name: str) -> None:
    code, out = check_json(EXAMPLES / f"{name}.yaml")
    assert code == 0, out["violations"]
    assert out["library_version"]
    assert out["segments"]


def test_SR02_SR05_refused_loading_names_field_value_limit_unit_and_library() -> None:
    result = CliRunner().invoke(main, ["check", str(EXAMPLES / "rejected-loading.yaml")])
    assert result.exit_code == 1
    line = next(
        ln for ln in result.stdout.splitlines() if ln.startswith("REFUSED phases.loading.dose")
    )
    assert "5 mg/kg" in line and "hard maximum 1 mg/kg" in line
    assert re.search(r"library \d{4}\.\d{2}-\d+", line)


def test_SR03_soft_limit_exits_2_and_override_with_reason_accepts(tmp_path: Path) -> None:
    # loading over 5 min: below the adult soft minimum of 10 min, above the hard minimum
    path = write_program(
        tmp_path,
        PROGRAM_70KG_1MG.format(
            conc="1 mg/mL",
            weight="70 kg",
            area="adult",
            phases="  loading: {dose: 0.2 mg/kg, over: 5 min}\n  maintenance: {rate: 0.2 mg/kg/h, duration: 1 h}",
        ),
    )
    code, out = check_json(path)
    assert code == 2
    assert [v["field"] for v in out["violations"]] == ["phases.loading.over"]
    code, out = check_json(
        path, "--override", "phases.loading.over", "--reason", "fast onset needed, monitored"
    )
    assert code == 0
    assert out["overrides"][0]["reason"] == "fast onset needed, monitored"
    # an override without a reason is a usage error, not an acceptance
    result = CliRunner().invoke(main, ["check", str(path), "--override", "phases.loading.over"])
    assert result.exit_code == 64 and "--reason" in result.output  # not 2: that is a soft limit


def test_SR01_refused_program_never_opens_the_port(tmp_path: Path) -> None:
    # a port that cannot exist: if run tried to open it, the error would be about the port
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(EXAMPLES / "rejected-loading.yaml"),
            "--model",
            "ne1000",
            "--port",
            str(tmp_path / "no-such-port"),
            "--journal",
            str(tmp_path / "j.sqlite"),
        ],
    )
    assert result.exit_code == 1
    assert "phases.loading.dose" in result.output
    assert "no-such-port" not in result.output
    assert not (tmp_path / "j.sqlite").exists()  # nothing journaled, nothing sent


def test_demo_completes_with_every_phase_delivered(tmp_path: Path) -> None:
    journal = tmp_path / "demo.sqlite"
    result = CliRunner().invoke(main, ["demo", "--journal", str(journal)])
    assert result.exit_code == 0, result.output
    rows = {
        m.group(1): (float(m.group(2)), float(m.group(3)), m.group(4))
        for m in re.finditer(
            r"^(prime|loading|maintenance)\s+([\d.]+)\s+([\d.]+)\s+\S+\s+(\w+)$",
            result.output,
            re.M,
        )
    }
    assert set(rows) == {"prime", "loading", "maintenance"}
    for planned, delivered, mark in rows.values():
        assert mark == "ok" and delivered == pytest.approx(planned, abs=0.001)
    assert "one scripted pause of 5 min during maintenance" in result.output
    truth = re.search(r"plunger ground truth \(simulator\): ([\d.]+) mL", result.output)
    assert truth is not None and float(truth.group(1)) == pytest.approx(40.75, abs=0.003)
    history = CliRunner().invoke(main, ["journal", str(journal)])
    assert history.exit_code == 0 and "completed" in history.output


def test_readme_api_example_runs_and_prints_only_its_result() -> None:
    """The README's Python example is executed verbatim, with no logging configured: as a
    library pumpctl prints nothing of its own (it used to print 15,069 debug lines)."""
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"## Python API\s+```python\n(.*?)```", readme, re.S)
    assert code is not None
    proc = subprocess.run(
        [sys.executable, "-c", code.group(1)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    (line,) = proc.stdout.splitlines()
    assert line.startswith("completed ") and "('maintenance', 28.0)" in line


def test_json_log_puts_structlog_lines_on_stdout_and_warnings_always_reach_people() -> None:
    result = CliRunner().invoke(main, ["demo", "--json-log", "--no-pause"])
    assert result.exit_code == 0
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert any(e["event"] == "run.end" and e["outcome"] == "completed" for e in events)
    assert all("timestamp" in e and "level" in e for e in events)
    # without --json-log, an alarm's warnings reach the console (stderr) even with no audit file
    faulty = CliRunner().invoke(main, ["demo", "--fault", "stall@2h", "--no-pause"])
    assert faulty.exit_code == 3
    assert "alarm" in faulty.stderr and "stall" in faulty.stderr


@pytest.mark.parametrize("model", ["harvard-legacy", "harvard-elite", "masterflex-ls"])
def test_demo_delivers_every_phase_exactly_on_every_family(model: str) -> None:
    result = CliRunner().invoke(main, ["demo", "--model", model, "--no-pause"])
    assert result.exit_code == 0, result.output
    marks = re.findall(
        r"^(?:prime|loading|maintenance)\s+\S+\s+\S+\s+\S+\s+(\w+)$", result.output, re.M
    )
    assert marks == ["ok", "ok", "ok"], result.output
    truth = re.search(r"plunger ground truth \(simulator\): ([\d.]+) mL", result.output)
    # the plan as that pump is sent it: 40.75 mL on the syringe pumps; the Masterflex runs in
    # 0.01 rev of 0.06 mL/rev and 0.1 rpm (the 7 mL/h maintenance at 1.9 rpm, 6.84 mL/h: 27.36 mL
    # in the 4 h), 40.1094 mL in all
    plan = check_program(example_path(family(model).demo_program), model=model).plan
    assert plan is not None and plan.total_volume_ml is not None
    expected = 40.1094 if model == "masterflex-ls" else 40.75
    assert plan.total_volume_ml == pytest.approx(expected)
    assert truth is not None and float(truth.group(1)) == pytest.approx(expected, abs=0.003)


SMALL_SYRINGE = """
program: small-syringe-70kg
drug: {{name: ketamine, concentration: 2 mg/mL}}
patient: {{weight: 70 kg, care_area: adult}}
library: {library}
pump: {{syringe: {{inner_diameter: 14.5 mm, volume: 10 mL}}, changes: allowed}}
phases:
  prime: {{volume: 0.5 mL}}
  maintenance: {{rate: 0.4 mg/kg/h, duration: 90 min}}
"""


def test_demo_summary_counts_container_changes_apart_from_the_scripted_pause(
    tmp_path: Path,
) -> None:
    """21.5 mL from a 10 mL syringe takes changes; the summary used to call every one of
    them, and the scripted pause, 'paused once'."""
    program = write_program(
        tmp_path, SMALL_SYRINGE.format(library=EXAMPLES / "library" / "ketamine.yaml")
    )
    journal = tmp_path / "demo.sqlite"
    result = CliRunner().invoke(
        main, ["demo", "--program", str(program), "--journal", str(journal)]
    )
    assert result.exit_code == 0, result.output
    from pumpctl.infusion.journal import Journal

    with Journal.open_readonly(journal) as jr:
        run = jr.latest_run()
        assert run is not None
        changes = [
            e for e in jr.events(run.run_id) if e.payload.get("event") == "container_changed"
        ]
    assert len(changes) >= 2
    assert f"{len(changes)} syringe changes, each confirmed by the simulated nurse" in result.output
    assert "one scripted pause of 5 min during maintenance" in result.output
    assert "paused once" not in result.output
