"""The serial ports this machine has (`pumpctl ports`), apart from the transport that opens
one: finding ports needs pyserial's port tools and no event loop."""

from __future__ import annotations

import serial.tools.list_ports
from pydantic import BaseModel, ConfigDict

__all__ = ["PortInfo", "list_ports"]


class PortInfo(BaseModel):
    """One serial port found on this machine."""

    model_config = ConfigDict(frozen=True)

    device: str
    description: str = ""
    hwid: str = ""


def list_ports() -> list[PortInfo]:
    """Serial ports pyserial can see, sorted by device name."""
    found = [
        PortInfo(device=p.device, description=p.description or "", hwid=p.hwid or "")
        for p in serial.tools.list_ports.comports()
    ]
    return sorted(found, key=lambda p: p.device)
