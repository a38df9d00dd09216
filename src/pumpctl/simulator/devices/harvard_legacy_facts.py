"""Harvard legacy pump chain, model facts and the emulation's number codec (data and pure
functions, no state): what `harvard_legacy.HarvardLegacyEmulation` answers with and accepts.

Sources: the project's protocol notes; Harvard Apparatus *Model '22' Syringe Pump Series User's
Manual* (publication 5385-003-REV-A), Appendix C "Interface Command Reference" (number rounding,
units). The volume unit rule is data of the family spec (`pumpctl.families.harvard_legacy`).
Never shared with the driver.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

# --------------------------------------------------------------------------- model facts (data)

VERSION_PUMP11 = "PUMP11V2.0"  # 10 characters: the VER reply is 17 bytes
# Emulation choice: 10 characters too, so a PHD2000 at addresses 0-9 also answers VER in 17 bytes.
VERSION_PHD2000 = "PHD2000V20"
MAX_LINE_BYTES = 256  # a line longer than this is junk; dropped
MAX_NUMBER_CHARS = 5  # "numbers up to 5 characters" (notes); longer ones are rounded
DIAMETER_RANGE_MM = {False: (Decimal("0.1"), Decimal("35")), True: (Decimal("0.1"), Decimal("50"))}
# Pump 11 keeps 2 decimals of a diameter (more are truncated); the PHD2000 keeps 4.
DIAMETER_DECIMALS = {False: 2, True: 4}
# Rate limits follow plunger speed, scaled by bore area from one reference syringe each
# (approximations of the Pump 11 Plus literature: ~55 mL/min with a 60 mL BD syringe, 0.1 uL/h
# with a 1 mL BD syringe).
MAX_RATE_REF = (Decimal("26.59"), Decimal("3300"))  # (mm, mL/h)
MIN_RATE_REF = (Decimal("4.699"), Decimal("0.0001"))  # (mm, mL/h)
RATE_COMMANDS_ML_PER_H = {
    "ULM": Decimal("0.06"),
    "MLM": Decimal("60"),
    "ULH": Decimal("0.001"),
    "MLH": Decimal("1"),
}
RATE_TEXT = {  # RAT query units: Pump 11 (` ul/m`, per the notes); PHD2000 as its host software sees
    False: {"ULM": "ul/m", "MLM": "ml/m", "ULH": "ul/h", "MLH": "ml/h"},
    True: {"ULM": "ul/mn", "MLM": "ml/mn", "ULH": "ul/hr", "MLH": "ml/hr"},
}
PHD_RATE_UNITS = {"UM": "ULM", "MM": "MLM", "UH": "ULH", "MH": "MLH"}  # `RAT v UM|MM|UH|MH`
# BD plastic syringes (inner diameter mm -> capacity mL): a diameter picks the loaded syringe.
SYRINGES = (
    (Decimal("4.699"), 1.0),
    (Decimal("8.585"), 3.0),
    (Decimal("11.99"), 5.0),
    (Decimal("14.43"), 10.0),
    (Decimal("19.05"), 20.0),
    (Decimal("21.59"), 30.0),
    (Decimal("26.59"), 60.0),
)
DEFAULT_DIAMETER_MM = Decimal("26.59")
DEFAULT_TRAVEL_MM = 60.0  # capacity of an unlisted bore = area x this travel
PUMP11_COMMANDS = frozenset(
    {"MMD", "ULM", "MLM", "ULH", "MLH", "RAT", "DIA", "MLT", "TAR", "VOL", "CLV", "CLT"}
    | {"RUN", "REV", "STP", "VER"}
)
PHD_COMMANDS = PUMP11_COMMANDS | {
    "DIR", "MOD", "RFR", "TGT", "DEL", "CLD", "AF", "PAR", "IN", "OUT", "SAV",
}  # fmt: skip
TWO_LETTER = frozenset({"AF", "IN"})
QUERIES = frozenset({"VOL", "DEL", "TAR", "VER", "DIA", "RAT", "TGT", "DIR", "MOD", "RFR"})
QUERY_ONLY = frozenset({"VOL", "DEL", "TAR", "VER"})
NO_ARGUMENT = frozenset({"RUN", "REV", "STP", "CLV", "CLT", "CLD", "SAV", "AF", "PAR"})
_DELETE = bytes(range(33)) + b"\x7f"  # spaces and control characters are ignored


def _to_decimal(value: float) -> Decimal:
    d = Decimal(round(value, 9)).quantize(Decimal("1e-9"))
    return d if d > 0 else Decimal(0)


def _fit(value: Decimal, width: int, decimals: int) -> str:
    """As many decimals (up to `decimals`) as fit in `width`, truncated, right-justified."""
    for d in range(decimals, 0, -1):
        text = format(value.quantize(Decimal(1).scaleb(-d), rounding=ROUND_DOWN), "f")
        if len(text) <= width:
            return text.rjust(width)
    text = format(value.quantize(Decimal(1), rounding=ROUND_DOWN), "f") + "."
    return text.rjust(width) if len(text) <= width else "9" * (width - 1) + "."


def format_field(value: Decimal | float) -> str:
    """DIA/VOL/TAR number: 8 characters, right-justified, 4 decimals when they fit (truncated).

    `10 -> " 10.0000"`, `4.699 -> "  4.6990"`, `1234.56789 -> "1234.567"`.
    """
    return _fit(value if isinstance(value, Decimal) else _to_decimal(value), 8, 4)


def format_rate(value: Decimal) -> str:
    """RAT number: 6 characters, 5 significant digits (`1.5 -> "1.5000"`, `12345 -> "12345."`)."""
    return _fit(value, 6, 4)


_ASCII_DIGITS = frozenset("0123456789")


def parse_number(text: str) -> Decimal | None:
    """ASCII digits with at most one point (`5`, `.5`, `14.43`, `12.`); None if not a number at
    all. A superscript or other non-ASCII digit is no digit to the pump (`?`).

    Numbers of more than `MAX_NUMBER_CHARS` are rounded as the Model 22 manual says
    (`round_received`); shorter ones are taken as sent, as the protocol notes say.
    """
    if not text or text == "." or text.count(".") > 1:
        return None
    if not set(text.replace(".", "")) <= _ASCII_DIGITS:
        return None
    value = Decimal(text if text[0] != "." else "0" + text)
    return round_received(value) if len(text) > MAX_NUMBER_CHARS else value


def round_received(value: Decimal) -> Decimal:
    """Model 22 manual, MLT: "Any number of digits to the right of the decimal point may be
    transmitted. The number received will be rounded to four significant digits if the leading
    digit is 1, or three significant digits if the leading digit is 2 to 9." (12.345 -> 12.35,
    2.3456 -> 2.35, 0.012345 -> 0.01235). Half up: the manual does not say which way a 5 goes."""
    if value == 0:
        return Decimal(0)
    lead = value.scaleb(-value.adjusted()).to_integral_value(rounding=ROUND_DOWN)
    significant = 4 if lead == 1 else 3
    quantum = Decimal(1).scaleb(value.adjusted() - significant + 1)
    return value.quantize(quantum, rounding=ROUND_HALF_UP).normalize()


def syringe_capacity_ml(diameter_mm: Decimal) -> float:
    for bore, capacity in SYRINGES:
        if abs(bore - diameter_mm) <= Decimal("0.3"):
            return capacity
    return float(diameter_mm) ** 2 * 3.141592653589793 / 4.0 * DEFAULT_TRAVEL_MM / 1000.0


def rate_limits_ml_per_h(diameter_mm: Decimal) -> tuple[Decimal, Decimal]:
    area = diameter_mm * diameter_mm
    lo = MIN_RATE_REF[1] * area / (MIN_RATE_REF[0] * MIN_RATE_REF[0])
    hi = MAX_RATE_REF[1] * area / (MAX_RATE_REF[0] * MAX_RATE_REF[0])
    return lo, hi
