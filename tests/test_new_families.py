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


def test_pumpctl_models_lists_every_family_with_its_title() -> None:
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0, result.output
    listed = [line.split("\t")[0] for line in result.output.splitlines()]
    assert listed == models() and set(NEW) <= set(listed)
    assert "tecan-xcalibur-oem\tTecan Cavro XCalibur (OEM protocol)" in result.output
    verbose = CliRunner().invoke(main, ["models", "--verbose"]).output
    assert "demo: pumpctl demo --model hamilton-psd6  (acute-pain-cavro.yaml)" in verbose


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
