"""pyHamiltonPSD 1.1.0 (Hamilton's PSD/4, PSD/6 library), unchanged, drives `pumpctl simulate
hamilton-psd4` (usage: harness_psd.py PTY).

The library keeps one module-level port and prints every exchange; the prints go to stderr here
(stdout carries the step records). It builds port names as `'COM' + n`: its `ComPort` prefix is
set to "" so a pty path can be given. A PSD/4 with a 1 mL syringe, standard resolution.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any

import pyHamiltonPSD.communication as psd_comm
from _steps import step
from pyHamiltonPSD.psd import PSD


def quiet(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[[], Any]:
    def run() -> Any:
        with contextlib.redirect_stdout(sys.stderr):
            return fn(*args, **kwargs)

    return run


def main(path: str) -> None:
    psd_comm.ComPort = ""
    step("connect", quiet(psd_comm.initializeSerial, path, 9600))
    psd = PSD("0", "4")  # address switch 0 -> `1`; a PSD/4
    psd.calculateSteps()
    psd.calculateSyringeStroke()
    psd.setVolume("1.0m")
    cmd = psd.command
    address = psd.asciiAddress

    def send(message: str) -> str:
        reply: str = psd_comm.sendCommand(address, message, waitForPump=True)
        return reply

    step("initialize", quiet(send, cmd.initialize("Z") + cmd.executeCommandBuffer()))
    absolute = cmd.syringeMovement("absolute", 500.0) + cmd.executeCommandBuffer()
    step("aspirate", quiet(send, absolute))  # A1500R: 500 uL of 1000 from the reservoir
    step("position", quiet(psd_comm.sendCommand, address, cmd.absoluteSyringePosition()))
    output = cmd.moveValveToOutputPosition() + cmd.executeCommandBuffer()
    step("valve_output", quiet(send, output))
    dispense = cmd.syringeMovement("dispense", 250.0) + cmd.executeCommandBuffer()
    step("dispense", quiet(send, dispense))  # D750R
    step("disconnect", quiet(psd_comm.disconnectSerial))


if __name__ == "__main__":
    main(sys.argv[1])
