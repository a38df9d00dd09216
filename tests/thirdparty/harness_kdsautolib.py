"""kdsautolib 0.0.4 (Legato 110 commands), unchanged, drives `pumpctl simulate kds-legato`
(usage: harness_kdsautolib.py PTY). It writes commands and never reads a reply: the pump must
take them anyway (the test judges by the simulator's state file).
"""

from __future__ import annotations

import sys

from _steps import step
from KDSautolib.legato110 import Legato110


def main(path: str) -> None:
    pump = step("connect", Legato110, path, 115200)
    step("syringe", pump.set_syringe_size, 14.57, 10, "ml")  # diameter, svolume
    step("rate", pump.set_infuse_rate, "ml/min", 3)  # irate 3 ml/min
    step("clear", pump.clear_volume, "infuse")  # civolume
    step("target", pump.set_target_volume, 50, "ul")  # tvolume 50 ul
    step("run", pump.run_motors, "infuse")  # irun
    step("stop", pump.stop)  # stp


if __name__ == "__main__":
    main(sys.argv[1])
