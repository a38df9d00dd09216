"""Cavro command-set emulation: the command strings' language. Tokens (a letter and up to three
numbers), the letters each kind of command uses, operand ranges (XC App. G), and the error a
pump refuses a string with at once, before it runs (XC §3.6.3: invalid command 2, operand 3,
not initialized 7, overloaded 9, bypass 11, busy 15).

Pure functions of a string and one pump's state, apart from the link (`cavro`: framing,
addresses, dispatch, reports) and from the pump that runs what they accept (`cavro_pump`).
"""

from __future__ import annotations

from pumpctl.simulator.devices.cavro_pump import INITS, MOVES, VALVES, CavroPump, Token

__all__ = ["CONTROL", "PROGRAM", "RANGES", "REPORTS", "immediate_error", "tokenize"]

PROGRAM = frozenset("ZYWwzkKNUIOBEAaPpDdvVScCLMgGHJ^")
REPORTS = frozenset("?QF&#%*")
CONTROL = frozenset("RXT")
_LETTERS = PROGRAM | REPORTS | CONTROL
#: operand ranges that do not depend on the mode or the model (XC App. G)
RANGES = {
    "v": (50, 1000), "c": (50, 2700), "S": (0, 40), "L": (1, 20), "M": (0, 30000),
    "G": (0, 30000), "J": (0, 7), "H": (0, 2), "U": (0, 99), "^": (0, 255), "C": (0, 25),
}  # fmt: skip


def tokenize(text: str) -> list[Token] | None:
    """`Z0,1,2R` -> [("Z", (0, 1, 2)), ("R", ())]; None on an unknown command (error 2).
    Pure, so kept per distinct string (a host polls with the same few for days)."""
    tokens = _TOKENIZED.get(text)
    if tokens is None:
        tokens = _tokenize(text)
        if len(_TOKENIZED) < _MAX_TOKENIZED:
            _TOKENIZED[text] = tokens
    return None if tokens is None else list(tokens)  # a copy: callers may keep or change it


_TOKENIZED: dict[str, tuple[Token, ...] | None] = {}
_MAX_TOKENIZED = 1024


def _tokenize(text: str) -> tuple[Token, ...] | None:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        letter = text[i]
        if letter not in _LETTERS:
            return None
        j = i + 1
        while j < len(text) and ((text[j].isdigit() and text[j].isascii()) or text[j] == ","):
            j += 1
        parts = text[i + 1 : j].split(",") if j > i + 1 else []
        if any(not p for p in parts) or len(parts) > 3:
            return None
        tokens.append((letter, tuple(int(p) for p in parts)))
        i = j
    return tuple(tokens)


def immediate_error(p: CavroPump, tokens: list[Token]) -> int:
    """The error pump `p` refuses a tokenized string with at once (0: accepted), XC §3.6.3."""
    program = [t for t in tokens if t[0] not in CONTROL]
    if p.busy:
        on_the_fly = all(t[0] == "V" and t[1] and 5 <= t[1][0] <= 1024 for t in program)
        return 0 if on_the_fly else 15
    for letter, args in program:
        limits = RANGES.get(letter)
        low, high = p.mechanics.speed_range if letter == "V" else limits or (0, 1 << 30)
        if args and not low <= args[0] <= high:
            return 3
        if letter == "N" and args and args[0] > 1:
            return 3
    return _walk(p, program)


def _walk(p: CavroPump, program: list[Token]) -> int:
    """Walk the string's moves (loops once) for 7, 9, 11 and out-of-range positions (3)."""
    initialized, pos, mode, valve = p.initialized, p.position, p.mode, p.valve
    full = p.mechanics.steps_per_stroke
    ratio = full // p.mechanics.standard_steps
    for letter, args in program:
        n = args[0] if args else 0
        if letter in INITS:
            initialized, pos = True, 0.0
        elif letter == "N":
            mode = n
        elif letter in VALVES:
            if not initialized:
                return p.error if p.error in (9, 10) else 7
            ports = p.valve_ports
            if letter == "E" and not ports:
                return 2  # a 3-port valve has no extra port (XC p.3-52: `E2000R`)
            if (ports and not 1 <= n <= ports) or (not ports and n):
                return 3
            valve = p.valve_for(letter, n)
        elif letter in MOVES:
            if not initialized:
                return p.error if p.error in (9, 10) else 7
            if valve == "b":
                return 11
            steps = n * (1 if mode else ratio)
            pos = steps if letter in "Aa" else pos + steps if letter in "Pp" else pos - steps
            if not 0 <= pos <= full + 1e-9:
                return 3
    return 0
