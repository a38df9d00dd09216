"""labmcp-cavro 0.1.3 (Cavro DT driver of the labmcp toolkit), unchanged, drives `pumpctl simulate
tecan-xcalibur` or `tecan-xlp6000` (usage: harness_labmcp_cavro.py PTY; `$LABMCP_MODEL` is
labmcp's model name, `xcalibur` or `xlp6000`).

Its own transport settings: 9600 8N1, CR after each command, reads up to ETX CR LF, 2 s timeout.
The syringe is 1000 uL, as in the simulator.
"""

from __future__ import annotations

import os
import sys

from _steps import step
from labmcp.transports.serial import SerialTransport
from labmcp_cavro.driver import CavroPump


def main(path: str) -> None:
    model = os.environ["LABMCP_MODEL"]
    transport = SerialTransport(
        path, baudrate=9600, read_termination="\x03\r\n", write_termination="\r", timeout=2.0
    )
    pump = CavroPump(transport, address="1", syringe_ul=1000, model=model)
    step("initialize", pump.initialize)  # Q, Z0R, Q until ready, N0R, Q
    step("identify", pump.identify)  # & (firmware)
    step("valve_input", pump.move_valve, "I")
    step("aspirate", lambda: pump.move_plunger("P", 600, 1200, timeout=10).position_steps)
    step("position", pump.plunger_steps)
    step("valve_output", pump.move_valve, "O")
    step("dispense", lambda: pump.move_plunger("D", 300, 600, timeout=10).position_steps)
    step("top_speed", pump.top_speed)  # ?2
    step("terminate", lambda: pump.terminate().ready)
    transport.close()


if __name__ == "__main__":
    main(sys.argv[1])
