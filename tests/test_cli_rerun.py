"""Issue #12 item 1, as a user meets it: `pumpctl run`, Ctrl-C, then the same command again.

Two processes (`pumpctl simulate` keeps the pump and its plunger between the runs, as a real
pump would), a real pty, the same time scale on both sides. The rerun must not start from the
top: it refuses and names both ways forward, `--resume` continues what remains, and
`--new-run --reason` starts over on purpose.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pumpctl.infusion.events import NewRunStarted, parse_record
from pumpctl.infusion.journal import Journal
from pumpctl.operator.cli.common import Exit

from .test_e2e_wire import SAFETY_S, read_state, simulator, wait_for_state

SCALE = "300"  # the pump watchdog (255 s at most) is 0.85 s of wall time: a loaded CI survives it
ROOT = Path(__file__).resolve().parents[1]
#: prime 0.5 + loading 12.25 + 5 min of maintenance at 7 mL/h (0.583 mL) = 13.333 mL; Ctrl-C
#: comes about 50 s into the maintenance, so most of it is left for the resumed run
TOTAL_ML = 0.5 + 12.25 + 7.0 * 5 / 60


def program(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "examples" / "acute-pain.yaml").read_text())
    data["library"] = str(ROOT / "examples" / "library" / "ketamine.yaml")
    data["phases"]["maintenance"]["duration"] = "5 min"
    path = tmp_path / "acute-short.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def command(prog: Path, port: str, journal: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "pumpctl", "run", str(prog), "--model", "ne1000",
        "--port", port, "--time-scale", SCALE, "--journal", str(journal), "--quiet", *extra,
    ]  # fmt: skip


def test_ctrl_c_then_rerun_resumes_and_never_gives_the_loading_dose_again(tmp_path: Path) -> None:
    prog, journal, state = program(tmp_path), tmp_path / "run.sqlite", tmp_path / "state.json"
    with simulator("--time-scale", SCALE, state=state) as (line, _):
        port = line.removeprefix("PTY=")
        first = subprocess.Popen(command(prog, port, journal), text=True, cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        wait_for_state(state, lambda s: float(s["delivered_ml"]) > 12.85)  # type: ignore[arg-type]
        first.send_signal(signal.SIGINT)  # Ctrl-C during maintenance
        out, err = first.communicate(timeout=SAFETY_S)
        assert first.returncode == Exit.STOPPED, out + err
        stopped_at = float(wait_for_state(state, lambda s: s["running"] is False)["delivered_ml"])  # type: ignore[arg-type]

        again = subprocess.run(command(prog, port, journal), capture_output=True, text=True,
                               timeout=SAFETY_S, cwd=ROOT)  # fmt: skip
        assert again.returncode == Exit.RESUME_REFUSED, again.stdout + again.stderr
        assert "--resume" in again.stderr and "--new-run --reason" in again.stderr
        assert float(read_state(state)["delivered_ml"]) == pytest.approx(stopped_at, abs=0.001)  # type: ignore[arg-type]

        resumed = subprocess.run(command(prog, port, journal, "--resume"), capture_output=True,
                                 text=True, timeout=SAFETY_S, cwd=ROOT)  # fmt: skip
        assert resumed.returncode == Exit.OK, resumed.stdout + resumed.stderr
        done = wait_for_state(state, lambda s: s["running"] is False)
        assert float(done["delivered_ml"]) == pytest.approx(TOTAL_ML, abs=0.003)  # type: ignore[arg-type]


@pytest.mark.slow
def test_new_run_needs_its_own_reason_and_is_journaled(tmp_path: Path) -> None:
    prog, journal, state = program(tmp_path), tmp_path / "run.sqlite", tmp_path / "state.json"
    with simulator("--time-scale", SCALE, state=state) as (line, _):
        port = line.removeprefix("PTY=")
        first = subprocess.Popen(command(prog, port, journal), text=True, cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        wait_for_state(state, lambda s: float(s["delivered_ml"]) > 1.0)  # type: ignore[arg-type]
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=SAFETY_S)
        usage = subprocess.run(command(prog, port, journal, "--new-run"), capture_output=True,
                               text=True, timeout=SAFETY_S, cwd=ROOT)  # fmt: skip
        assert usage.returncode == Exit.USAGE and "--reason" in usage.stderr
        fresh = subprocess.Popen(
            command(prog, port, journal, "--new-run", "--reason", "line re-sited", "--who", "dr b"),
            text=True, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        wait_for_state(state, lambda s: s["running"] is True)
        fresh.send_signal(signal.SIGINT)
        fresh.communicate(timeout=SAFETY_S)
    with Journal.open_readonly(journal) as j:
        given_up = j.runs()[0]
        notes = [parse_record(e.kind, e.payload) for e in j.events(given_up.run_id, ["note"])]
    assert NewRunStarted(reason="line re-sited", who="dr b") in notes
