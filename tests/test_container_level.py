"""Container bookkeeping (SR25) on exact numbers."""

from __future__ import annotations

import pytest

from pumpctl.infusion.container import ContainerLevel


def test_SR25_level_warning_and_refill() -> None:
    level = ContainerLevel(60.0, "syringe")
    assert level.left_ml(10.0) == 50.0
    assert level.reserve_ml() == pytest.approx(0.12)
    # 10 % of 60 mL = 6 mL; 10 min at 30 mL/h = 5 mL: the larger threshold applies
    assert level.needs_warning(53.0, 30.0, still_needed_ml=40.0) is None  # 7 mL left
    assert level.needs_warning(54.5, 30.0, still_needed_ml=40.0) == pytest.approx(5.5)
    assert level.needs_warning(55.0, 30.0, still_needed_ml=40.0) is None  # warned once
    level.refilled(60.0, total_ml=59.88)
    assert level.left_ml(59.88) == 60.0
    assert level.left_ml(100.0) == pytest.approx(19.88)


def test_no_warning_when_the_program_finishes_first_or_capacity_is_unknown() -> None:
    level = ContainerLevel(60.0, "syringe")
    assert level.needs_warning(58.0, 7.0, still_needed_ml=1.0) is None  # 2 mL left, 1 needed
    untracked = ContainerLevel(None, "reservoir")
    assert not untracked.tracked and untracked.left_ml(1e6) is None
    partial = ContainerLevel(60.0, "syringe", contents_ml=20.0)  # carried over from a resume
    assert partial.left_ml(5.0) == 15.0
