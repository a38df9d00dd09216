"""Validate a program file completely (SR01) before anything can reach a pump.

`pumpctl check` prints the result; `pumpctl run` (and `demo`) call the same `check_program`
with the pump model they will drive and send nothing unless `exit_code == 0`. With a model, the
plan is quantized with that pump's rules, so the volumes and rates printed are exactly what the
pump is sent, and checked against its ranges. Exit codes: 0 valid, 1 schema error or hard limit,
2 soft limit crossed without an override (with reason).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pumpctl.dosing.library import (
    DrugLibrary,
    Override,
    Violation,
    default_library,
    load_library,
)
from pumpctl.dosing.plan import Plan, compile_with_violations
from pumpctl.dosing.program import Issue, ProgramError, load_program
from pumpctl.families import FamilySpec, Quantizer, WireQuantizer, family
from pumpctl.log import get_logger

__all__ = ["EXIT_HARD", "EXIT_OK", "EXIT_SOFT", "CheckResult", "check_program"]

EXIT_OK = 0
EXIT_HARD = 1
EXIT_SOFT = 2


@dataclass
class CheckResult:
    """Outcome of `check_program`: the plan (if computable), violations, applied overrides."""

    path: Path
    program: str | None
    plan: Plan | None
    library_version: str | None = None
    violations: list[Violation] = field(default_factory=list)
    overrides: list[Override] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: the pump the plan was checked for (None: no model named, fixed 0.001 steps)
    pump: FamilySpec | None = None
    no_library: bool = False

    @property
    def exit_code(self) -> int:
        if self.plan is None or any(v.severity == "hard" for v in self.violations):
            return EXIT_HARD
        if self.violations:
            return EXIT_SOFT
        return EXIT_OK

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK

    def to_json(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "program": self.program,
            "pump_model": self.pump.model if self.pump else None,
            "no_library": self.no_library,
            "pump_commands": _commands(self),
            "program_hash": plan.program_hash if plan else None,
            "library_version": self.library_version,
            "library_entry": plan.library_entry if plan else None,
            "segments": [s.model_dump(mode="json") for s in plan.segments] if plan else [],
            "total_volume_ml": plan.total_volume_ml if plan else None,
            "total_drug_mg": plan.total_drug_mg if plan else None,
            "titration": plan.titration.model_dump(mode="json")
            if plan and plan.titration
            else None,
            "rolling_limits": (
                plan.rolling_limits.model_dump(mode="json")
                if plan and plan.rolling_limits
                else None
            ),
            "container": plan.container.model_dump(mode="json") if plan else None,
            "tci": plan.tci.model_dump(mode="json") if plan and plan.tci else None,
            "bolus": plan.bolus.model_dump(mode="json") if plan and plan.bolus else None,
            "pk_model": plan.pk_model if plan else None,
            "predicted_peak_ug_per_ml": plan.predicted_peak_ug_per_ml if plan else None,
            "warnings": list(self.warnings),
            "violations": [v.model_dump(mode="json") for v in self.violations],
            "overrides": [o.model_dump(mode="json") for o in self.overrides],
            "exit_code": self.exit_code,
        }

    def render_table(self) -> str:
        return _render(self)


def _schema_violations(exc: ProgramError, version: str | None) -> list[Violation]:
    def one(issue: Issue) -> Violation:
        value = issue.value if isinstance(issue.value, str | int | float) else None
        return Violation(
            field=issue.field,
            value=float(value) if isinstance(value, int) and not isinstance(value, bool) else value,
            limit=None,
            unit=None,
            severity="hard",
            library_version=version,
            rule="schema",
            message=(
                f"{issue.field}{'' if value is None else f' = {value!r}'}: {issue.message} "
                f"(library {version or 'not loaded'}, schema)"
            ),
        )

    return [one(i) for i in exc.issues]


def check_program(
    path: Path | str,
    overrides: Mapping[str, str] | None = None,
    *,
    library: DrugLibrary | None = None,
    model: str | None = None,
    quantizer: Quantizer | None = None,
    no_library: bool = False,
) -> CheckResult:
    """Load, validate and compile `path`; `overrides` maps a soft-limit field to its reason.

    `model`: the pump it will run on (`families.UnknownModel` if there is no such model): the
    plan is quantized with its rules and checked against its ranges. `quantizer` replaces the
    model's (tests). `no_library`: run a drug the library does not list, without dose limits.
    `library` replaces the program's own library (tests); otherwise the program's `library:`
    file is used, or the packaged default library when it names none.
    """
    path = Path(path)
    pump = family(model) if model is not None else None
    log = get_logger("pumpctl.dosing.check", program_file=str(path))
    try:
        program = load_program(path)
    except ProgramError as exc:
        result = CheckResult(path, None, None, violations=_schema_violations(exc, None))
        _log(log, result)
        return result
    log = log.bind(program_id=program.program)
    if library is None:
        lib_path = program.library_path()
        try:
            library = load_library(lib_path) if lib_path is not None else default_library()
        except ProgramError as exc:
            result = CheckResult(
                path, program.program, None, violations=_schema_violations(exc, None)
            )
            _log(log, result)
            return result
    comp = compile_with_violations(
        program,
        library,
        overrides=overrides or {},
        quantizer=quantizer,
        pump=pump,
        no_library=no_library,
    )
    result = CheckResult(
        path,
        program.program,
        comp.plan,
        library_version=library.version,
        violations=comp.violations,
        overrides=comp.overrides,
        warnings=comp.warnings,
        pump=pump,
        no_library=no_library,
    )
    _log(log, result)
    return result


def _log(log: Any, result: CheckResult) -> None:
    """SR03: refusals and overrides are both logged, with the library version (SR33)."""
    for v in result.violations:
        log.warning(
            "limit_refused" if v.severity == "hard" else "limit_needs_override",
            field=v.field,
            value=v.value,
            limit=v.limit,
            unit=v.unit,
            severity=v.severity,
            rule=v.rule,
            library_version=v.library_version,
        )
    for o in result.overrides:
        log.warning(
            "limit_overridden",
            field=o.field,
            value=o.value,
            limit=o.limit,
            unit=o.unit,
            reason=o.reason,
            library_version=o.library_version,
        )
    log.info(
        "program_checked",
        exit_code=result.exit_code,
        library_version=result.library_version,
        pump_model=result.pump.model if result.pump else None,
        no_library=result.no_library,
        program_hash=result.plan.program_hash if result.plan else None,
    )


def _hms(seconds: float | None) -> str:
    if seconds is None:
        return "until stopped"
    total = round(seconds)
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


def _exact(value: float | None) -> str:
    """A volume or rate as the pump is sent it: at least 3 decimals, more when it has them
    (12.4775 must not print as 12.478), never rounded."""
    if value is None:
        return "-"
    text = f"{value:.9f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(3, '0')}"


def _wire(result: CheckResult) -> WireQuantizer | None:
    """The pump's quantizer for the plan's container, when it can name its commands."""
    if result.pump is None or result.plan is None:
        return None
    c = result.plan.container
    try:
        q = result.pump.quantizer(inner_diameter_mm=c.inner_diameter_mm, ml_per_rev=c.ml_per_rev)
    except ValueError:
        return None
    return q if isinstance(q, WireQuantizer) else None


def _commands(result: CheckResult) -> dict[str, str]:
    """Phase -> the commands the pump is sent for it (rate, then target)."""
    q = _wire(result)
    if q is None or result.plan is None:
        return {}
    out: dict[str, str] = {}
    for seg in result.plan.segments:
        try:
            out[seg.key] = f"{q.wire_rate(seg.rate_ml_per_h)}; {q.wire_volume(seg.volume_ml)}"
        except ValueError:
            out[seg.key] = "(not representable)"
    return out


def _header(result: CheckResult, plan: Plan) -> list[str]:
    c = plan.container
    container = (
        f"syringe {c.capacity_ml:g} mL, ID {c.inner_diameter_mm:g} mm"
        if c.inner_diameter_mm is not None and c.capacity_ml is not None
        else f"tubing {c.ml_per_rev:g} mL/rev"
    )
    if c.changes_allowed:
        container += ", changes allowed"
    if result.pump is not None:
        pump = (
            f"pump     {result.pump.model} ({result.pump.name}): every volume and rate below is "
            "exactly what the pump is sent"
        )
    else:
        pump = "pump     none named: 0.001 mL and mL/h steps (--model M: the pump's own, checked)"
    lines = [
        f"program  {plan.program}  (sha256 {plan.program_hash[:12]})",
        f"drug     {plan.drug} {plan.concentration_mg_per_ml:g} mg/mL   "
        f"patient {plan.weight_kg:g} kg {plan.care_area}   {container}",
        f"library  {plan.library_version or 'none'}  {plan.library_entry or '(no entry)'}",
        pump,
    ]
    if result.no_library:
        lines.append("!!! NO DRUG LIBRARY (--no-library): no dose limit was checked !!!")
    return lines


def _segment_rows(result: CheckResult, plan: Plan) -> list[str]:
    commands = _commands(result)
    lines = [
        f"{'phase':<12} {'dose rate':>22} {'mL/h':>10} {'volume mL':>10} "
        f"{'duration':>14} {'drug mg':>9}" + ("  pump commands" if commands else "")
    ]
    total_s = 0.0
    open_ended = False
    for s in plan.segments:
        dose = (
            f"{s.dose_rate:.4g} {s.dose_rate_unit}"
            if s.dose_rate is not None and s.dose_rate_unit
            else ""
        )
        extra = f"  ({s.dose:.4g} {s.dose_unit})" if s.dose is not None else ""
        sent = f"  {commands[s.key]}" if s.key in commands else ""
        name = s.phase.value if s.taper_step is None else f"taper {s.taper_step}"
        lines.append(
            f"{name:<12} {dose:>22} {_exact(s.rate_ml_per_h):>10} "
            f"{_exact(s.volume_ml):>10} {_hms(s.duration_s):>14} {_num(s.drug_mg):>9}"
            f"{sent}{extra}"
        )
        if s.duration_s is None:
            open_ended = True
        else:
            total_s += s.duration_s
    lines.append(
        f"{'total':<12} {'':>22} {'':>10} {_exact(plan.total_volume_ml):>10} "
        f"{_hms(None if open_ended else total_s):>14} {_num(plan.total_drug_mg):>9}"
        "  (drug mg: to the patient, prime excluded)"
    )
    return lines


def _limit_rows(plan: Plan) -> list[str]:
    lines: list[str] = []
    t = plan.titration
    start = next((s.rate_ml_per_h for s in plan.segments if s.phase == "maintenance"), None)
    if t is not None and start is not None and t.max_rate_ml_per_h <= start:
        lines.append("titration  increases refused (decreases always allowed)")
    elif t is not None:
        unit = t.dose_rate_unit or "mL/h"
        f = t.ml_per_h_per_dose_unit or 1.0
        lines.append(
            f"titration  step <= {t.max_step_ml_per_h:g} mL/h ({t.max_step_ml_per_h / f:.4g} "
            f"{unit}), every >= {t.min_interval_s / 60:g} min, up to "
            f"{t.max_rate_ml_per_h:g} mL/h ({t.max_rate_ml_per_h / f:.4g} {unit})"
        )
    r = plan.rolling_limits
    if r is not None:
        lines.append(
            f"rolling    hard maxima  1 h {_num(r.max_1h_ml, 'g')} mL, "
            f"4 h {_num(r.max_4h_ml, 'g')} mL, 24 h {_num(r.max_24h_ml, 'g')} mL"
        )
    return lines + _pk_rows(plan)


def _pk_rows(plan: Plan) -> list[str]:
    """TCI, bolus limits and the predicted peak (a population prediction, not a measurement)."""
    lines: list[str] = []
    tci = plan.tci
    if tci is not None:
        lines.append(
            f"tci        {tci.site} target {tci.target_ug_per_ml:g} ug/mL ({tci.pk_model}), "
            f"plasma never above {tci.max_plasma_ug_per_ml:g} ug/mL, rate <= "
            f"{tci.max_rate_ml_per_h:g} mL/h; ctl target up to {tci.max_target_ug_per_ml:g} "
            f"ug/mL in steps <= {tci.max_step_ug_per_ml:g}, every >= {tci.min_interval_s / 60:g}"
            " min; the segment's volume is the pump's own hard stop"
        )
    b = plan.bolus
    if b is not None:
        fallback = f"KVO {b.kvo_ml_per_h:g} mL/h" if b.kvo_ml_per_h else "stop"
        lines.append(
            f"bolus      <= {b.max_dose_mg:g} mg over {b.over_s:g} s (+{b.rate_ml_per_h:g} mL/h), "
            f"lockout {b.lockout_s / 60:g} min, <= {b.max_per_hour}/h, <= {b.max_mg_per_4h:g} mg"
            f" per 4 h, then basal only (no basal: {fallback})"
        )
    if plan.predicted_peak_ug_per_ml is not None:
        lines.append(
            f"predicted  peak plasma {plan.predicted_peak_ug_per_ml:.3g} ug/mL ({plan.pk_model}; "
            "population prediction, not a measured concentration; pumpctl predict for the curve)"
        )
    return lines


def _render(result: CheckResult) -> str:
    lines: list[str] = []
    plan = result.plan
    if plan is not None:
        lines += [*_header(result, plan), "", *_segment_rows(result, plan), *_limit_rows(plan)]
    for w in result.warnings:
        lines.append(f"warning    {w}")
    for o in result.overrides:
        lines.append(
            f"override   {o.field} = {o.value} {o.unit or ''} (limit {o.limit}): {o.reason}"
        )
    for v in result.violations:
        tag = "REFUSED " if v.severity == "hard" else "OVERRIDE NEEDED "
        lines.append(f"{tag}{v.message}")
    verdict = {
        EXIT_OK: "OK: program valid",
        EXIT_HARD: "REFUSED: nothing may be sent to the pump",
        EXIT_SOFT: "NOT ACCEPTED: soft limit crossed; --override FIELD --reason TEXT to proceed",
    }[result.exit_code]
    lines.append(verdict)
    return "\n".join(lines)
