"""Logging as a library and as the CLI (issue 12): silent unless the application configures it,
the application's stdlib config decides, and the CLI's --quiet / --log-level / --log-file."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from pumpctl.dosing.plan import Plan
from pumpctl.dosing.program import example_path
from pumpctl.log import LOGGER_NAME, configure_logging, get_logger, level_number
from pumpctl.operator.cli import main
from pumpctl.operator.display import LiveView

SHORT_PROGRAM = """
program: short-70kg
drug: {{name: ketamine, concentration: 2 mg/mL}}
patient: {{weight: 70 kg, care_area: adult}}
library: {library}
pump: {{syringe: {{inner_diameter: 26.7 mm, volume: 60 mL}}}}
phases:
  prime: {{volume: 0.5 mL}}
  maintenance: {{rate: 0.2 mg/kg/h, duration: 20 min}}
"""


@pytest.fixture
def short_program(tmp_path: Path) -> Path:
    """Twenty minutes of maintenance: enough polls to log, fast enough to run many times."""
    library = example_path("acute-pain.yaml").parent / "library" / "ketamine.yaml"
    path = tmp_path / "short.yaml"
    path.write_text(SHORT_PROGRAM.format(library=library))
    return path


SCRIPT = """
import sys
from pathlib import Path
from pumpctl.clock import run_with_clock
from pumpctl.dosing.check import check_program
from pumpctl.runner import run_on_simulator
from pumpctl.simulator.faults import FaultSchedule
{setup}
plan = check_program(Path(sys.argv[1])).plan

async def main(clock):
    # garbled replies make the driver log warnings: a silent library must not print them
    faults = FaultSchedule.from_specs(["garble@#30=2"], seed=1)
    result, _ = await run_on_simulator(plan, clock, faults=faults)
    return result

print(run_with_clock(main, virtual=True).outcome.value)
"""


def run_script(program: Path, setup: str = "") -> subprocess.CompletedProcess[str]:
    code = SCRIPT.format(setup=textwrap.dedent(setup))
    return subprocess.run(
        [sys.executable, "-c", code, str(program)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_as_a_library_pumpctl_prints_nothing_not_even_warnings(short_program: Path) -> None:
    proc = run_script(short_program)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "completed\n"
    assert proc.stderr == ""


def test_the_applications_logging_config_decides(short_program: Path) -> None:
    proc = run_script(short_program, "import logging\nlogging.basicConfig(level=logging.WARNING)\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "completed\n"
    warnings = [line for line in proc.stderr.splitlines() if "pump.bad_reply" in line]
    assert warnings, proc.stderr
    # a foreign formatter prints the event and its context, not a dict repr
    assert warnings[0].startswith("WARNING:pumpctl.driver:pump.bad_reply ")
    assert "pump_id='ne1000-0'" in warnings[0]
    assert "pump.exchange" not in proc.stderr  # debug stays below the application's level


def test_level_names() -> None:
    assert level_number("warning") == level_number("WARNING") == logging.WARNING
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        level_number("loud")


def test_SR33_log_file_gets_json_lines_with_pump_program_phase_and_library(
    tmp_path: Path, short_program: Path
) -> None:
    log_file = tmp_path / "audit.jsonl"
    result = CliRunner().invoke(
        main, ["demo", "--program", str(short_program), "--quiet", "--log-file", str(log_file)]
    )
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in log_file.read_text().splitlines()]
    ours = [e for e in events if e["logger"].startswith(("pumpctl.driver", "pumpctl.infusion"))]
    assert ours and all(e["pump_id"] == "ne1000-0" for e in ours)
    assert any(e["event"] == "pump.exchange" and e["level"] == "debug" for e in ours)
    for e in ours:  # opening the pump included: the CLI knows the program by then
        assert e["program_id"] == "short-70kg", e
        assert e["library_version"] == "2026.11-1", e
        assert "timestamp" in e
    start = next(i for i, e in enumerate(ours) if e["event"] == "run.start")
    assert start > 0 and all(e["phase"] for e in ours[start:])


def test_quiet_prints_the_outcome_and_no_progress(short_program: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--program", str(short_program), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "program short-70kg: completed\n"
    loud = CliRunner().invoke(main, ["demo", "--program", str(short_program)])
    assert "] maintenance" in loud.stdout  # the progress lines --quiet left out


def test_quiet_still_shows_alarms(short_program: Path) -> None:
    result = CliRunner().invoke(
        main, ["demo", "--program", str(short_program), "--quiet", "--fault", "stall@5m"]
    )
    assert result.exit_code == 3
    assert result.stdout == "program short-70kg: alarm (alarm: stall)\n"
    assert "alarm" in result.stderr and "stall" in result.stderr


def test_log_level_info_shows_info_events_on_the_console(short_program: Path) -> None:
    quiet = CliRunner().invoke(main, ["demo", "--program", str(short_program)])
    info = CliRunner().invoke(
        main, ["demo", "--program", str(short_program), "--log-level", "info"]
    )
    assert info.exit_code == quiet.exit_code == 0
    assert "run.start" in info.stderr and "run.start" not in quiet.stderr


def test_warnings_are_printed_above_the_live_panel(acute_plan: Plan, capsys) -> None:  # type: ignore[no-untyped-def]
    """While the panel runs, a warning goes through the panel's console (which prints it above
    the panel); written straight to the terminal's stderr, it would tear the display."""
    configure_logging(console=True, level=logging.WARNING)
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100, color_system=None)
    view = LiveView(acute_plan, pump="sim://ne1000", time_scale=1.0, console=console)
    with view:
        get_logger(f"{LOGGER_NAME}.test").warning("syringe.near_empty", left_ml=6.0)
    assert "syringe.near_empty" in screen.getvalue()
    assert "syringe.near_empty" not in capsys.readouterr().err
