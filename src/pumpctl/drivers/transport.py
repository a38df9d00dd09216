"""Async byte transports: the only module that imports `serial`.

A driver hands the transport a request frame and a framer (`FrameLength`); the transport writes
the frame, collects bytes until the framer says a reply is complete, and returns it. One exchange
at a time per port (an `asyncio.Lock`), because every protocol we drive is strictly one command,
one reply, and several pumps may share a daisy-chained line.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from pumpctl.drivers.base import FrameLength

__all__ = ["Transport"]


class Transport(ABC):
    """A byte pipe to one serial line (which may carry several pumps)."""

    #: human-readable port name for logs and error messages (device path or URL)
    name: str

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def exchange(self, request: bytes, frame_length: FrameLength, timeout_s: float) -> bytes:
        """Write `request`, return the first complete reply.

        Bytes that arrived before the request (late replies, unsolicited alarm packets) are
        discarded and logged. Raises `PumpTimeout` (naming the port) when no complete reply
        arrives within `timeout_s`, `PumpConnectionError` when the port fails.
        """

    @abstractmethod
    async def send(self, data: bytes) -> None:
        """Write without waiting for a reply (broadcasts, break-ins)."""
