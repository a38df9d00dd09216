"""`import pumpctl` is the whole public API: light to import, complete, and enough for a script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import pumpctl
from pumpctl.dosing.program import example_path


def test_the_public_names_resolve_and_are_listed() -> None:
    assert pumpctl.__version__
    for name in pumpctl.__all__:
        assert getattr(pumpctl, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pumpctl.nope  # noqa: B018
    assert issubclass(pumpctl.PumpTimeout, pumpctl.PumpError)
    assert issubclass(pumpctl.PumpTimeout, TimeoutError)


def test_importing_pumpctl_loads_no_serial_plotting_or_numerics() -> None:
    code = (
        "import sys, pumpctl; "
        "print(sorted(m for m in ('serial', 'matplotlib', 'numpy', 'pumpctl.infusion') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_run_program_checks_and_runs_a_program_on_the_built_in_emulation() -> None:
    result = pumpctl.run_program(
        example_path("acute-pain.yaml"), model="ne1000", port="sim://ne1000"
    )
    assert result is not None and result.outcome is pumpctl.Outcome.COMPLETED
    assert [round(p.delivered_ml, 3) for p in result.phases] == [0.5, 12.25, 28.0]


def test_a_refused_program_raises_and_opens_nothing(tmp_path: Path) -> None:
    journal = tmp_path / "never.sqlite"
    with pytest.raises(pumpctl.PlanRefused, match="loading"):
        pumpctl.run_program(
            example_path("rejected-loading.yaml"),
            model="ne1000",
            port="sim://ne1000",
            journal=journal,
        )
    assert not journal.exists()


def test_open_pump_refuses_a_simulator_of_another_model() -> None:
    async def main(clock: pumpctl.Clock) -> None:
        pumpctl.open_pump("harvard-elite", "sim://ne1000", clock=clock)

    with pytest.raises(ValueError, match="emulates ne1000, not harvard-elite"):
        pumpctl.run_with_clock(main, virtual=True)


def test_the_virtual_clock_needs_an_in_process_pump() -> None:
    with pytest.raises(ValueError, match="sim://"):
        pumpctl.run_program(
            example_path("acute-pain.yaml"), model="ne1000", port="/dev/null", virtual=True
        )
