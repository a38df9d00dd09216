"""One timer for a stream of reply timeouts.

A transport waits for a reply thousands of times a second, and nearly every reply comes long
before its timeout. A timer handle per wait (`call_later`, then `cancel`) was a quarter of the
instructions of a whole exchange on a serial port. This keeps one handle: a new wait only moves
the deadline, and when the handle fires before the deadline it re-arms for it, so a steady
stream of quick replies costs one timer per timeout period instead of one per reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["ReplyTimer"]

#: a timer firing this close before the deadline counts as due (the loop runs timers up to
#: its clock resolution early)
_DUE_SLACK_S = 1e-6


class ReplyTimer:
    """Calls `expire` once `delay_s` after `start`, unless `stop` comes first."""

    def __init__(self, loop: asyncio.AbstractEventLoop, expire: Callable[[], None]) -> None:
        self._loop = loop
        self._expire = expire
        self._deadline: float | None = None  # loop time; None: no wait running
        self._handle: asyncio.TimerHandle | None = None

    def start(self, delay_s: float) -> None:
        loop = self._loop
        deadline = self._deadline = loop.time() + max(0.0, delay_s)
        handle = self._handle
        if handle is None or handle.when() > deadline:  # none armed, or armed too late
            if handle is not None:
                handle.cancel()
            self._handle = loop.call_at(deadline, self._fire)

    def stop(self) -> None:
        """The wait is over; the armed timer stays and lapses or re-arms when it fires."""
        self._deadline = None

    def close(self) -> None:
        self._deadline = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        deadline = self._deadline
        if deadline is None:
            return
        if deadline - self._loop.time() > _DUE_SLACK_S:  # a later wait moved the deadline
            self._handle = self._loop.call_at(deadline, self._fire)
            return
        self._deadline = None
        self._expire()
