"""pylabrobot 0.2.2's `MasterflexBackend` drives `pumpctl simulate masterflex-ls --address 2`.

No adaptor (installed as `pylabrobot[serial]`). pylabrobot hard-codes pump number 02 and never
reads a reply (`send_command` returns `self.io.read()` un-awaited): the test judges by what the
drive saw (the simulator's ground truth). Usage: harness_pylabrobot.py PTY
"""

from __future__ import annotations

import asyncio
import sys
import warnings

from _steps import astep
from pylabrobot.pumps import Pump
from pylabrobot.pumps.cole_parmer.masterflex_backend import MasterflexBackend


async def frontend_call(pump: Pump) -> None:
    """`Pump.run_continuously` calls the backend without await: nothing is ever sent."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "coroutine ... was never awaited"
        await pump.run_continuously(speed=120)


async def main(path: str) -> None:
    backend = MasterflexBackend(com_port=path)  # 4800 baud, 7O1
    await astep("setup", backend.setup)  # ENQ, then ENQ P02 CR
    await astep("frontend_run_continuously", frontend_call, Pump(backend=backend))
    await astep("run_continuously_cw", backend.run_continuously, 120)  # S+120G0
    await astep("run_continuously_ccw", backend.run_continuously, -50)  # S-50G0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        await astep("run_continuously_zero", backend.run_continuously, 0)  # halt() not awaited
    await astep("halt", backend.halt)  # H
    await astep("run_continuously_slow", backend.run_continuously, 60)  # S+60G0
    await astep("halt_again", backend.halt)
    await astep("run_revolutions", backend.run_revolutions, 1)  # V1G: one turn at 60 rpm
    await astep("stop", backend.stop)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
