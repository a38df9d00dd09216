"""Shared fixtures: plans built in code, and running coroutines on the virtual clock."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import structlog

from pumpctl.clock import Clock, run_with_clock
from pumpctl.dosing.plan import ContainerSpec, Plan, Segment, SegmentPhase, TitrationLimits
from pumpctl.log import configure_logging

T = TypeVar("T")

#: modules whose tests mostly wait on other processes or on wall time (third-party clients,
#: `pumpctl` subprocesses, scaled real-time runs, ptys): collected first, so on a few cores
#: their waits overlap the CPU-bound tests instead of being the tail of the run
WALL_BOUND_MODULES = frozenset(
    {
        "test_thirdparty_clients.py",
        "test_thirdparty_families.py",
        "test_cli_rerun.py",
        "test_station_cli.py",
        "test_sila_cli.py",
        "test_sim_cli.py",
        "test_e2e_wire.py",
        "test_sim_pacing.py",
        "test_logging.py",
        "test_public_api.py",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Wall-bound modules first, in their own order; the rest after, in theirs."""
    items.sort(key=lambda item: item.path.name not in WALL_BOUND_MODULES)


BD60_DIAMETER_MM = 26.7  # BD 60 mL plastic syringe


def segment(phase: SegmentPhase, rate_ml_per_h: float, volume_ml: float | None) -> Segment:
    duration = None if volume_ml is None else volume_ml / rate_ml_per_h * 3600.0
    return Segment(
        phase=phase, rate_ml_per_h=rate_ml_per_h, volume_ml=volume_ml, duration_s=duration
    )


def make_plan(
    *segments: Segment,
    titration: TitrationLimits | None = None,
    diameter_mm: float = BD60_DIAMETER_MM,
    capacity_ml: float | None = 60.0,
) -> Plan:
    return Plan(
        program="test-program",
        program_hash="0" * 64,
        container=ContainerSpec(inner_diameter_mm=diameter_mm, capacity_ml=capacity_ml),
        segments=tuple(segments),
        titration=titration,
    )


def analgesia_plan(**changes: Any) -> Plan:
    """Ketamine 1 mg/mL for 70 kg: 24.5 mL loading over 10 min, then 14 mL/h for 4 h (56 mL).
    The journal, report and history tests build their journals around it; `changes` sets the
    fields a test needs (titration, rolling limits, another program hash)."""
    fields: dict[str, Any] = {
        "program": "ketamine-analgesia",
        "program_hash": "ab" * 32,
        "drug": "ketamine",
        "concentration_mg_per_ml": 1.0,
        "weight_kg": 70.0,
        "container": ContainerSpec(inner_diameter_mm=BD60_DIAMETER_MM, capacity_ml=60.0),
        "segments": (
            Segment(
                phase=SegmentPhase.LOADING,
                rate_ml_per_h=147.0,
                volume_ml=24.5,
                duration_s=600.0,
                dose_rate=0.035,
                dose_rate_unit="mg/kg/min",
            ),
            Segment(
                phase=SegmentPhase.MAINTENANCE,
                rate_ml_per_h=14.0,
                volume_ml=56.0,
                duration_s=4 * 3600.0,
                dose_rate=0.2,
                dose_rate_unit="mg/kg/h",
            ),
        ),
    }
    return Plan(**{**fields, **changes})


@pytest.fixture
def acute_plan() -> Plan:
    """The acute-pain example in pump units: 70 kg, 2 mg/mL, prime 0.5 mL, 0.35 mg/kg over 10 min
    (12.25 mL at 73.5 mL/h), then 0.2 mg/kg/h for 4 h (7 mL/h, 28 mL): 40.75 mL in a 60 mL syringe."""
    return make_plan(
        segment(SegmentPhase.PRIME, 120.0, 0.5),
        segment(SegmentPhase.LOADING, 73.5, 12.25),
        segment(SegmentPhase.MAINTENANCE, 7.0, 28.0),
        titration=TitrationLimits(
            max_step_ml_per_h=3.5,  # 0.1 mg/kg/h
            min_interval_s=15 * 60.0,
            max_rate_ml_per_h=35.0,  # 1 mg/kg/h
            ml_per_h_per_dose_unit=35.0,  # 70 kg / 2 mg/mL
        ),
    )


def run_virtual(main: Callable[[Clock], Awaitable[T]]) -> T:
    """Run `main(clock)` on the virtual clock (days in milliseconds, no wall-clock sleeps)."""
    return run_with_clock(main, virtual=True)


@pytest.fixture(autouse=True)
def _quiet_logs() -> Any:
    """Process every log event at DEBUG (so a bad log call fails the test) but print nothing."""
    configure_logging(console=False, level=logging.DEBUG)
    yield
    structlog.reset_defaults()
