"""Dispense-and-refill bookkeeping for a Cavro syringe pump: pure, no I/O.

A Cavro pump moves its plunger in command strings and has no volume counter, so the driver
keeps the books: every string it sends dispenses `n` increments through the output port, then
refills `m` from the reservoir port and turns the valve back to the output
(`O V<v> D<n> I V<r> P<m> O R`). An empty syringe is filled first in the same string (`I V<r>
P<f>`), after the initialization `Z` on a pump's first string. Each string is bounded (at most
one syringe), so a controller that dies leaves the pump stopped after that string.

What a string has delivered so far is read from the plunger position `?`, the valve `?6` and
`Q`, read in that order:
- `Q` ready (and the driver did not terminate it): the string is done, `n` delivered;
- valve at the output: dispensing (or not yet), `p0 - position` (0..n);
- valve at the reservoir: the dispense is over (`n`) if the valve was seen at the output in
  this string (every string ends there), else the first valve move has not happened (0);
- valve at the output again with the plunger above the lowest position read (or above where
  the dispense started): the refill is done and the valve is back for the string's end (`n`).
  A dispense only moves the plunger down, so this is never a dispense in progress; a string
  terminated there (a `T` during that last valve move) delivered all of its `n`.
A conclusion the books keep for the rest of the string (the dispense began, it is over, the
plunger went this low) takes two readings that agree: DT replies carry no checksum, so one
digit or valve letter changed on the line may make one reading wrong (the supervisor reads
again when its numbers raise an alarm), but never the string's books.
Reading `Q` last means a string seen busy was busy at the two reads before it. This relies on
`?6` reporting the position the valve last reached while it moves (emulation choice, not
verified on hardware).

Delivered volume is the sum of finished strings plus the running one's share: aspirations
never count, so a refill is never counted twice. `ValvePorts` names which valve positions are
the reservoir and the output in the strings and in `?6`. The rates a pump can average over these
cycles are its capabilities (`cycle_capabilities`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pumpctl.drivers.base import Capabilities
from pumpctl.families.cavro import MODELS, CavroQuantizer

__all__ = [
    "CycleBooks",
    "PumpString",
    "ValvePorts",
    "build_string",
    "cycle_capabilities",
    "init_command",
]


@dataclass
class PumpString:
    """One command string in flight."""

    text: str
    start_steps: int  # plunger position where the dispense starts (after any first fill)
    dispense_steps: int  # n
    refill_steps: int  # m
    seen_output: bool  # the valve was seen at (or started at) the output port
    terminated: bool = False
    #: its answer was lost (SR21): executed unless the move counter says otherwise
    unconfirmed: bool = False
    moves_before: int | None = None
    #: it begins with the pump's initialization (`Z`)
    initializes: bool = False
    #: the dispense is over: the valve left the output after it, or the plunger went back up
    dispensed: bool = False
    #: the lowest position read at the output (a dispense only moves the plunger down)
    low_steps: int | None = None
    #: f: an empty syringe was filled first in this string (`start_steps` = f)
    fill_steps: int = 0
    #: the low before the last reading lowered it, while no later reading confirmed that one
    low_unconfirmed: int | None = None
    #: the previous reading: (at the output, its conclusion was that the dispense is over)
    previous: tuple[bool, bool] | None = None

    def delivered_steps(self, position: int, valve_at_output: bool, ready: bool) -> int:
        """What this string has dispensed, from one reading (see the module). A conclusion
        kept for the rest of the string (the dispense began; it is over; the plunger went this
        low) needs two readings: a DT reply carries no checksum, and a digit or valve letter
        changed on the line must cost one wrong reading, never the string's books (SR20)."""
        n = self.dispense_steps
        if n == 0:
            return 0
        if (ready and not self.terminated) or self.dispensed:
            return n
        previous, over = self.previous, True
        if valve_at_output:
            over = self._over_at_output(position, previous)
        else:
            self.low_unconfirmed = None  # the valve moved on: the low read before it stands
            over = self.seen_output  # else before the first valve move (a fill): nothing out
        self.previous = (valve_at_output, over)
        if over:
            if previous is not None and previous[1]:
                self.dispensed = True  # read over twice in a row
            return n
        return min(n, max(0, self.start_steps - position)) if valve_at_output else 0

    def _over_at_output(self, position: int, previous: tuple[bool, bool] | None) -> bool:
        """At the output: above the lowest position read, the refill is done and the valve is
        back for the string's end (a dispense never moves the plunger up); else dispensing."""
        low = self.start_steps if self.low_steps is None else self.low_steps
        before, self.low_unconfirmed = self.low_unconfirmed, None
        if position > low and before is not None and position < before:
            # only the last reading went below this one, and this one is still below the low
            # before it: the plunger moved on down, and that reading was the wrong one
            self.low_unconfirmed, self.low_steps = before, position
            return False
        if position > low:
            return True
        if (previous is not None and previous[0]) or position < low:
            # at the output twice, or moving down there. Residual: a valve letter changed to
            # the output's during a fill reads as a dispense begun, and the string's end
            # then comes too early, which the supervisor's deviation check stops (an alarm)
            self.seen_output = True
        if position < low:
            self.low_unconfirmed, self.low_steps = low, position
        return False


def build_string(
    *,
    start_steps: int,
    dispense_steps: int,
    refill_steps: int,
    speed: int,
    refill_speed: int,
    output: str,
    reservoir: str,
    fill_steps: int = 0,
    init: str = "",
) -> str:
    """`[init] [I V<r> P<f>] O V<v> D<n> I V<r> P<m> O R`: a part left out when 0."""
    if dispense_steps < 0 or refill_steps < 0 or dispense_steps > start_steps:
        raise ValueError(f"cannot dispense {dispense_steps} of {start_steps} increments")
    if fill_steps and fill_steps != start_steps:
        raise ValueError("a first fill starts from an empty syringe")
    parts = [init] if init else []
    if fill_steps:
        parts += [reservoir, f"V{refill_speed}", f"P{fill_steps}"]
    if dispense_steps:
        parts += [output, f"V{speed}", f"D{dispense_steps}"]
    if refill_steps:
        parts += [reservoir, f"V{refill_speed}", f"P{refill_steps}", output]
    return "".join(parts) + "R"


