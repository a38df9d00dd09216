"""flowchem 1.1.6's `Elite11` class (no web API) drives `pumpctl simulate harvard-elite`.

No adaptor: flowchem is asyncio over aioserial, 115200 baud. Its read timeout (0.1 s by default,
a real pump answers in milliseconds) is raised to 0.25 s through flowchem's own constructor
argument: on a loaded 2-core CI machine the simulator process can be descheduled for longer than
0.1 s, and flowchem then reads an empty reply. Usage: harness_flowchem.py PTY
"""

from __future__ import annotations

import asyncio
import sys

from _steps import astep
from flowchem.devices.harvardapparatus._pumpio import HarvardApparatusPumpIO
from flowchem.devices.harvardapparatus.elite11 import Elite11
from loguru import logger


async def main(path: str) -> None:
    logger.remove()  # flowchem logs every exchange; the test reads stdout as JSON lines
    io = HarvardApparatusPumpIO(path, timeout=0.25)
    address = await astep("autodiscover", io.autodiscover_address)
    pump = Elite11(io, syringe_diameter="14.567 mm", syringe_volume="10 ml", address=address)
    await astep("initialize", pump.initialize)  # stp, diameter, svolume, FORCE, VER, cvolume...
    await astep("set_flow_rate", pump.set_flow_rate, "3 ml/min")  # irate lim, then irate
    await astep("set_target_volume", pump.set_target_volume, "0.05 ml")
    await astep("infuse", pump.infuse)
    await astep("current_flow_rate", pump.get_current_flow_rate)  # crate while infusing
    await astep("wait_until_idle", pump.wait_until_idle)
    await astep("set_withdrawing_flow_rate", pump.set_withdrawing_flow_rate, "1.5 ml/min")
    await astep("clear_target", pump.set_target_volume, "0 ml")
    await astep("withdraw", pump.withdraw)
    await astep("current_withdraw_rate", pump.get_current_flow_rate)  # crate while withdrawing
    await astep("stop", pump.stop)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
