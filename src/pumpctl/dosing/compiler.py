"""One compilation of a program into segments: library entry, then phase by phase.

Quantization happens here, once: every volume and rate is rounded DOWN by the target pump's
`Quantizer` (`pumpctl.families`; fixed 0.001 steps when no pump is named), so the plan holds
exactly what the pump will be sent. Durations follow from the quantized volume and rate.
Rounding down can only lower a dose or a rate and lengthen a loading, so a value at or below a
limit before rounding stays there; limits are checked on the quantized values. A value the pump
cannot express at all is refused with the field, the value and the pump's step.
"""

from __future__ import annotations

import difflib

from pumpctl.dosing.library import DrugLibrary, Entry, Limit, Severity, Violation, violation
from pumpctl.dosing.program import Program
from pumpctl.dosing.segments import Segment, SegmentPhase
from pumpctl.dosing.units import DoseRate, RateKind
from pumpctl.families.quantize import NotRepresentable, Quantizer, floor_to

__all__ = ["DEFAULT_PRIME_RATE_ML_PER_H", "Compiler"]

#: purge rate when the program gives none: 1 mL/min, a common syringe-driver prime rate
DEFAULT_PRIME_RATE_ML_PER_H = 60.0
#: a misspelt drug name this close to a library drug is refused with a suggestion
_SPELLING_CUTOFF = 0.8


