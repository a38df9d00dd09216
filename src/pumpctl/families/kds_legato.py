"""KD Scientific Legato 100 / 110 / 200 series: a profile of the Harvard 11 Elite text family.

The Legato firmware speaks the 11 Elite's command language (both are Harvard Bioscience
pumps: `irate`, `svolume`, `tvolume`, `irate lim`, ...) and takes numbers the same way, so the
family reuses the Elite's quantizer (6 significant digits, rounded down). What differs is data:
the reply layout (body lines first, the prompt last, no address at address 0), the poll mode's
XON, `version` instead of `ver`, and the motor's range (Legato 100 user's manual 5617-006
"Pump Chain Commands"; the recorded bytes of a Legato 100, firmware 3.0.6, that
python-syringe-pump's tests replay).
"""

from __future__ import annotations

from decimal import Decimal

from pumpctl.families.harvard_elite import NUMBER, EliteQuantizer
from pumpctl.families.spec import Addresses, FamilySpec, LineSettings, SyringeMotor

__all__ = ["REFERENCE_DIAMETER_MM", "SPEC"]

#: the recorded pump's `irate lim` with a 7.262 mm syringe: 25.0404 nl/min to 26.0035 ml/min
REFERENCE_DIAMETER_MM = 7.262
MIN_RATE_REF_ML_PER_MIN = Decimal("0.0000250404")
MAX_RATE_REF_ML_PER_MIN = Decimal("26.0035")

SPEC = FamilySpec(
    model="kds-legato",
    name="Legato",
    title="KD Scientific Legato 100 / 200 (text protocol, Elite profile)",
    pumps=("Legato 100", "Legato 101", "Legato 110", "Legato 111", "Legato 200", "Legato 210"),
    protocol="text protocol (11 Elite profile, prompt last, XON)",
    container="syringe",
    # the recorded pump and the host software that drove it run 115200 8N1 (L200 p.58: above
    # 38400 recommended on a chain)
    line=LineSettings(baud=115200),
    baud_rates=(9600, 19200, 38400, 57600, 115200),
    addresses=Addresses(first=0, last=99, default=0, reply_digits=2),
    numbers={"volume": NUMBER, "rate": NUMBER, "diameter": NUMBER},
    rate_units=("ml/hr", "ul/hr", "ml/min", "ul/min", "nl/min"),
    target_volume_unit="ml",
    reply_widths={"address": 2},
    motor=SyringeMotor(
        min_rate_ml_per_h=float(MIN_RATE_REF_ML_PER_MIN * 60),
        min_rate_diameter_mm=REFERENCE_DIAMETER_MM,
        max_rate_ml_per_h=float(MAX_RATE_REF_ML_PER_MIN * 60),
        max_rate_diameter_mm=REFERENCE_DIAMETER_MM,
        diameter_mm=(0.1, 33.0),
    ),
    # KD Scientific catalogue: accuracy within 0.35 % (not verified on hardware)
    accuracy_percent=0.35,
    demo_program="acute-pain.yaml",
    driver="pumpctl.drivers.kds_legato:LegatoDriver",
    emulation="pumpctl.simulator.devices.kds_legato:LegatoEmulation",
    make_quantizer=EliteQuantizer.for_container,
)
