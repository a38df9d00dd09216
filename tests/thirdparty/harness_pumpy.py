"""pumpy 1.1.3 drives `pumpctl simulate harvard-legacy --address 0 --phd-address 1`.

pumpy is Python 2 code: it writes `str` and compares what it reads with `str`. The only adaptor
is `Chain3`, a `pumpy.Chain` (itself a `serial.Serial`) that encodes on write and decodes on read
(latin-1: one byte is one character, so pumpy's byte counts and slices are unchanged). None of
pumpy's logic is touched. Usage: harness_pumpy.py PTY
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import pumpy
from _steps import step


class Chain3(pumpy.Chain):  # type: ignore[misc]
    def write(self, data: Any) -> Any:
        return super().write(data.encode("latin-1") if isinstance(data, str) else data)

    def read(self, size: int = 1) -> str:
        return str(super().read(size).decode("latin-1"))


def since(start: list[float], fn: Callable[[], Any]) -> float:
    """Wall seconds from `start[0]` (before RUN was sent) until `fn` returned: pumpy's
    `waituntiltarget` must not return before the pump can have reached its target."""
    fn()
    return time.monotonic() - start[0]


def started(start: list[float], fn: Callable[[], Any]) -> Any:
    start[:] = [time.monotonic()]
    return fn()


def main(path: str) -> None:
    chain = Chain3(path)  # 9600 baud, 8N2, 2 s read timeout (pumpy's settings)
    try:
        p11 = step("pump11", pumpy.Pump, chain, 0, name="Pump 11")
        step("pump11_diameter", p11.setdiameter, 10)  # README: a 10 mm syringe, volumes in µL
        step("pump11_rate", p11.setflowrate, 3000)  # µL/min
        step("pump11_long_target", p11.settargetvolume, 12.345)  # 6 characters: rounded
        step("pump11_target", p11.settargetvolume, 50)  # µL
        t0: list[float] = []
        step("pump11_infuse", started, t0, p11.infuse)
        step("pump11_wait", since, t0, p11.waituntiltarget)
        step("pump11_stop", p11.stop)

        phd = step("phd", pumpy.PHD2000, chain, 1, name="PHD2000")
        step("phd_diameter", phd.setdiameter, 14.43)
        step("phd_rate", phd.setflowrate, 3000)  # µL/min
        step("phd_target", phd.settargetvolume, 50)  # pumpy sends mL: MLT0.05
        step("phd_infuse", started, t0, phd.infuse)
        step("phd_wait", since, t0, phd.waituntiltarget)
    finally:
        chain.close()


if __name__ == "__main__":
    main(sys.argv[1])
