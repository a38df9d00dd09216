"""python-syringe-pump 0.2.1 (Legato 100 client built from a real pump's capture), unchanged,
drives `pumpctl simulate kds-legato` (usage: harness_psp_legato.py PTY).

asyncio over aioserial at 115200; it turns `poll on` and reads every reply up to the XON.
Quantities come back as quantiphy numbers: the steps report them as floats (SI base units).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import Any

import aioserial
from _steps import astep
from quantiphy import Quantity
from syringe_pump import Pump


async def main(path: str) -> None:
    serial = aioserial.AioSerial(port=path, baudrate=115200, timeout=2)
    pump = await astep("connect", Pump.from_serial, serial)  # poll on, nvram, load, time
    await astep("version", lambda: _dump(pump.version()))
    await astep("limits", lambda: _floats(pump.infusion_rate.get_limits()))
    await astep("diameter", pump.syringe.set_diameter, 14.57)
    await astep("syringe_volume", pump.syringe.set_volume, Quantity("10 ml"))
    await astep("rate", pump.infusion_rate.set, Quantity("3 ml/min"))
    await astep("read_rate", lambda: _float(pump.infusion_rate.get()))
    await astep("clear", pump.infusion_volume.clear)
    await astep("target", pump.target_volume.set, Quantity("50 ul"))
    await astep("read_target", lambda: _float(pump.target_volume.get()))
    await astep("run", pump.run, "infuse")
    await astep("infused", lambda: _float(pump.infusion_volume.get()))
    await astep("stop", pump.stop)
    serial.close()


async def _float(value: Awaitable[Any]) -> float:
    return float(await value)


async def _floats(value: Awaitable[Any]) -> list[float]:
    return [float(q) for q in await value]


async def _dump(value: Awaitable[Any]) -> dict[str, Any]:
    dumped: dict[str, Any] = (await value).model_dump()
    return dumped


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
