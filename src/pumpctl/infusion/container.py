"""What is left in the syringe or reservoir, from what has been delivered since it was filled.

Pure bookkeeping for the supervisor (SR25): the level, the volume a pump run may be allowed
before the container runs out (a small reserve short of the plunger bottoming out, so a change
starts with the pump stopped at its own target rather than with a stall alarm), and the
near-empty warning threshold. Volumes are cumulative mL delivered by the whole run.
"""

from __future__ import annotations

__all__ = ["ContainerLevel"]


class ContainerLevel:
    def __init__(self, capacity_ml: float | None, kind: str, contents_ml: float | None = None):
        """`contents_ml`: what is in it now (default: full); None capacity = not tracked."""
        self.capacity_ml = capacity_ml
        self.kind = kind  # "syringe" or "reservoir", for messages
        self._fill_ml = contents_ml if contents_ml is not None else capacity_ml
        self._total_at_fill_ml = 0.0
        self.warned = False

    @property
    def tracked(self) -> bool:
        return self._fill_ml is not None

    def left_ml(self, total_ml: float) -> float | None:
        """What is left when the run has delivered `total_ml` in all; None when not tracked."""
        if self._fill_ml is None:
            return None
        return self._fill_ml - (total_ml - self._total_at_fill_ml)

    def reserve_ml(self) -> float:
        """Kept back when the container, not the program, limits a pump run: 0.2 % of the
        capacity, at least 0.05 mL."""
        return max(0.05, 0.002 * (self.capacity_ml or 0.0))

    def needs_warning(
        self, total_ml: float, rate_ml_per_h: float, still_needed_ml: float | None
    ) -> float | None:
        """The volume left, once, when it falls to 10 % of the capacity or 10 minutes at the
        current rate and the program still needs more than that; else None."""
        if self.warned or self.capacity_ml is None:
            return None  # (checked first: once warned, most polls stop here)
        left = self.left_ml(total_ml)
        if left is None:
            return None
        threshold = max(0.1 * self.capacity_ml, rate_ml_per_h * 600.0 / 3600.0)
        if left > threshold or (still_needed_ml is not None and still_needed_ml <= left):
            return None
        self.warned = True
        return left

    def refilled(self, fill_ml: float, total_ml: float) -> None:
        """A new container holding `fill_ml` is in place after `total_ml` were delivered."""
        self._fill_ml, self._total_at_fill_ml = fill_ml, total_ml
        self.warned = False
