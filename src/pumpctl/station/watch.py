"""One run of a station pump, followed from another thread (a SiLA worker).

Fed on the event loop (progress, then the result or the error), read from the worker through a
thread-safe queue, so the loop never waits on a client.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from pumpctl.dosing.plan import Plan
from pumpctl.infusion.supervisor import Progress, RunResult, Supervisor

__all__ = ["RunWatch"]


class RunWatch:
    """One run, followed from another thread: progress updates, then the result or the error."""

    def __init__(self, pump: str, plan: Plan | None, notes: list[str]) -> None:
        self.pump = pump
        self.plan = plan
        self.notes = notes
        self.run_id: str | None = None
        self.supervisor: Supervisor | None = None
        self.result: RunResult | None = None
        self.error: BaseException | None = None
        self._updates: queue.Queue[Progress | None] = queue.Queue()
        self._done = threading.Event()

    def push(self, progress: Progress) -> None:
        self._updates.put(progress)

    def finish(self, result: RunResult | None = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self._done.set()
        self._updates.put(None)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout_s: float | None = None) -> bool:
        return self._done.wait(timeout_s)

    def updates(self, wake_s: float = 1.0) -> Iterator[Progress | None]:
        """Progress as it comes (None when nothing came for `wake_s`), until the run ends."""
        while True:
            try:
                item = self._updates.get(timeout=wake_s)
            except queue.Empty:
                if self.done:
                    return
                yield None
                continue
            if item is None:
                return
            yield item