class Compiler:
    """Collects violations instead of stopping at the first (SR01, SR02)."""

    def __init__(
        self,
        program: Program,
        library: DrugLibrary | None,
        quantizer: Quantizer,
        *,
        no_library: bool = False,
    ) -> None:
        self.p = program
        self.lib = library
        self.q = quantizer
        self.no_library = no_library
        self.version = library.version if library else None
        self.weight = program.patient.weight
        self.conc = program.drug.concentration
        self.found: list[Violation] = []
        self.warnings: list[str] = []
        self.in_library = bool(library and library.has_drug(program.drug.name))
        self.entry: Entry | None = None

    # -- helpers -----------------------------------------------------------------------------
    def add(
        self,
        fld: str,
        value: float | str | None,
        limit: float | str | None,
        unit: str | None,
        severity: Severity,
        rule: str,
        what: str,
        message: str | None = None,
    ) -> None:
        self.found.append(
            violation(
                field=fld,
                value=value,
                limit=limit,
                unit=unit,
                severity=severity,
                version=self.version,
                rule=rule,
                what=what,
                message=message,
            )
        )

    def limit(self, lim: Limit, value: float, fld: str, rule: str, unit: str | None = None) -> None:
        v = lim.check(value, field=fld, version=self.version, rule=rule, unit=unit)
        if v is not None:
            self.found.append(v)

    def _refuse(self, fld: str, exc: NotRepresentable) -> None:
        """Above the pump's largest value: name it; below its smallest step: name the step."""
        text = str(exc)
        if exc.largest is not None:
            self.add(fld, exc.value, exc.largest, exc.unit, "hard", "pump", "", message=text)
            return
        if "step" not in text:
            text += f" (the pump's step is {exc.step:g} {exc.unit})"
        self.add(fld, exc.value, exc.step, exc.unit, "hard", "pump", "", message=text)

    def volume(self, volume_ml: float, fld: str) -> float | None:
        """`volume_ml` as the pump is sent it; None (and a violation on `fld`) if it cannot.

        A segment larger than any one target the pump takes is fine when the container is
        changed during it: the pump is then only ever sent legs of at most one container,
        each rounded down, so the segment is kept in the pump's step at that size."""
        try:
            return self.q.floor_volume_ml(volume_ml)
        except NotRepresentable as exc:
            capacity = self._changed_container_ml()
            if exc.largest is not None and capacity is not None and capacity <= exc.largest:
                return floor_to(volume_ml, self.q.volume_step_ml(capacity))
            self._refuse(fld, exc)
            return None

    def _changed_container_ml(self) -> float | None:
        """The container's capacity when the program allows changing it, else None."""
        pump = self.p.pump
        if pump.changes != "allowed":
            return None
        if pump.syringe is not None:
            return pump.syringe.volume
        return pump.reservoir.volume if pump.reservoir is not None else None

    def rate(self, rate_ml_per_h: float, fld: str) -> float | None:
        """`rate_ml_per_h` as the pump is sent it; None (and a violation) if it cannot."""
        try:
            return self.q.floor_rate_ml_per_h(rate_ml_per_h)
        except NotRepresentable as exc:
            self._refuse(fld, exc)
            return None

    def per_weight(self, rate_ml_per_h: float) -> float:
        """mL/h -> mg/kg/h."""
        return rate_ml_per_h * self.conc / self.weight

    def rate_ml(self, rate: DoseRate) -> float:
        return rate.to_ml_per_h(weight_kg=self.weight, concentration_mg_per_ml=self.conc)

    def display_factor(self, rate: DoseRate) -> float:
        """mL/h per one unit of the rate as written (e.g. per mcg/kg/min)."""
        return self.rate_ml(rate) / rate.value

    # -- the library entry -------------------------------------------------------------------
    def resolve_entry(self) -> None:
        drug = self.p.drug
        if self.no_library:
            self._no_library_mode()
            return
        if self.lib is None or not self.in_library:
            self._not_in_library()
            return
        area, route = self.p.patient.care_area, drug.route
        entries = self.lib.entries_for(drug.name, area, route)
        if not entries:
            self.add(
                "patient.care_area",
                area,
                "no entry",
                None,
                "hard",
                "SR07",
                "",
                message=f"the library has no {drug.name} {route} entry for {area}",
            )
            return
        self.entry = self.lib.lookup(drug.name, area, route, self.conc)
        if self.entry is None:
            allowed = sorted({c for e in entries for c in e.concentrations})
            self.add(
                "drug.concentration",
                self.conc,
                ", ".join(f"{c:g}" for c in allowed),
                "mg/mL",
                "hard",
                "SR07",
                f"not an allowed {drug.name} {area} {route} concentration; allowed:",
            )
            return
        self.limit(self.entry.weight, self.weight, "patient.weight", "SR06")

    def _close_library_drug(self) -> str | None:
        if self.lib is None:
            return None
        names = sorted({e.drug for e in self.lib.entries})
        folded = {n.casefold(): n for n in names}
        close = difflib.get_close_matches(
            self.p.drug.name.casefold(), list(folded), n=1, cutoff=_SPELLING_CUTOFF
        )
        return folded[close[0]] if close else None

    def _not_in_library(self) -> None:
        """Not in the library: refused. A near miss is a typo that would remove every dose
        limit; anything else needs the explicit no-library mode."""
        close = self._close_library_drug()
        if close is not None:
            hint = f"did you mean {close}?"
        else:
            hint = "no dose limit can be checked; --no-library runs it without the library"
        self.add(
            "drug.name",
            self.p.drug.name,
            "not in library",
            None,
            "hard",
            "SR03",
            "",
            message=f"not in the drug library: {hint}",
        )

    def _no_library_mode(self) -> None:
        """`--no-library`: for a drug the library does not list; a listed one keeps its
        limits (the mode cannot be used to drop them)."""
        name = self.p.drug.name
        if self.in_library:
            self.add(
                "drug.name",
                name,
                "in library",
                None,
                "hard",
                "SR03",
                "",
                message=f"{name} is in the drug library: its limits apply (drop --no-library)",
            )
            return
        self.warnings.append(f"NO DRUG LIBRARY: {name} runs without any dose limit")
        close = self._close_library_drug()
        if close is not None:
            self.warnings.append(f"drug.name {name!r} is close to the library's {close}")

    # -- phases ------------------------------------------------------------------------------
    def prime(self) -> Segment | None:
        spec = self.p.phases.prime
        if spec is None:
            return None
        if spec.skip:
            self.warnings.append(f"prime skipped: {spec.reason}")
            return None
        assert spec.volume is not None  # validated by the Prime model
        volume = self.volume(spec.volume, "phases.prime.volume")
        rate = self.rate(spec.rate or DEFAULT_PRIME_RATE_ML_PER_H, "phases.prime.rate")
        if volume is None or rate is None:
            return None
        return Segment(
            phase=SegmentPhase.PRIME,
            rate_ml_per_h=rate,
            volume_ml=volume,
            duration_s=volume / rate * 3600.0,
            drug_mg=volume * self.conc,
        )

    def loading(self) -> Segment | None:
        spec = self.p.phases.loading
        if spec is None:
            return None
        if self.entry is not None and not self.entry.loading.allowed:
            self.add("phases.loading", spec.dose, 0.0, "mg/kg", "hard", "SR05", "no loading dose:")
        volume = self.volume(spec.dose * self.weight / self.conc, "phases.loading.dose")
        if volume is None:
            return None
        rate = self.rate(volume / (spec.over / 3600.0), "phases.loading.over")
        if rate is None:
            return None
        duration_s = volume / rate * 3600.0
        dose = volume * self.conc / self.weight
        rate_mg_per_kg_min = self.per_weight(rate) / 60.0
        if self.entry is not None:
            lim = self.entry.loading
            self.limit(lim.dose, dose, "phases.loading.dose", "SR05")
            self.limit(lim.duration, duration_s, "phases.loading.over", "SR05")
            self.limit(lim.rate, rate_mg_per_kg_min, "phases.loading.rate", "SR05")
        return Segment(
            phase=SegmentPhase.LOADING,
            rate_ml_per_h=rate,
            volume_ml=volume,
            duration_s=duration_s,
            dose_rate=rate_mg_per_kg_min,
            dose_rate_unit="mg/kg/min",
            drug_mg=volume * self.conc,
            dose=dose,
            dose_unit="mg/kg",
        )

    def refuse_bare_ml_per_h(self, rate: DoseRate, fld: str) -> bool:
        """SR04: a library drug is programmed in dose units, never as a bare mL/h."""
        if rate.kind is RateKind.VOLUMETRIC and self.in_library:
            self.add(
                fld,
                rate.value,
                "a dose rate",
                rate.unit,
                "hard",
                "SR04",
                "",
                message=(
                    f"{self.p.drug.name} is in the library: give a dose rate "
                    f"(mg/kg/h, mcg/kg/min or mg/h), not {rate.unit}"
                ),
            )
            return True
        return False

    def maintenance(self) -> tuple[Segment | None, float | None]:
        """The maintenance segment and the program's cap in mL/h (None if none)."""
        spec = self.p.phases.maintenance
        if spec is None:
            return None, None
        fld = "phases.maintenance.rate"
        if self.refuse_bare_ml_per_h(spec.rate, fld):
            return None, None
        rate = self.rate(self.rate_ml(spec.rate), fld)
        if rate is None:
            return None, None
        if self.entry is not None:
            self.limit(self.entry.maintenance.rate, self.per_weight(rate), fld, "SR03")
            self.limit(self.entry.maintenance.absolute_rate, rate * self.conc, fld, "SR03")
        cap = self._maintenance_cap(rate)
        volume: float | None = None
        if spec.volume is not None:
            volume = self.volume(spec.volume, "phases.maintenance.volume")
        elif spec.duration is not None:
            volume = self.volume(rate * spec.duration / 3600.0, "phases.maintenance.duration")
        if volume is None and not spec.until_stopped:
            return None, cap
        factor = self.display_factor(spec.rate)
        return (
            Segment(
                phase=SegmentPhase.MAINTENANCE,
                rate_ml_per_h=rate,
                volume_ml=volume,
                duration_s=None if volume is None else volume / rate * 3600.0,
                dose_rate=rate / factor,
                dose_rate_unit=spec.rate.unit,
                drug_mg=None if volume is None else volume * self.conc,
            ),
            cap,
        )

    def _maintenance_cap(self, rate_ml_per_h: float) -> float | None:
        """The program's `max_rate` in mL/h as the pump is sent it, checked like the rate."""
        spec = self.p.phases.maintenance
        assert spec is not None
        if spec.max_rate is None:
            return None
        mf = "phases.maintenance.max_rate"
        if self.refuse_bare_ml_per_h(spec.max_rate, mf):
            return None
        cap = self.rate(self.rate_ml(spec.max_rate), mf)
        if cap is None:
            return None
        if rate_ml_per_h > cap:
            self.add(
                "phases.maintenance.rate",
                spec.rate.value,
                str(spec.max_rate),
                spec.rate.unit,
                "hard",
                "SR03",
                "above the program's max_rate",
            )
        if self.entry is not None:
            self.limit(self.entry.maintenance.rate, self.per_weight(cap), mf, "SR03")
            self.limit(self.entry.maintenance.absolute_rate, cap * self.conc, mf, "SR03")
        return cap

    def kvo(self) -> Segment | None:
        spec = self.p.phases.kvo
        if spec is None:
            return None
        rate = self.rate(spec.rate, "phases.kvo.rate")
        if rate is None:
            return None
        if self.entry is not None:
            self.limit(self.entry.kvo.rate, rate, "phases.kvo.rate", "SR03")
        return Segment(
            phase=SegmentPhase.KVO,
            rate_ml_per_h=rate,
            dose_rate=rate * self.conc,
            dose_rate_unit="mg/h",
        )