def init_command(stroke_ml: float) -> str:
    """`Z<force>` (labmcp's rule: full force from 1 mL, half from 250 uL, else third)."""
    force = 0 if stroke_ml >= 1.0 else 1 if stroke_ml >= 0.25 else 2
    return f"Z{force}"


def cycle_capabilities(family: str, quantizer: CavroQuantizer) -> Capabilities:
    """What a model does with one syringe: rates are cycle averages, from the slowest top speed
    to the fastest a program may ask for (`max_strokes_per_min`), volumes whole increments."""
    mechanics, stroke_ml = quantizer.mechanics, quantizer.stroke_ml
    low, high = mechanics.speed_range
    slowest = quantizer.average_ml_per_h(low)
    return Capabilities(
        family=family,
        can_withdraw=False,
        min_rate_ml_per_h=slowest,
        max_rate_ml_per_h=min(
            quantizer.average_ml_per_h(high), stroke_ml * 60 * mechanics.max_strokes_per_min
        ),
        volume_resolution_ml=quantizer.step_ml,
        rate_resolution_ml_per_h=quantizer.average_ml_per_h(low + 1) - slowest,
        accuracy_percent=MODELS[family][2].accuracy_percent,
    )


@dataclass
class CycleBooks:
    """The driver's counter for one leg: increments dispensed since `clear`."""

    full_steps: int
    #: the leg's target, increments (None: until stopped)
    target_steps: int | None = None
    done_steps: int = 0
    running: PumpString | None = None
    #: the pump lost power (error 7): its position says nothing about what went out
    lost: bool = False

    def clear(self) -> None:
        self.done_steps = 0
        self.lost = False

    def delivered_steps(self, reading: tuple[int, bool, bool] | None) -> int:
        """Finished strings plus the running one's share at `reading` (position, valve at
        output, ready); 0 once the pump lost power."""
        if self.lost:
            return 0
        share = 0
        if self.running is not None and reading is not None:
            share = self.running.delivered_steps(*reading)
        return self.done_steps + share

    def finish(self, reading: tuple[int, bool, bool]) -> None:
        """The running string is over (done or terminated): book its share."""
        if self.running is not None:
            self.done_steps += self.running.delivered_steps(*reading)
            self.running = None

    def abort(self, *, power_lost: bool) -> None:
        """The pump stopped with an error: the running string is aborted ("ready" is not
        "done", XC §3.6.2); after a power loss the position no longer tells what went out."""
        if self.running is not None:
            self.running.terminated = True
        if power_lost:
            self.lost = True
            self.running = None

    def refilling(self, ready: bool, valve_at_reservoir: bool) -> bool:
        """Busy with the valve at the reservoir: a refill (or first fill) is under way."""
        return self.running is not None and not ready and valve_at_reservoir

    def left_steps(self) -> int | None:
        if self.target_steps is None:
            return None
        return max(0, self.target_steps - self.done_steps)

    def next_string(self, position: int) -> tuple[int, int, int] | None:
        """(f, n, m) for the next string from `position`, None when the target is reached:
        an empty syringe is first filled with `f` (what the leg needs, up to a full syringe);
        it dispenses `n`, what the syringe holds up to the target, and refills `m`, what the
        leg still needs after that (up to a full syringe)."""
        left = self.left_steps()
        if left == 0:
            return None
        fill = 0
        if position == 0:
            fill = position = self.full_steps if left is None else min(left, self.full_steps)
        n = position if left is None else min(position, left)
        after = None if left is None else left - n
        room = self.full_steps - (position - n)
        m = room if after is None else min(after, room)
        if n == 0 and m == 0:
            return None
        return fill, n, m

    def plan_string(
        self,
        position: int,
        valve_at_output: bool,
        *,
        speed: int,
        refill_speed: int,
        ports: ValvePorts,
        init: str = "",
    ) -> PumpString | None:
        """The next string from `position` (`next_string`, `build_string`), not yet sent;
        None when the leg's target is reached."""
        plan = self.next_string(position)
        if plan is None:
            return None
        fill, n, m = plan
        text = build_string(
            start_steps=fill or position,
            dispense_steps=n,
            refill_steps=m,
            speed=speed,
            refill_speed=refill_speed,
            output=ports.output_command,
            reservoir=ports.reservoir_command,
            fill_steps=fill,
            init=init,
        )
        at_output = valve_at_output and not (fill or init)
        return PumpString(
            text, fill or position, n, m, at_output, initializes=bool(init), fill_steps=fill
        )


@dataclass(frozen=True)
class ValvePorts:
    """Valve commands and `?6` answers of the reservoir and output ports. The default is a
    3-port valve (`I` input = reservoir, `O` output, XC §3.4.3); a distribution valve names
    ports by number (`I3` moves to port 3, `?6` answers `3`)."""

    reservoir_command: str = "I"
    output_command: str = "O"
    reservoir_report: str = "i"
    output_report: str = "o"

    @classmethod
    def distribution(cls, reservoir: int, output: int) -> ValvePorts:
        if reservoir == output or min(reservoir, output) < 1:
            raise ValueError(f"ports must differ and be >= 1, got {reservoir}, {output}")
        return cls(f"I{reservoir}", f"I{output}", str(reservoir), str(output))
