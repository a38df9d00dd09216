"""Issue #16 end to end: `pumpctl models` lists the new families, and `pumpctl demo --model M`
completes each one's demo program exactly on the virtual clock (the Cavro pumps' program runs
40 mL from a reservoir through a 1 mL syringe that refills itself)."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from pumpctl.families import family, models
from pumpctl.operator.cli import main

NEW = [
    "chemyx-fusion", "kds-legato", "tecan-xcalibur", "tecan-xcalibur-oem", "tecan-xlp6000",
    "tecan-xlp6000-oem", "hamilton-psd4", "hamilton-psd6",
]  # fmt: skip


def test_pumpctl_models_lists_the_new_families_with_line_and_addresses() -> None:
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[1:13]}
    assert sorted(rows) == models() and set(NEW) <= set(rows)
    assert rows["tecan-xcalibur-oem"][1:4] == ["9600", "8N1", "0"]
    assert rows["kds-legato"][1:4] == ["115200", "8N1", "0"]
    assert "hamilton-psd6: PSD/6" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("model", NEW)
def test_demo_completes_the_families_program_exactly(model: str) -> None:
    result = CliRunner().invoke(main, ["demo", "--model", model, "--every", "600"])
    assert result.exit_code == 0, result.output
    assert ": completed" in result.output
    rows = re.findall(r"^(prime|loading|maintenance) +([\d.]+) +([\d.]+) +([+-][\d.]+) +ok$",
                      result.output, re.M)  # fmt: skip
    assert [r[0] for r in rows] == ["prime", "loading", "maintenance"], result.output
    assert all(float(planned) == float(delivered) for _, planned, delivered, _ in rows)
    total = re.search(r"^total +([\d.]+) +([\d.]+)$", result.output, re.M)
    truth = re.search(r"plunger ground truth \(simulator\): ([\d.]+) mL", result.output)
    assert total is not None and truth is not None
    assert float(truth[1]) == float(total[1]) == float(total[2])
    program = family(model).demo_program
    assert program == (
        "acute-pain-cavro.yaml" if family(model).container == "tubing" else "acute-pain.yaml"
    )
