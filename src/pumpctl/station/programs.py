"""What a station is asked to run, checked by `check_program` exactly as `pumpctl check` does.

A program arrives as a name (a file in the station's programs folder, then the packaged
examples) or as YAML text, and is checked for the pump it will run on (its rounding and ranges,
as `pumpctl check --model`). Plain volumetric dosing (SiLA `DoseVolume`, `GenerateFlow`,
`SetFillLevel`) is a program too: a bare maintenance phase in mL/h of a fluid that is in no drug
library, checked in the explicit no-library mode (`pumpctl check --no-library`), so it goes
through the same check, the same plan and the same supervisor as any infusion, and is journaled
like one.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pumpctl.dosing.check import CheckResult, check_program
from pumpctl.dosing.library import Violation
from pumpctl.dosing.program import Pump, example_path

__all__ = [
    "PLAIN_FLUID",
    "PLAIN_PREFIX",
    "ProgramRefused",
    "check_file",
    "check_source",
    "is_program_text",
    "plain_program",
    "violation_record",
]

#: the "drug" of plain dosing: a name no drug library has, so no dose limit can apply
PLAIN_FLUID = "plain fluid (no drug)"
#: every plain dose's program name starts so (`plain-dose-PUMP`)
PLAIN_PREFIX = "plain-dose-"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class ProgramRefused(Exception):
    """`check_program` refused the program (exit code 1 or 2): nothing was sent to a pump."""

    def __init__(self, result: CheckResult, pump: str | None = None) -> None:
        self.result = result
        self.pump = pump
        lines = [v.message for v in result.violations] or ["the program could not be compiled"]
        super().__init__(("" if pump is None else f"pumps.{pump}.program: ") + "; ".join(lines))

    @property
    def exit_code(self) -> int:
        return self.result.exit_code


def violation_record(v: Violation) -> dict[str, Any]:
    """A violation as plain data: field, value, limit, unit, severity, rule, library version."""
    return v.model_dump(mode="json")


def is_program_text(source: str) -> bool:
    """YAML text rather than a program's name (a name has no colon and no line break)."""
    return "\n" in source or ":" in source


def _named(name: str, programs_dir: Path) -> Path:
    if not _NAME.match(name):
        # not a plain file name (no folders): check_program reports it as unreadable, by field
        return programs_dir / "not-a-program-name"
    for candidate in (programs_dir / name, programs_dir / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    for example in (name, f"{name}.yaml"):
        try:
            return example_path(example)
        except ValueError:
            continue
    return programs_dir / name


def check_file(
    path: Path,
    overrides: Mapping[str, str] | None = None,
    *,
    model: str | None = None,
    no_library: bool = False,
) -> CheckResult:
    """`check_program` for the pump `model` it will run on (a driver plug-in without a family
    spec is checked without its ranges, as `pumpctl run` does)."""
    from pumpctl.families import UnknownModel

    try:
        return check_program(path, overrides, model=model, no_library=no_library)
    except UnknownModel:
        return check_program(path, overrides, no_library=no_library)


def check_source(
    source: str,
    programs_dir: Path,
    overrides: Mapping[str, str] | None = None,
    *,
    model: str | None = None,
    no_library: bool = False,
) -> CheckResult:
    """Check a program given by name or as YAML text (SR01: before anything is opened or sent).

    Text is checked as a file of its own; a relative `library:` in it resolves against that
    file's (temporary) folder, so text names its library by an absolute path or not at all (the
    packaged default library).
    """
    if not is_program_text(source):
        path = _named(source.strip(), programs_dir)
        return check_file(path, overrides, model=model, no_library=no_library)
    with tempfile.TemporaryDirectory(prefix="pumpctl-program-") as folder:
        path = Path(folder) / "program.yaml"
        path.write_text(source, encoding="utf-8")
        return check_file(path, overrides, model=model, no_library=no_library)


def _quantity(value: float, unit: str) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return f"{text} {unit}"


def plain_program(pump: str, container: Pump, *, rate_ml_per_h: float, volume_ml: float) -> str:
    """YAML of a plain dose: `volume_ml` at `rate_ml_per_h` from `container`, nothing else."""
    holder: dict[str, Any] = {}
    if container.syringe is not None:
        holder["syringe"] = {
            "inner_diameter": _quantity(container.syringe.inner_diameter, "mm"),
            "volume": _quantity(container.syringe.volume, "mL"),
        }
    elif container.tubing is not None:
        holder["tubing"] = {"ml_per_rev": container.tubing.ml_per_rev}
        if container.reservoir is not None:
            holder["reservoir"] = {"volume": _quantity(container.reservoir.volume, "mL")}
    document = {
        "program": f"{PLAIN_PREFIX}{pump}",
        "drug": {"name": PLAIN_FLUID, "concentration": "1 mg/mL"},
        "patient": {"weight": "1 kg", "care_area": "adult"},
        "pump": holder,
        "phases": {
            "maintenance": {
                "rate": _quantity(rate_ml_per_h, "mL/h"),
                "volume": _quantity(volume_ml, "mL"),
            }
        },
    }
    return yaml.safe_dump(document, sort_keys=False)
