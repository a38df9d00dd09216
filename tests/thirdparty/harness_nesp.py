"""nesp-lib 2.0.0, unchanged, drives `pumpctl simulate ne1000` (usage: harness_nesp.py PTY).

Its port has no read timeout and defaults to 9600 baud; the NE-1000 line is 19200.
"""

from __future__ import annotations

import sys

import nesp_lib
from _steps import step


def main(path: str) -> None:
    with nesp_lib.Port(path, baud_rate=19200) as port:
        # its first SAF0 packet meets the power-up A?R alarm and is sent again
        pump = step("connect", nesp_lib.Pump, port)

        def configure() -> dict[str, object]:
            pump.syringe_diameter_mm = 26.59
            pump.pumping_direction = nesp_lib.PumpingDirection.INFUSE
            pump.pumping_volume_ml = 0.5
            pump.pumping_rate_ml_per_min = 25.0  # 1500 mL/h: the target in 1.2 s
            pump.volume_infused_clear()
            pump.volume_withdrawn_clear()
            return {
                "model": pump.model_number,
                "firmware": list(pump.firmware_version),
                "diameter_mm": pump.syringe_diameter_mm,
                "volume_ml": pump.pumping_volume_ml,
                "rate_ml_per_min": pump.pumping_rate_ml_per_min,
            }

        step("configure", configure)
        step("run", lambda: (pump.run(wait_while_running=False), pump.status.name)[1])
        step("pause", lambda: (pump.stop(wait_while_running=False), pump.status.name)[1])
        step("paused_volume", lambda: pump.volume_infused_ml)
        step("run_to_target", lambda: (pump.run(), pump.volume_infused_ml)[1])

        def safe_mode_round_trip() -> list[object]:
            pump.safe_mode_timeout_s = 20  # CRC-framed packets both ways
            seen = [pump.safe_mode_timeout_s, pump.status.name, pump.volume_infused_ml]
            pump.safe_mode_timeout_s = 0
            return [*seen, pump.safe_mode_timeout_s]

        step("safe_mode", safe_mode_round_trip)


if __name__ == "__main__":
    main(sys.argv[1])
