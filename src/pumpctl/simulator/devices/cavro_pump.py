"""One Cavro-command-set pump in the emulation: executing command strings in simulated time.

Mechanics from the XCalibur operating manual 733085-B: a plunger drive of `steps_per_stroke`
fine increments (`N1`; `N0` positions are eighths of them), a top speed `V` in pulses/s
(`pulses_per_stroke` for a full stroke, §3.5.3), a valve that takes `valve_move_s` per move
(App. E), loops `g`...`G<n>` (§3.5.6), delays `M` and terminate `T` (§3.3.1). The liquid:
the syringe holds liquid and air (its volume is the plunger position times the stroke volume);
dispensing pushes air first (the valve sits on top), aspirating from the reservoir draws liquid
until the bottle is empty, then air. The output line has the shared physics' compliance: with
it occluded the plunger fills the line until the stall pressure, then the plunger overloads
(error 9, §3.6.3). Moves are linear in time and the position is computed from each move's
start, so a long run advanced in small steps ends where one advanced once does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pumpctl.families.cavro import CavroModel
from pumpctl.simulator.physics import DEFAULT_COMPLIANCE_ML_PER_KPA, DEFAULT_STALL_PRESSURE_KPA

__all__ = ["CavroPump", "Token"]

Token = tuple[str, tuple[int, ...]]
#: a valve's positions on a 3-port (I/O/B) valve, XC §3.4.3
VALVE_3PORT = {"I": "i", "O": "o", "B": "b", "E": "e"}
MOVES = frozenset("AaPpDd")
VALVES = frozenset("IOBE")
INITS = frozenset("ZYWwz")
#: init speed, pulses/s (XC §3.4.2: default 500)
INIT_SPEED = 500
STALL_ML = DEFAULT_STALL_PRESSURE_KPA * DEFAULT_COMPLIANCE_ML_PER_KPA


@dataclass
class _Move:
    """A timed step of a program: a plunger move, a valve move, a delay or an init."""

    kind: str  # "plunger", "valve", "delay", "init"
    start_s: float
    duration_s: float
    from_steps: float = 0.0
    to_steps: float = 0.0
    valve: str = ""

    def position(self, now_s: float) -> float:
        if self.duration_s <= 0:
            return self.to_steps
        f = min(1.0, max(0.0, (now_s - self.start_s) / self.duration_s))
        return self.from_steps + (self.to_steps - self.from_steps) * f


@dataclass
class CavroPump:
    """The pump's state machine: settings, valve, plunger, liquid, and the running program."""

    mechanics: CavroModel
    stroke_ml: float = 1.0
    reservoir_ml: float = 500.0
    #: 0: a 3-port I/O/B valve; N: an N-port distribution valve
    valve_ports: int = 0
    position: float = 0.0  # fine increments, physical
    valve: str = "i"
    initialized: bool = False
    error: int = 7
    mode: int = 0
    speed: int = 1400  # V (XC default, S11)
    settings: dict[str, int] = field(
        default_factory=lambda: {"v": 900, "c": 900, "L": 14, "k": 0, "K": 0, "S": 11}
    )
    liquid_ml: float = 0.0
    air_ml: float = 0.0
    delivered_ml: float = 0.0  # net liquid pushed out of the output port
    line_ml: float = 0.0  # stored in an occluded output line
    occluded: bool = False
    counters: dict[str, int] = field(default_factory=lambda: {"init": 0, "plunger": 0, "valve": 0})
    program: list[Token] = field(default_factory=list)
    buffer: list[Token] = field(default_factory=list)
    last_program: list[Token] = field(default_factory=list)
    alarm: str | None = "reset"
    position_known: bool = True
    _pc: int = 0
    _loops: list[tuple[int, int]] = field(default_factory=list)  # (start pc, passes left)
    _move: _Move | None = None
    _halted: bool = False

    # -- derived ---------------------------------------------------------------------------

    @property
    def step_ml(self) -> float:
        return self.stroke_ml / self.mechanics.steps_per_stroke

    @property
    def scale(self) -> int:
        """Fine increments per reported increment (N0: 8, N1: 1)."""
        return (
            self.mechanics.steps_per_stroke // self.mechanics.standard_steps if not self.mode else 1
        )

    @property
    def busy(self) -> bool:
        return bool(self.program) and not self._halted

    def steps_per_s(self, speed: int) -> float:
        return speed * self.mechanics.steps_per_stroke / self.mechanics.pulses_per_stroke

    def moving_ml_per_h(self) -> float:
        m = self._move
        if m is None or m.kind not in ("plunger", "init") or m.duration_s <= 0:
            return 0.0
        return abs(m.to_steps - m.from_steps) * self.step_ml / m.duration_s * 3600

    def reported_position(self) -> int:
        if not self.position_known:
            return 0
        m = self._move
        down = m is not None and m.to_steps < m.from_steps  # dispensing: never report ahead
        p = self.position / self.scale
        return math.ceil(p - 1e-9) if down else math.floor(p + 1e-9)

    # -- running programs ------------------------------------------------------------------

    def run(self, tokens: list[Token], now_s: float) -> None:
        self.program, self._pc, self._loops, self._halted = list(tokens), 0, [], False
        self.last_program = list(tokens)
        self.alarm = None
        self._next(now_s)

    def resume(self, now_s: float) -> None:
        """`R` while halted (`H`) goes on."""
        if self._halted:
            self._halted = False
            self._next(now_s)

    def terminate(self, now_s: float) -> None:
        """`T`: plunger moves, delays and loops stop where they are; a valve move finishes."""
        self.advance_to(now_s)
        m = self._move
        if m is not None and m.kind == "valve":
            self.valve = m.valve  # Emulation choice: it ends at once
        elif m is not None and m.kind == "plunger":
            # the increment under way is finished: the plunger stops on a whole one
            x = self.position / self.scale
            down = m.to_steps < m.from_steps
            self._flow(m, (math.floor(x + 1e-9) if down else math.ceil(x - 1e-9)) * self.scale)
        self._abort()

    def _abort(self) -> None:
        self.program, self._pc, self._loops, self._move, self._halted = [], 0, [], None, False

    def advance_to(self, now_s: float) -> None:
        """Run the program up to `now_s` (moves end exactly at their planned time)."""
        while self._move is not None:
            m = self._move
            end = m.start_s + m.duration_s
            t = min(now_s, end)
            new = m.to_steps if t >= end else m.position(t)
            if m.kind in ("plunger", "init") and not self._flow(m, new):
                return  # stalled
            if t < end:
                return
            self._finish(m)
            self._next(end)

    def _finish(self, m: _Move) -> None:
        self._move = None
        if m.kind == "valve":
            self.valve = m.valve
        elif m.kind == "init":
            self.initialized, self.error, self.position_known = True, 0, True
            self.position = 0.0

    def _next(self, now_s: float) -> None:
        """Start the next timed step (settings on the way take effect at once)."""
        while self.program and self._move is None and not self._halted:
            if self._pc >= len(self.program):
                self._abort()
                return
            letter, args = self.program[self._pc]
            self._pc += 1
            if letter == "G":
                self._loop_end(args[0] if args else 0)
            elif letter == "g":
                self._loops.append((self._pc, -1))
            elif letter == "H":
                self._halted = True
            else:
                self._move = self._begin(letter, args, now_s)

    def _loop_end(self, count: int) -> None:
        if not self._loops:
            return
        start, left = self._loops[-1]
        left = count - 1 if left < 0 else left - 1
        if count == 0 or left > 0:  # G0: until `T` (XC §3.5.6)
            self._loops[-1] = (start, left)
            self._pc = start
        else:
            self._loops.pop()

    def _begin(self, letter: str, args: tuple[int, ...], now_s: float) -> _Move | None:
        n = args[0] if args else 0
        if letter in MOVES:
            target = self._target(letter, n)
            if self.valve == "b":
                self._fail(11)
                return None
            self.counters["plunger"] += 1
            distance = abs(target - self.position)
            return _Move("plunger", now_s, distance / self.steps_per_s(self.speed),
                         self.position, target)  # fmt: skip
        if letter in VALVES:
            dest = self.valve_for(letter, n)
            if dest == self.valve:
                return None
            self.counters["valve"] += 1
            return _Move("valve", now_s, self._valve_s(dest), valve=dest)
        if letter == "M":
            return _Move("delay", now_s, n / 1000.0)
        if letter in INITS:
            return self._init(letter, now_s)
        self._set(letter, n)
        return None

    def _target(self, letter: str, n: int) -> float:
        steps = n * self.scale
        if letter in "Aa":
            return float(steps)
        return self.position + steps if letter in "Pp" else self.position - steps

    def valve_for(self, letter: str, port: int) -> str:
        if self.valve_ports:
            return str(port) if port else self.valve
        return VALVE_3PORT[letter]

    def _valve_s(self, dest: str) -> float:
        per = self.mechanics.valve_move_s
        if not self.valve_ports or not self.valve.isdigit():
            return per
        d = abs(int(dest) - int(self.valve)) % self.valve_ports
        return per * min(d, self.valve_ports - d)

    def _init(self, letter: str, now_s: float) -> _Move | None:
        """Emulation choice: `Z`/`Y` turn the valve to the reservoir first, so homing returns
        the syringe's contents there; the manual does not say which port (unverified)."""
        self.counters["init"] += 1
        self.error = 0
        if letter == "z":
            self.position, self.initialized, self.position_known = 0.0, True, True
            return None
        if letter in "ZY":
            self.valve = "1" if self.valve_ports else "i"
        if letter == "w":
            self.initialized = True
            return _Move("valve", now_s, self.mechanics.valve_move_s, valve=self.valve)
        duration = 2 * self.mechanics.valve_move_s + self.position / self.steps_per_s(INIT_SPEED)
        return _Move("init", now_s, duration, self.position, 0.0)

    def _set(self, letter: str, n: int) -> None:
        if letter == "V":
            self.speed = n
        elif letter == "N":
            self.mode = n
        elif letter == "S":
            self.speed = SPEED_CODES.get(n, self.speed)
            self.settings["S"] = n
        else:
            self.settings[letter] = n

    def set_speed_now(self, speed: int, now_s: float) -> None:
        """`V` while the plunger moves (XC §3.5.3: on the fly): the move goes on at it."""
        self.advance_to(now_s)
        self.speed = speed
        m = self._move
        if m is not None and m.kind == "plunger":
            left = abs(m.to_steps - self.position)
            self._move = _Move("plunger", now_s, left / self.steps_per_s(speed),
                               self.position, m.to_steps)  # fmt: skip

    def _fail(self, code: int) -> None:
        self.error = code
        if code in (9, 10):
            self.initialized = False
        self._abort()

    # -- liquid ------------------------------------------------------------------------------

    def _flow(self, m: _Move, new: float) -> bool:
        """Move the plunger to `new`, moving liquid and air; False on a stall."""
        delta_ml = (self.position - new) * self.step_ml  # > 0: pushed out of the syringe
        port = self.valve
        if delta_ml > 0 and self.is_output(port):
            room = STALL_ML - self.line_ml
            if self.occluded and delta_ml >= room:
                new = self.position - room / self.step_ml
                self._push(room, port)
                self.position = new
                self.alarm = "stall"
                self._fail(9)
                return False
        if delta_ml > 0:
            self._push(delta_ml, port)
        elif delta_ml < 0:
            self._pull(-delta_ml, port)
        self.position = new
        return True

    def is_output(self, port: str) -> bool:
        """Emulation choice (the rig's plumbing): the output line is on `o`, or on port 2 of
        a distribution valve; the reservoir on `i` or port 1."""
        return port == ("2" if self.valve_ports else "o")

    def is_reservoir(self, port: str) -> bool:
        return port == ("1" if self.valve_ports else "i")

    def _push(self, ml: float, port: str) -> None:
        air = min(self.air_ml, ml)
        self.air_ml -= air
        liquid = min(self.liquid_ml, ml - air)
        self.liquid_ml -= liquid
        if self.is_output(port):
            self.delivered_ml += liquid
            if self.occluded:
                self.line_ml += ml
        elif self.is_reservoir(port):
            self.reservoir_ml += liquid

    def _pull(self, ml: float, port: str) -> None:
        if self.is_output(port):
            self.delivered_ml -= ml  # draws back from the line
            self.liquid_ml += ml
            if self.occluded:
                self.line_ml = max(0.0, self.line_ml - ml)
            return
        liquid = min(self.reservoir_ml, ml) if self.is_reservoir(port) else 0.0
        self.reservoir_ml -= liquid
        self.liquid_ml += liquid
        self.air_ml += ml - liquid

    def set_occluded(self, on: bool, now_s: float) -> None:
        self.advance_to(now_s)
        self.occluded = on
        if not on:
            self.line_ml = 0.0  # the bolus goes on downstream


#: XC §3.5.3 speed codes S0..S40 -> V, pulses/s
SPEED_CODES = dict(enumerate((
    6000, 5600, 5000, 4400, 3800, 3200, 2600, 2200, 2000, 1800, 1600, 1400, 1200, 1000, 800,
    600, 400, 200, 190, 180, 170, 160, 150, 140, 130, 120, 110, 100, 90, 80, 70, 60, 50, 40, 30,
    20, 18, 16, 14, 12, 10,
)))  # fmt: skip
