"""Rolling-window delivered totals (SR08): how much went in during any last 1 h, 4 h, 24 h.

Pure bookkeeping on (time, cumulative total) samples, one deque per window holding exactly one
sample at or before the window's start, so each new sample costs amortised O(1) however long the
run. The window total is measured from that sample, so it can only over-estimate (by at most one
sample interval's volume): the check errs towards stopping.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

__all__ = ["RollingTotals"]


class RollingTotals:
    def __init__(self, max_ml_by_window_s: Mapping[float, float], *, tolerance_ml: float) -> None:
        self.limits = dict(max_ml_by_window_s)
        self._samples: dict[float, deque[tuple[float, float]]] = {w: deque() for w in self.limits}
        self._last: tuple[float, float] | None = None  # the latest (time, total) added
        self.tolerance_ml = tolerance_ml

    @property
    def tolerance_ml(self) -> float:
        return self._tolerance_ml

    @tolerance_ml.setter
    def tolerance_ml(self, value: float) -> None:
        """Set again once the pump's resolution is known (after its container is set up)."""
        self._tolerance_ml = value
        #: (window s, max mL, the mL that exceeds it, its samples): what `add` reads every poll
        self._windows = [
            (w, max_ml, max_ml + value, self._samples[w]) for w, max_ml in self.limits.items()
        ]

    def add(self, now_s: float, total_ml: float) -> tuple[float, float, float] | None:
        """Record the cumulative total at `now_s`; returns (window s, mL in it, max mL) for the
        first window whose maximum is exceeded (beyond the tolerance), else None. Every window
        takes the sample, the ones after an excess too (`seed` reads on past one).

        A total equal to the one added last is not stored again (most polls of a slow drip):
        a window is measured from the last sample at or before its start, and the stored one
        before it holds the same total from earlier, so no window's total changes."""
        last = self._last
        repeat = last is not None and last[1] == total_ml
        sample = self._last = (now_s, total_ml)
        excess = None
        for window_s, max_ml, over_ml, samples in self._windows:
            if not repeat:
                samples.append(sample)
            start_s = now_s - window_s
            while len(samples) > 1 and samples[1][0] <= start_s:
                samples.popleft()
            first_t, first_total = samples[0]
            in_window = total_ml - (first_total if first_t <= start_s else 0.0)
            if in_window > over_ml and excess is None:
                excess = window_s, in_window, max_ml
        return excess

    def seed(self, samples: list[tuple[float, float]]) -> None:
        """Earlier (time, cumulative total) samples, oldest first: what a run inherits from the
        runs before it, so a restart cannot reset a window. Excesses are reported by `add`."""
        for now_s, total_ml in samples:
            self.add(now_s, total_ml)

    def in_window_ml(self, window_s: float) -> float:
        """Delivered in the last `window_s` as of the latest sample (0 before any sample)."""
        samples = self._samples.get(window_s)
        if not samples or self._last is None:
            return 0.0
        now_s, total = self._last
        first_t, first_total = samples[0]
        return total - (first_total if first_t <= now_s - window_s else 0.0)
