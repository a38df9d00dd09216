"""A watcher's progress is built at every change it shows and otherwise every
`progress_interval_s`; the prediction is stepped every `PK_STEP_S` and whenever it is read.
Both are there for speed on the virtual clock and must change nothing a watcher learns."""

from __future__ import annotations

import itertools

import pytest

from pumpctl.clock import Clock
from pumpctl.dosing.check import check_program
from pumpctl.dosing.plan import Plan, SegmentPhase
from pumpctl.dosing.program import example_path
from pumpctl.infusion import tci_leg
from pumpctl.infusion.config import SupervisorConfig
from pumpctl.infusion.outcome import Outcome, Progress
from pumpctl.operator.display import PhaseTiming
from pumpctl.runner import DemoScenario, run_on_simulator
from tests.conftest import run_virtual

Watched = tuple[list[Progress], PhaseTiming]


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    """The shipped acute-pain program (ketamine, so the supervisor predicts Cp and Ce) with a
    1-h maintenance: a pause and a resume in it, every phase, a run's worth of polls."""
    text = example_path("acute-pain.yaml").read_text()
    library = example_path("library/ketamine.yaml")
    text = text.replace("library: library/ketamine.yaml", f"library: {library}")
    path = tmp_path_factory.mktemp("gate") / "acute-1h.yaml"
    path.write_text(text.replace("duration: 4 h", "duration: 1 h"))
    result = check_program(path)
    assert result.plan is not None, result.violations
    return result.plan


def _watch(plan: Plan, every_s: float) -> Watched:
    seen: list[Progress] = []
    timing = PhaseTiming()

    def on_progress(p: Progress) -> None:
        seen.append(p)
        timing(p)

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(
            plan,
            clock,
            config=SupervisorConfig(progress_interval_s=every_s),
            on_progress=on_progress,
            operator=DemoScenario(),  # a pause and a resume during maintenance
        )

    result, _ = run_virtual(main)
    assert result.outcome is Outcome.COMPLETED, result.alarm
    return seen, timing


@pytest.fixture(scope="module")
def every_poll(plan: Plan) -> Watched:
    return _watch(plan, 1.0)


def _changes(seen: list[Progress]) -> list[tuple[object, ...]]:
    """What a watcher can see change, each change once."""
    out: list[tuple[object, ...]] = []
    for p in seen:
        # a notice's text (mL left) is refreshed at the interval; a new notice is a change
        shown = (p.phase, p.segment_key, p.rate_ml_per_h, tuple(p.alarms), len(p.notices))
        if not out or out[-1] != shown:
            out.append(shown)
    return out


def test_a_coarse_progress_shows_every_change_and_the_same_phase_times(
    plan: Plan, every_poll: Watched
) -> None:
    fine, fine_timing = every_poll
    coarse, coarse_timing = _watch(plan, 600.0)
    # every poll vs. at most every 10 min: far fewer progresses...
    assert len(coarse) < len(fine) / 50
    # ...but each change at the poll that saw it, and the run's end
    assert _changes(coarse) == _changes(fine)
    assert coarse[-1] == fine[-1]
    assert coarse_timing.running_s == pytest.approx(fine_timing.running_s)
    assert coarse_timing.stopped_s == pytest.approx(fine_timing.stopped_s)
    assert coarse_timing.stopped_s[SegmentPhase.MAINTENANCE] > 0  # the pause was seen
    # and never more than the interval apart
    gaps = [b.clock_s - a.clock_s for a, b in itertools.pairwise(coarse)]
    assert max(gaps) <= 600.0 + 1.0


def test_the_prediction_stepped_every_10_s_matches_one_stepped_every_poll(
    plan: Plan, every_poll: Watched, monkeypatch: pytest.MonkeyPatch
) -> None:
    coarse, _ = every_poll
    monkeypatch.setattr(tci_leg, "PK_STEP_S", 0.0)
    fine, _ = _watch(plan, 1.0)
    assert len(coarse) == len(fine)
    pairs = [
        (c.plasma_ug_per_ml, f.plasma_ug_per_ml)
        for c, f in zip(coarse, fine, strict=True)
        if f.plasma_ug_per_ml
    ]
    assert len(pairs) > 1000
    # read between steps, the prediction is fed up to the last poll; the 1-s volume deltas
    # carry the counter's 0.001 mL step as noise either way: the same to 2 %
    assert all(c == pytest.approx(f, rel=2e-2) for c, f in pairs)
    assert coarse[-1].effect_ug_per_ml == pytest.approx(fine[-1].effect_ug_per_ml, rel=1e-2)
