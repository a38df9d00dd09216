"""KD Scientific Legato 100 / 200 emulation: the 11 Elite emulation with the Legato's data.

Its own codec for what differs (Legato 100 user's manual 5617-006 and Legato 200 5617-002,
"Pump Chain Commands"; the KDS Allegro manual's reply grammar for the same firmware; bytes
recorded from a real Legato 100, firmware 3.0.6): a request may start with `@` (no display
update) and puts a non-zero address before the command with no separator (`12irat 3.2 u/m`,
the Elite's `12:` is accepted too). A reply is LF, then each body line `[aa:]text` CR LF,
then the prompt `[aa]<prompt>`, plus XON (0x11) in `poll on` mode; address 0 writes no
address. Quantities have up to 4 decimals (`25.0404 nl/min to 26.0035 ml/min`, `8.6284 ml`).
Errors follow the Allegro grammar: `Argument error: <argument>`, then an indented reason.
Behaviour the sources leave open is marked "Emulation choice".
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import ClassVar

from pumpctl.families.kds_legato import (
    MAX_RATE_REF_ML_PER_MIN,
    MIN_RATE_REF_ML_PER_MIN,
    REFERENCE_DIAMETER_MM,
)
from pumpctl.simulator.devices.harvard_elite import HarvardEliteEmulation
from pumpctl.simulator.devices.harvard_elite_pump import COMMANDS, ERRORS, Pump, PumpError

__all__ = ["LegatoEmulation"]

VERSION_LINES = ("Firmware:      v3.0.6", "Pump address:  {address}", "Serial number: D101754")
XON = "\x11"
POLL_MODES = ("off", "on", "remote")
QUICK_START = {
    "i": "Quick Start - Infuse Only (qs i)",
    "w": "Quick Start - Withdraw Only (qs w)",
    "iw": "Quick Start - Infuse/Withdraw (qs iw)",
    "wi": "Quick Start - Withdraw/Infuse (qs wi)",
}
#: Elite error texts -> (Allegro-style first line, indented reason); Emulation choice for the
#: reasons (the manuals show only `Unknown syringe`); "out of range" in lower case is what
#: python-syringe-pump looks for after a refused target
_ERRORS = {
    "Argument error": ("Argument error: {args}", "   Invalid argument"),
    "Out of range": ("Argument error: {args}", "   Value out of range"),
    "Unknown command": ("Command error: {word}", "   Unknown command"),
    "Command error": ("Command error: {word}", "   Not allowed now"),
}
_AT = re.compile(r"\s*(\d{0,2})@")


class LegatoEmulation(HarvardEliteEmulation):
    """Legato pumps (infuse/withdraw: Legato 110 / 200) on one link."""

    model = "kds-legato"
    commands: ClassVar[tuple[str, ...]] = (
        *COMMANDS,
        "dim",
        "echo",
        "load",
        "nvram",
        "time",
        "version",
    )
    version = "LEGATO 100 3.0.6"
    quantity_decimals = 4
    reference_diameter_mm = Decimal(str(REFERENCE_DIAMETER_MM))
    min_rate_ref_ml_per_min = MIN_RATE_REF_ML_PER_MIN
    max_rate_ref_ml_per_min = MAX_RATE_REF_ML_PER_MIN
    default_diameter_mm = Decimal(str(REFERENCE_DIAMETER_MM))
    default_syringe_ml = Decimal("10")

    def __init__(self, addresses: list[int] | tuple[int, ...] = (0,)) -> None:
        super().__init__(addresses)
        self._poll = "off"  # the factory setting (P33 manual, Harvard sibling firmware)
        self._settings: dict[str, str] = {"dim": "100", "nvram": "on", "echo": "off"}
        self._quick_start = "iw"
        self._time = datetime(2023, 5, 8, 14, 48, 23)
        self._address_changed = False

    # -- framing -------------------------------------------------------------------------------

    def _on_line(self, line: str) -> None:
        line = _AT.sub(r"\1", line, count=1)
        only = list(self._pumps)
        if len(only) == 1 and only[0] and line.strip() and not line.lstrip()[:1].isdigit():
            # L100: over USB a pump with a non-zero address needs no address in the command
            line = f"{only[0]}{line.lstrip()}"
        super()._on_line(line)

    def _reply(self, p: Pump, lines: list[str]) -> bytes:
        """LF, body lines `[aa:]text` CR LF, prompt `[aa]<prompt>` (+ XON in poll on)."""
        head = f"{p.address:02d}" if p.address else ""
        # the recorded `addr 2`: the body still comes from address 0, the prompt from the new one
        prefix = "" if self._address_changed or not p.address else head + ":"
        self._address_changed = False
        body = "".join(f"{prefix}{line}\r\n" for line in lines if line)
        xon = XON if self._poll == "on" else ""
        data = f"\n{body}{head}{p.prompt}{xon}".encode("latin-1")
        # Emulation choice: a garble flips bit 6 of the byte after the LF (body or prompt)
        return self._inject_faults(data, 1)

    def _error_lines(self, error: str, word: str, args: str) -> list[str]:
        first, reason = _ERRORS.get(error, ("{word}: error", "   " + error))
        return [first.format(args=args or word, word=word), reason]

    # -- the Legato's own commands -------------------------------------------------------------

    def _command(self, p: Pump, name: str, args: list[str]) -> list[str]:
        if name == "version":
            return [line.format(address=p.address) for line in VERSION_LINES]
        if name == "poll":
            return self._poll_mode(args)
        if name == "load":
            return self._load(args)
        if name == "time":
            return self._set_time(args)
        if name in ("dim", "nvram", "echo"):
            return self._setting_word(name, args)
        lines = super()._command(p, name, args)
        if name == "address" and args:
            self._address_changed = True
            return [f"Pump address set to {p.address}"]
        return lines

    def _poll_mode(self, args: list[str]) -> list[str]:
        if not args:
            return [self._poll.capitalize()]
        if len(args) != 1 or args[0] not in POLL_MODES:
            raise self._argument_error()
        self._poll = args[0]  # the reply to `poll on` already ends with XON (recorded)
        return [""]

    def _load(self, args: list[str]) -> list[str]:
        if not args:
            return [QUICK_START[self._quick_start]]
        if len(args) != 2 or args[0] != "qs" or args[1] not in QUICK_START:
            raise self._argument_error()  # Emulation choice: methods are not emulated
        self._quick_start = args[1]
        return [""]

    def _set_time(self, args: list[str]) -> list[str]:
        """`time mm/dd/yy hh:mm:ss`; the pump answers in its 12-hour form (recorded)."""
        if args:
            try:
                self._time = datetime.strptime(" ".join(args), "%m/%d/%y %H:%M:%S")
            except ValueError:
                raise self._argument_error() from None
        hour = self._time.hour % 12 or 12
        return [self._time.strftime(f"%m/%d/%y {hour}:%M:%S %p")]

    def _setting_word(self, name: str, args: list[str]) -> list[str]:
        """`dim 0-100`, `nvram none|on|off`, `echo on|off`. Emulation choice: kept, no
        effect (no display to dim, nothing volatile to save, no echo emulated)."""
        if not args:
            value = self._settings[name]
            return [f"{value}%" if name == "dim" else f" {value.upper()}"]
        choices = {"nvram": ("none", "on", "off"), "echo": ("on", "off")}.get(name)
        ok = len(args) == 1 and (
            args[0] in choices
            if choices
            else args[0].isascii() and args[0].isdigit() and int(args[0]) <= 100
        )
        if not ok:
            raise self._argument_error()
        self._settings[name] = args[0]
        return [""]

    @staticmethod
    def _argument_error() -> Exception:
        return PumpError(ERRORS["argument"])
