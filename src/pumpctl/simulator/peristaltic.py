"""Peristaltic mechanics: rotor turns, tubing displacement, roller ripple, occlusion and air.

Pure and clock-free, like `SyringePhysics`: the caller says how many seconds passed. Speed is
piecewise constant, so every quantity is computed analytically from the state at the start of the
current segment (rotor position, counters, volumes), never by summing small steps; elapsed time is
accumulated with compensated (Kahan) summation. A 5-day run advanced every few ms ends on the same
revolutions and volume as one advanced once.

Direction: clockwise (the drive's `+`) is forward, i.e. infuse from the reservoir to the outlet;
counter-clockwise (`-`) pumps back from the outlet into the reservoir.

Tubing: `ml_per_rev` is the TRUE displacement of the installed tubing. It differs from the nominal
catalogue value a host assumes (tubing wear, wall tolerance, head occlusion), which is why a host
must calibrate: run N revolutions, weigh what came out, divide.

Pulsatility (roller ripple). `rollers` rollers squeeze the tube; each roller pass (1/N revolution)
delivers exactly `ml_per_rev / N`, but not evenly: the instantaneous displacement rate is

    q(p) = ml_per_rev × rev_per_s × (1 + ripple × cos(2π N p))        (p = rotor position, revs)

so the cumulative displacement is D(p) = ml_per_rev × (p + ripple / (2π N) × sin(2π N p)). The
cosine averages to zero over each pass: after every whole roller pass the volume equals
revolutions × ml_per_rev exactly, and the mean flow is exactly rpm × ml_per_rev. `ripple` ≤ 1 keeps
the flow from reversing (real heads can backflow briefly as a roller lifts off; not modelled).

Occlusion (downstream): the rotor keeps turning (a peristaltic drive has no stall detection), no
liquid leaves the outlet and the volume pushed is stored in the compliant line: pressure =
stored / `compliance_ml_per_kpa`. At `max_pressure_kpa` the tube can no longer hold the squeeze:
liquid slips back past the rollers, so the pressure stays there and nothing more is pushed.
Reversing against an occlusion sucks the line down to `-suction_limit_kpa` the same way. Releasing
the occlusion lets the stored volume out at once (a bolus; negative: the outlet is drawn back).

Reservoir (upstream): `reservoir_ml=None` is an endless supply. When it runs dry while pumping
forward, the rotor pumps air: it keeps turning and counting, no liquid is delivered. Air already
pumped is not tracked in the line: reversing draws liquid back from the outlet into the reservoir.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

__all__ = [
    "DEFAULT_COMPLIANCE_ML_PER_KPA",
    "DEFAULT_MAX_PRESSURE_KPA",
    "DEFAULT_RIPPLE",
    "DEFAULT_ROLLERS",
    "DEFAULT_SUCTION_LIMIT_KPA",
    "PeristalticPhysics",
]

#: Rollers on the pump head (a common L/S head has 3; pass `rollers=` for 4- or 6-roller heads).
DEFAULT_ROLLERS = 3
#: Flow ripple amplitude as a fraction of the mean flow: a model parameter, not a measured value.
DEFAULT_RIPPLE = 0.25
#: Compliance of the tubing downstream of the head, mL per kPa (about 1 m of soft L/S tubing).
DEFAULT_COMPLIANCE_ML_PER_KPA = 0.005
#: Pressure at which liquid slips back past the rollers, kPa (≈ 25 psi, a standard L/S head).
DEFAULT_MAX_PRESSURE_KPA = 172.0
#: Suction the line can be pulled to before the liquid column breaks, kPa below atmosphere.
DEFAULT_SUCTION_LIMIT_KPA = 80.0


@dataclass(frozen=True, slots=True)
class _Anchor:
    t_s: float
    position_revs: float  # signed rotor position, + = clockwise
    turned_revs: float  # revolutions turned in either direction, monotone
    pumped_ml: float  # net liquid moved through the head (+ = towards the outlet)
    outflow_ml: float  # net liquid that left the outlet (the patient's volume)
    line_ml: float  # liquid stored in the compliant line by an occlusion (signed)
    reservoir_ml: float | None  # liquid left upstream; None = endless


class PeristalticPhysics:
    """One pump head with its tubing, reservoir and downstream line."""

    def __init__(
        self,
        ml_per_rev: float,
        *,
        rollers: int = DEFAULT_ROLLERS,
        ripple: float = DEFAULT_RIPPLE,
        reservoir_ml: float | None = None,
        compliance_ml_per_kpa: float = DEFAULT_COMPLIANCE_ML_PER_KPA,
        max_pressure_kpa: float = DEFAULT_MAX_PRESSURE_KPA,
        suction_limit_kpa: float = DEFAULT_SUCTION_LIMIT_KPA,
    ) -> None:
        if ml_per_rev <= 0:
            raise ValueError(f"ml_per_rev must be > 0, got {ml_per_rev}")
        if rollers < 1 or not 0.0 <= ripple <= 1.0:
            raise ValueError(f"need rollers >= 1 and 0 <= ripple <= 1, got {rollers}, {ripple}")
        if compliance_ml_per_kpa <= 0 or max_pressure_kpa <= 0 or suction_limit_kpa <= 0:
            raise ValueError("compliance and pressure limits must be > 0")
        if reservoir_ml is not None and reservoir_ml < 0:
            raise ValueError(f"reservoir must be >= 0 mL, got {reservoir_ml}")
        self.ml_per_rev = ml_per_rev
        self.rollers = rollers
        self.ripple = ripple
        self.compliance_ml_per_kpa = compliance_ml_per_kpa
        self.max_pressure_kpa = max_pressure_kpa
        self.suction_limit_kpa = suction_limit_kpa
        self.occluded = False
        self._t = 0.0
        self._t_comp = 0.0  # Kahan compensation for the elapsed-time sum
        self._a = _Anchor(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, reservoir_ml)
        self._rev_per_s = 0.0
        self._sign = 1  # +1 clockwise (forward), -1 counter-clockwise
        self._turning = False
        self._limit_revs: float | None = None  # revolutions allowed in this segment

    # -- displacement ------------------------------------------------------------------------

    def displacement_ml(self, position_revs: float) -> float:
        """D(p): cumulative head displacement at rotor position p, ripple included (mL)."""
        n = self.rollers
        phase = math.fmod(n * position_revs, 1.0)
        return self.ml_per_rev * (
            position_revs + self.ripple / (2 * math.pi * n) * math.sin(2 * math.pi * phase)
        )

    def _moved_revs(self) -> float:
        return self._rev_per_s * (self._t - self._a.t_s) if self._turning else 0.0

    def _state(self, moved_revs: float) -> _Anchor:
        """The state after the rotor turned `moved_revs` since the anchor (at the current time)."""
        a = self._a
        position = a.position_revs + self._sign * moved_revs
        d = self.displacement_ml(position) - self.displacement_ml(a.position_revs)
        if moved_revs == 0.0:
            d = 0.0
        reservoir = a.reservoir_ml
        pumped, outflow, line = a.pumped_ml, a.outflow_ml, a.line_ml
        if d > 0:  # forward: liquid from the reservoir while it lasts, then air
            liquid = d if reservoir is None else min(d, reservoir)
            if self.occluded:
                liquid = min(liquid, max(0.0, self.max_line_ml - line))
                line += liquid
            else:
                outflow += liquid
        else:  # backward: liquid drawn back from the outlet side
            liquid = -d
            if self.occluded:
                liquid = min(liquid, max(0.0, line + self.suction_line_ml))
                line -= liquid
            else:
                outflow -= liquid
            liquid = -liquid
        pumped += liquid
        if reservoir is not None:
            reservoir = max(0.0, reservoir - liquid)
        return _Anchor(
            self._t, position, a.turned_revs + moved_revs, pumped, outflow, line, reservoir
        )

    @property
    def max_line_ml(self) -> float:
        """Volume stored in the occluded line at the slip pressure."""
        return self.max_pressure_kpa * self.compliance_ml_per_kpa

    @property
    def suction_line_ml(self) -> float:
        return self.suction_limit_kpa * self.compliance_ml_per_kpa

    # -- state at the current time -----------------------------------------------------------

    @property
    def elapsed_s(self) -> float:
        return self._t

    @property
    def turning(self) -> bool:
        return self._turning

    @property
    def clockwise(self) -> bool:
        return self._sign > 0

    @property
    def speed_rpm(self) -> float:
        """Rotor speed, revolutions per minute (0 when stopped)."""
        return self._rev_per_s * 60.0 if self._turning else 0.0

    @property
    def position_revs(self) -> float:
        """Signed rotor position since start, revolutions (+ = clockwise)."""
        return self._a.position_revs + self._sign * self._moved_revs()

    @property
    def turned_revs(self) -> float:
        """Revolutions turned in either direction since start (the drive's counter source)."""
        return self._a.turned_revs + self._moved_revs()

    @property
    def remaining_revs(self) -> float | None:
        """Revolutions left before the rotor stops by itself, None when running without limit."""
        if self._limit_revs is None or not self._turning:
            return self._limit_revs
        return max(0.0, self._limit_revs - self._moved_revs())

    @property
    def pumped_ml(self) -> float:
        """Net liquid pushed through the head since start, mL (air not counted)."""
        return self._state(self._moved_revs()).pumped_ml

    @property
    def outflow_ml(self) -> float:
        """Net liquid that left the outlet since start, mL (what reached the patient)."""
        return self._state(self._moved_revs()).outflow_ml

    @property
    def line_ml(self) -> float:
        """Liquid stored in the occluded line, mL (the bolus waiting to go; < 0: suction)."""
        return self._state(self._moved_revs()).line_ml

    @property
    def pressure_kpa(self) -> float:
        return self.line_ml / self.compliance_ml_per_kpa

    @property
    def reservoir_ml(self) -> float | None:
        return self._state(self._moved_revs()).reservoir_ml

    @property
    def pumping_air(self) -> bool:
        """Turning forward with the reservoir dry: the rotor moves, no liquid does."""
        reservoir = self.reservoir_ml
        return self._turning and self._sign > 0 and reservoir is not None and reservoir <= 0.0

    @property
    def mean_flow_ml_per_min(self) -> float:
        """Signed flow the rotor speed stands for: rpm × mL/rev (before occlusion and air)."""
        return self._sign * self.speed_rpm * self.ml_per_rev

    @property
    def flow_ml_per_min(self) -> float:
        """Instantaneous outflow at the current roller position, ripple included (signed)."""
        if not self._turning or self.occluded or self.pumping_air:
            return 0.0
        phase = math.fmod(self.rollers * self.position_revs, 1.0)
        return self.mean_flow_ml_per_min * (1.0 + self.ripple * math.cos(2 * math.pi * phase))

    # -- commands ----------------------------------------------------------------------------

    def start(self, speed_rpm: float, *, clockwise: bool, revs: float | None = None) -> None:
        """Turn at `speed_rpm`; `revs` = revolutions after which to stop exactly (None: endless)."""
        if speed_rpm <= 0:
            raise ValueError(f"speed must be > 0 rpm, got {speed_rpm}")
        if revs is not None and revs < 0:
            raise ValueError(f"revolutions must be >= 0, got {revs}")
        self._freeze()
        self._rev_per_s = speed_rpm / 60.0
        self._sign = 1 if clockwise else -1
        self._turning = True
        self._limit_revs = revs

    def set_speed(self, speed_rpm: float) -> None:
        """Change speed mid-run; the revolution limit keeps counting from where it was."""
        if speed_rpm <= 0:
            raise ValueError(f"speed must be > 0 rpm, got {speed_rpm}")
        self._freeze()
        self._rev_per_s = speed_rpm / 60.0

    def set_direction(self, *, clockwise: bool) -> None:
        self._freeze()
        self._sign = 1 if clockwise else -1

    def stop(self) -> None:
        self._freeze()
        self._turning = False
        self._limit_revs = None

    def set_occluded(self, occluded: bool) -> None:
        """Occlude or release the outlet line; release lets the stored volume out at once."""
        self._freeze()
        if occluded == self.occluded:
            return
        self.occluded = occluded
        if not occluded:
            a = self._a
            self._a = replace(a, outflow_ml=a.outflow_ml + a.line_ml, line_ml=0.0)

    def set_reservoir_ml(self, reservoir_ml: float | None) -> None:
        """Refill (or drain) the reservoir; None = endless supply."""
        if reservoir_ml is not None and reservoir_ml < 0:
            raise ValueError(f"reservoir must be >= 0 mL, got {reservoir_ml}")
        self._freeze()
        self._a = replace(self._a, reservoir_ml=reservoir_ml)

    def set_ml_per_rev(self, ml_per_rev: float) -> None:
        """Change the tubing (its true displacement); counters and volumes are kept."""
        if ml_per_rev <= 0:
            raise ValueError(f"ml_per_rev must be > 0, got {ml_per_rev}")
        self._freeze()
        self.ml_per_rev = ml_per_rev

    def _freeze(self) -> None:
        """Start a new segment now, with the current state as anchor and the limit rebased."""
        moved = self._moved_revs()
        self._a = self._state(moved)
        if self._turning and self._limit_revs is not None:
            self._limit_revs = max(0.0, self._limit_revs - moved)

    # -- time --------------------------------------------------------------------------------

    def advance(self, seconds: float) -> bool:
        """Let `seconds` pass; True if the revolution limit was reached (the rotor stopped)."""
        if seconds < 0:
            raise ValueError(f"cannot go back in time ({seconds} s)")
        y = seconds - self._t_comp
        t = self._t + y
        self._t_comp = (t - self._t) - y
        self._t = t
        limit = self._limit_revs
        if not self._turning or limit is None or self._moved_revs() < limit:
            return False
        self._a = self._state(limit)  # stop exactly on the limit, at the current time
        self._turning = False
        self._limit_revs = None
        return True
