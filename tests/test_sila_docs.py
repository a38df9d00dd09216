"""What docs/sila.md shows an orchestrator's author really works: its `python` blocks, in
order, as one script in a fresh interpreter (a SiLA client against a simulated station)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAFETY_S = 120  # a hang fails the test; it never decides a pass


@pytest.mark.slow
def test_the_orchestrator_example_runs(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "sila.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    assert blocks
    script = tmp_path / "orchestrator.py"
    script.write_text("\n".join(blocks), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=SAFETY_S,
        env={**os.environ, "GRPC_VERBOSITY": "NONE"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("check: 1 phases.loading.dose = 5 mg/kg")
    assert any(line.startswith("maintenance") for line in lines)
    assert lines[-1].startswith("completed 0.20")  # 0.2 mL prime + 2 s at 7 mL/h
