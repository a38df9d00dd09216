"""From sila2's worker threads to the station's event loop, and back.

sila2 runs every call in a thread pool; the station's supervisors live on one asyncio loop.
A call is handed over with `run_coroutine_threadsafe` and waited for with a timeout, so a stuck
loop shows as an error to the SiLA client rather than a hung worker.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopBridge"]

T = TypeVar("T")


class LoopBridge:
    """Runs coroutines on `loop` from other threads."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float = 30.0) -> None:
        self.loop = loop
        self.timeout_s = timeout_s
        self._loop_thread: int | None = None
        loop.call_soon_threadsafe(self._remember_thread)

    def _remember_thread(self) -> None:
        self._loop_thread = threading.get_ident()

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run `coro` on the loop and return its result (or raise its exception) in this thread."""
        if threading.get_ident() == self._loop_thread:
            coro.close()
            raise RuntimeError("LoopBridge.call from the loop's own thread would deadlock")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(self.timeout_s if timeout_s is None else timeout_s)
        except TimeoutError:
            future.cancel()
            raise
