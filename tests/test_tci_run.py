"""TCI, taper and boluses run by the supervisor on every family's emulation (issue #13).

Virtual clock, no sleeps: the TCI phase is short (10 min) and the pump's reported volumes feed
the prediction, exactly as on a rig.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from pumpctl.clock import Clock
from pumpctl.dosing.check import check_program
from pumpctl.dosing.plan import Plan
from pumpctl.infusion.journal import Journal
from pumpctl.infusion.outcome import Progress
from pumpctl.infusion.supervisor import Outcome, Supervisor, SupervisorError
from pumpctl.runner import run_on_simulator

from .conftest import run_virtual
from .test_fault_matrix import FAMILIES

TARGET = 0.25
TOLERANCE = 0.05  # the last minute's mean predicted plasma is within 5 % of the target


def held(progress: list[Progress], phase: str = "tci") -> float:
    """Mean predicted plasma over the phase's last 60 s (a stroke pump's refills dip it)."""
    samples = [p for p in progress if p.phase == phase and p.plasma_ug_per_ml is not None]
    end = samples[-1].clock_s
    # one sample per clock time: the segment's end is shown again after its last poll
    at = {p.clock_s: p.plasma_ug_per_ml for p in samples if p.clock_s >= end - 60.0}
    return sum(x for x in at.values() if x is not None) / len(at)


TUBING = {"masterflex-ls": 0.06, "tecan-xcalibur": 1.0, "tecan-xlp6000-oem": 1.0}
TUBING |= {"hamilton-psd6": 1.0}

BASE: dict[str, Any] = {
    "program": "tci-test",
    "drug": {"name": "ketamine", "concentration": "2 mg/mL"},
    "patient": {"weight": "70 kg", "care_area": "adult"},
    "pump": {"syringe": {"inner_diameter": "26.7 mm", "volume": "60 mL"}, "changes": "none"},
    "phases": {
        "tci": {
            "target": f"{TARGET} ug/mL",
            "site": "plasma",
            "model": "domino",
            "duration": "10 min",
            "max_concentration": "0.3 ug/mL",
            "max_rate": "0.05 mg/kg/min",
        }
    },
}


def compile_for(tmp_path: Path, model: str, **changes: Any) -> Plan:
    data = copy.deepcopy(BASE)
    if model in TUBING:
        data["pump"] = {"tubing": {"ml_per_rev": TUBING[model]}, "reservoir": {"volume": "500 mL"}}
    data.update(changes)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    result = check_program(path, model=model)
    assert result.plan is not None and result.exit_code == 0, result.violations
    return result.plan


@pytest.mark.parametrize("model", FAMILIES)
def test_tci_reaches_the_target_and_never_the_ceiling_on_every_family(
    tmp_path: Path, model: str
) -> None:
    plan = compile_for(tmp_path, model)
    assert plan.tci is not None
    seen: list[Progress] = []
    journal = Journal(tmp_path / "run.sqlite")

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(
            plan, clock, model=model, journal=journal, on_progress=seen.append
        )

    result, truth = run_virtual(main)
    assert result.outcome is Outcome.COMPLETED, result.alarm
    cps = [p.plasma_ug_per_ml for p in seen if p.plasma_ug_per_ml is not None]
    assert max(cps) <= plan.tci.max_plasma_ug_per_ml + 1e-6
    tci_progress = [p for p in seen if p.phase == "tci"]
    assert tci_progress and held(seen) == pytest.approx(TARGET, rel=TOLERANCE)
    run = journal.latest_run()
    assert run is not None
    updates = [
        e.payload for e in journal.events(run.run_id) if e.payload.get("event") == "tci_rate"
    ]
    assert len(updates) >= 50  # every 10 s for 10 min
    assert all(u["plasma_ug_per_ml"] <= plan.tci.max_plasma_ug_per_ml + 1e-6 for u in updates)
    # the books (and so the prediction) hold what the pump delivered, to its counter's step
    assert truth.delivered_ml == pytest.approx(result.delivered_ml, abs=0.002)
    journal.close()


TAPER = {
    "prime": {"volume": "0.5 mL"},
    "maintenance": {
        "rate": "0.2 mg/kg/h",
        "duration": "20 min",
        "taper": {"steps": 3, "over": "10 min"},
    },
}


@pytest.mark.parametrize("model", FAMILIES)
def test_taper_program_completes_exactly_on_every_family(tmp_path: Path, model: str) -> None:
    plan = compile_for(tmp_path, model, phases=TAPER)
    assert [s.key for s in plan.segments][-1].startswith("maintenance:taper")
    journal = Journal(tmp_path / "run.sqlite")

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(plan, clock, model=model, journal=journal)

    result, truth = run_virtual(main)
    assert result.outcome is Outcome.COMPLETED, result.alarm
    res = max(plan.volume_resolution_ml, 0.001)  # the coarsest counter of the families
    assert len(result.phases) == len(plan.segments)  # one result per segment, taper steps too
    for seg, booked in zip(plan.segments, result.phases, strict=True):
        assert booked.delivered_ml == pytest.approx(seg.volume_ml, abs=2 * res), seg.key
    assert plan.total_volume_ml is not None
    assert truth.delivered_ml == pytest.approx(plan.total_volume_ml, abs=3 * res)
    assert truth.delivered_ml <= plan.total_volume_ml + 3 * res
    run = journal.latest_run()
    assert run is not None
    ends = [e.payload["phase"] for e in journal.events(run.run_id) if e.kind == "segment_end"]
    assert ends == [s.key for s in plan.segments]
    journal.close()


async def _wait_for(sup: Supervisor, clock: Clock, phase: str) -> None:
    while sup.phase.value != phase:
        await clock.sleep(1.0)


BOLUS = {"dose": "0.1 mg/kg", "over": "1 min", "lockout": "10 min", "max_per_hour": 3}
BOLUS |= {"max_per_4h": "0.2 mg/kg"}


def test_bolus_lockout_under_a_burst_of_requests(tmp_path: Path) -> None:
    """Ten requests at once: one bolus; the lockout, then the count, then the 4-h limit refuse
    the rest, every decision journaled with who and why; the drug given is exactly the boluses
    on top of the basal."""
    phases = {"maintenance": {"rate": "0.2 mg/kg/h", "duration": "40 min"}}
    plan = compile_for(tmp_path, "ne1000", phases=phases, bolus=BOLUS)
    journal = Journal(tmp_path / "run.sqlite")
    outcomes: list[str] = []

    async def ask(sup: Supervisor, who: str) -> None:
        try:
            await sup.bolus(7.0, reason="distress", who=who)
            outcomes.append("given")
        except SupervisorError as exc:
            outcomes.append(str(exc))

    async def burst(sup: Supervisor, clock: Clock) -> None:
        import asyncio

        await _wait_for(sup, clock, "maintenance")
        await clock.sleep(60)
        await asyncio.gather(*(ask(sup, f"nurse{i}") for i in range(10)))
        await clock.sleep(12 * 60)  # past the lockout (from the end of the bolus): the second
        await ask(sup, "dr")
        await clock.sleep(12 * 60)  # third: 0.2 mg/kg per 4 h (14 mg) is reached
        await ask(sup, "dr")

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(plan, clock, journal=journal, operator=burst)

    result, truth = run_virtual(main)
    assert result.outcome is Outcome.COMPLETED, result.alarm
    assert outcomes.count("given") == 2, outcomes
    assert sum("lockout" in o for o in outcomes) == 9
    assert "4-h limit" in outcomes[-1]
    run = journal.latest_run()
    assert run is not None
    notes = [e.payload for e in journal.events(run.run_id) if e.payload.get("event") == "bolus"]
    assert len(notes) == 12 and {n["who"] for n in notes} >= {"nurse0", "dr"}
    assert all(n["reason"] == "distress" for n in notes)
    assert [n["accepted"] for n in notes].count(True) == 2
    # exactly the maintenance and the two boluses (3.5 mL each): the pump's target covered both
    seg = plan.segments[0]
    assert seg.volume_ml is not None
    assert truth.delivered_ml == pytest.approx(seg.volume_ml + 7.0, abs=0.003)
    assert result.delivered_ml == pytest.approx(truth.delivered_ml, abs=0.003)
    journal.close()


def test_target_change_follows_the_step_and_interval_limits(tmp_path: Path) -> None:
    tci = {**BASE["phases"]["tci"], "duration": "30 min", "max_concentration": "0.6 ug/mL"}
    plan = compile_for(tmp_path, "ne1000", phases={"tci": tci})
    assert plan.tci is not None and plan.tci.max_step_ug_per_ml == pytest.approx(0.1)
    answers: list[str] = []
    seen: list[Progress] = []

    async def change(sup: Supervisor, clock: Clock) -> None:
        await _wait_for(sup, clock, "tci")
        for target in (0.5, 0.35, 0.45):  # too big a step; accepted; too soon after it
            try:
                await sup.set_target(target, reason="more analgesia", who="dr")
                answers.append("ok")
            except SupervisorError as exc:
                answers.append(str(exc))
            await clock.sleep(60)

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(plan, clock, operator=change, on_progress=seen.append)

    result, _ = run_virtual(main)
    assert result.outcome is Outcome.COMPLETED, result.alarm
    assert "largest step" in answers[0] and answers[1] == "ok" and "wait" in answers[2]
    last = [p for p in seen if p.phase == "tci"][-1]
    assert last.tci_target_ug_per_ml == pytest.approx(0.35)
    assert held(seen) == pytest.approx(0.35, rel=TOLERANCE)


@pytest.mark.parametrize("model", FAMILIES)
def test_lowered_target_turns_the_pump_off_then_on_again_on_every_family(
    tmp_path: Path, model: str
) -> None:
    """Below the prediction the controller's rate is 0: the pump is paused (no SR15 timer)
    until the prediction has fallen to the target, then runs again; the journal and the
    pump's own counter agree."""
    plan = compile_for(tmp_path, model)
    seen: list[Progress] = []

    async def lower(sup: Supervisor, clock: Clock) -> None:
        await _wait_for(sup, clock, "tci")
        await clock.sleep(240)
        await sup.set_target(0.15, reason="too drowsy", who="dr")

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(
            plan, clock, model=model, operator=lower, on_progress=seen.append
        )

    result, truth = run_virtual(main)
    assert result.outcome is Outcome.COMPLETED, result.alarm
    tci = [p for p in seen if p.phase == "tci"]
    off = [p for p in tci if p.rate_ml_per_h == 0 and p.clock_s > 250]
    assert off, "the pump never went off after the lower target"
    # and back on once the prediction fell to the target (the phase's last progress is its
    # end, the pump stopped)
    assert any(p.rate_ml_per_h > 0 for p in tci if p.clock_s > off[0].clock_s)
    assert held(seen) == pytest.approx(0.15, rel=TOLERANCE)
    assert truth.delivered_ml == pytest.approx(result.delivered_ml, abs=0.01)


def test_ctl_target_and_bolus_through_the_control_socket_handler(tmp_path: Path) -> None:
    """`pumpctl ctl target 0.35ug/mL --reason` and `ctl bolus`: parsed by the quantity grammar,
    limited by the run, the reply's progress carries the predicted concentrations."""
    from pumpctl.operator.control import ControlRequest, ControlServer
    from pumpctl.operator.control_client import format_reply

    tci = {**BASE["phases"]["tci"], "max_concentration": "0.6 ug/mL"}
    plan = compile_for(tmp_path, "ne1000", phases={"tci": tci}, bolus=BOLUS)
    replies: dict[str, dict[str, Any]] = {}

    async def operator(sup: Supervisor, clock: Clock) -> None:
        await _wait_for(sup, clock, "tci")
        await clock.sleep(30)
        server = ControlServer(sup, tmp_path / "run.sqlite.ctl")  # handler only, no socket
        asks = {
            "no-reason": ControlRequest(op="target", rate="0.35 ug/mL"),
            "bad-unit": ControlRequest(op="target", rate="0.35 mg/kg", reason="x"),
            "target": ControlRequest(op="target", rate="0.35 ug/mL", reason="pain", who="dr"),
            "bolus": ControlRequest(op="bolus", rate="0.1 mg/kg", reason="pain", who="dr"),
        }
        for name, req in asks.items():
            replies[name] = await server.handle(req)

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(plan, clock, operator=operator)

    result, _ = run_virtual(main)
    assert result.outcome is Outcome.COMPLETED, result.alarm
    assert "needs a reason" in replies["no-reason"]["error"]
    assert "ug/mL" in replies["bad-unit"]["error"]
    assert replies["target"]["ok"] is True
    code, text = format_reply("target", replies["target"])
    assert code == 0 and "TCI target accepted" in text and "predicted plasma" in text
    assert "target 0.35" in text
    assert "no bolus in phase tci" in replies["bolus"]["error"]  # in TCI: raise the target


def test_tci_after_a_crash_continues_from_the_delivered_total(tmp_path: Path) -> None:
    """SIGKILL mid-TCI (tests/crashkit.py), a new controller 30 s later: it keeps the target set
    by `ctl target`, rebuilds the prediction from the journaled volumes and the pump's counter,
    so it neither reloads the patient (no second loading dose) nor overruns the phase's end."""
    from pumpctl.simulator.server import build_emulation

    from .crashkit import controller

    tci = {**BASE["phases"]["tci"], "max_concentration": "0.6 ug/mL"}
    plan = compile_for(tmp_path, "ne1000", phases={"tci": tci})
    emu = build_emulation("ne1000", [0])
    path = tmp_path / "j.sqlite"

    async def raise_target(sup: Supervisor, clock: Clock) -> None:
        await _wait_for(sup, clock, "tci")
        await clock.sleep(120)
        await sup.set_target(0.3, reason="pain", who="dr")

    first = controller(emu, plan, path, wall0=0.0, crash_at_s=300.0, operator=raise_target)
    assert first.crashed and not first.errors
    given_before = emu.snapshot()[0].delivered_ml
    second = controller(emu, plan, path, wall0=first.end_wall + 30.0)
    assert second.result is not None, second.notes
    assert second.result.outcome is Outcome.COMPLETED, second.result.alarm
    with Journal.open_readonly(path) as j:
        runs = j.runs()
        assert len(runs) == 2
        rates = [
            [e for e in j.events(r.run_id) if e.payload.get("event") == "tci_rate"] for r in runs
        ]
        resumed = rates[1][0].payload
        ends = [e.t_clock_s for e in j.events(runs[1].run_id) if e.kind == "segment_end"]
    # the new controller's first interval: fed the total the pump delivered (it ran on alone
    # for the 30 s until the new controller stopped it), target 0.3 kept
    assert given_before - 0.002 <= resumed["delivered_ml"] <= given_before + 0.05
    assert resumed["target_ug_per_ml"] == pytest.approx(0.3)
    assert resumed["plasma_ug_per_ml"] > 0.2  # continued, not an empty patient
    # no double dose: both controllers together gave what one uninterrupted run gives (the
    # pump's link watchdog stopped it 10 s into the crash; the controller made that up)
    alone = build_emulation("ne1000", [0])
    whole = controller(alone, plan, tmp_path / "whole.sqlite", wall0=0.0, operator=raise_target)
    assert whole.result is not None and whole.result.outcome is Outcome.COMPLETED
    once = alone.snapshot()[0].delivered_ml
    assert emu.snapshot()[0].delivered_ml == pytest.approx(once, rel=0.03)
    # the phase ends when it was planned to (10 min after it began), crash and gap included
    assert first.end_wall + 30.0 + ends[0] == pytest.approx(600.0 + 15.0, abs=15.0)
    assert all(e.payload["plasma_ug_per_ml"] <= 0.6 + 1e-6 for r in rates for e in r)


def test_a_resumed_prediction_does_not_count_the_earlier_runs_prime(tmp_path: Path) -> None:
    """A 0.5 mL prime, then SIGKILL mid-TCI: the new controller's prediction is fed what reached
    the patient, the pump's total less the prime (which only filled the line). Counting the
    prime as drug would predict too high a plasma level and the controller would under-dose."""
    from pumpctl.simulator.server import build_emulation

    from .crashkit import controller

    prime_ml = 0.5
    plan = compile_for(
        tmp_path, "ne1000", phases={"prime": {"volume": f"{prime_ml} mL"}, **BASE["phases"]}
    )
    emu = build_emulation("ne1000", [0])
    path = tmp_path / "j.sqlite"
    first = controller(emu, plan, path, wall0=0.0, crash_at_s=240.0)
    assert first.crashed and not first.errors
    pumped = emu.snapshot()[0].delivered_ml
    assert pumped > prime_ml + 0.1  # the crash came in the TCI phase, after the prime
    second = controller(emu, plan, path, wall0=first.end_wall + 30.0)
    assert second.result is not None, second.notes
    assert second.result.outcome is Outcome.COMPLETED, second.result.alarm
    with Journal.open_readonly(path) as j:
        runs = j.runs()
        fed = [
            e.payload["delivered_ml"]
            for r in runs
            for e in j.events(r.run_id)
            if e.payload.get("event") == "tci_rate"
        ]
        first_fed = [
            e.payload["delivered_ml"]
            for e in j.events(runs[0].run_id)
            if e.payload.get("event") == "tci_rate"
        ]
    resumed = fed[len(first_fed)]
    assert first_fed[0] == pytest.approx(0.0, abs=0.01)  # the first run: prime not fed either
    assert pumped - prime_ml - 0.002 <= resumed <= pumped - prime_ml + 0.05


def test_bolus_lockout_and_taper_step_survive_a_crash(tmp_path: Path) -> None:
    """A bolus, then SIGKILL in the taper's second step: the new controller refuses a bolus
    inside the lockout (restored from the journal), goes on with the taper step it was in, and
    the whole program is delivered exactly once."""
    from pumpctl.simulator.server import build_emulation

    from .crashkit import controller

    phases = {
        "maintenance": {
            "rate": "0.2 mg/kg/h",
            "duration": "30 min",
            "taper": {"steps": 3, "over": "15 min"},
        }
    }
    plan = compile_for(tmp_path, "ne1000", phases=phases, bolus={**BOLUS, "lockout": "30 min"})
    emu = build_emulation("ne1000", [0])
    path = tmp_path / "j.sqlite"
    answers: list[str] = []

    async def bolus_early(sup: Supervisor, clock: Clock) -> None:
        await _wait_for(sup, clock, "maintenance")
        await clock.sleep(60)
        await sup.bolus(7.0, reason="pain", who="dr")

    async def bolus_again(sup: Supervisor, clock: Clock) -> None:
        await clock.sleep(5)
        try:
            await sup.bolus(7.0, reason="pain", who="dr")
            answers.append("given")
        except SupervisorError as exc:
            answers.append(str(exc))

    step2_start = 15 * 60 + 5 * 60 + 60  # maintenance 15 min (+1 min of bolus), step 1 5 min
    first = controller(
        emu, plan, path, wall0=0.0, crash_at_s=step2_start + 60.0, operator=bolus_early
    )
    assert first.crashed and not first.errors
    second = controller(emu, plan, path, wall0=first.end_wall + 20.0, operator=bolus_again)
    assert second.result is not None and second.result.outcome is Outcome.COMPLETED
    assert "lockout" in answers[0]
    keys = [s.key for s in second.result.phases]  # what remained: the rest of the taper
    assert keys[0] == "maintenance:taper2", keys
    assert plan.total_volume_ml is not None
    assert emu.snapshot()[0].delivered_ml == pytest.approx(plan.total_volume_ml + 3.5, abs=0.005)


@pytest.mark.slow  # the report figure takes ~5 s to draw
def test_panel_journal_and_report_show_the_prediction_alongside_the_rate(tmp_path: Path) -> None:
    from pumpctl.operator.display import ProgressPrinter, summary_lines
    from pumpctl.operator.report import build_report, report_figure

    plan = compile_for(tmp_path, "ne1000", phases={"prime": {"volume": "0.5 mL"}, **BASE["phases"]})
    journal = Journal(tmp_path / "run.sqlite")
    lines: list[str] = []
    printer = ProgressPrinter(lines.append, every_s=60.0)

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(plan, clock, journal=journal, on_progress=printer)

    result, _ = run_virtual(main)
    journal.close()
    assert any(" tci " in line and "Cp 0.2" in line and "(target 0.25)" in line for line in lines)
    summary = "\n".join(summary_lines(plan, result))
    assert "tci" in summary and "ceiling" in summary  # the TCI volume is a ceiling, not a plan
    with Journal.open_readonly(tmp_path / "run.sqlite") as j:
        run = j.latest_run()
        assert run is not None
        checkpoints = [e.payload for e in j.events(run.run_id, ["checkpoint"])]
    assert any(c.get("plasma_ug_per_ml") for c in checkpoints)  # journaled with the rate
    data = build_report(tmp_path / "run.sqlite")
    assert data.pk_model == "domino" and len(data.predicted) > 50
    assert max(cp for _, cp, _ in data.predicted) <= 0.3 + 1e-6
    # the rate drawn is what the controller sent, not the phase's ceiling
    assert len({r for _, r in data.rate_steps}) > 10
    # the prime reached no patient: nothing predicted before the TCI started
    assert data.predicted[0][1] == pytest.approx(0.0, abs=1e-9)
    import matplotlib.pyplot as plt

    plt.close(report_figure(data))


def test_operator_pause_in_tci_then_resume_goes_back_to_the_controllers_rate(
    tmp_path: Path,
) -> None:
    plan = compile_for(tmp_path, "ne1000")
    assert plan.tci is not None
    seen: list[Progress] = []

    async def pause_resume(sup: Supervisor, clock: Clock) -> None:
        await _wait_for(sup, clock, "tci")
        await clock.sleep(120)
        await sup.pause(reason="line check", who="nurse")
        await clock.sleep(60)
        await sup.resume(who="nurse")

    async def main(clock: Clock):  # type: ignore[no-untyped-def]
        return await run_on_simulator(plan, clock, operator=pause_resume, on_progress=seen.append)

    result, truth = run_virtual(main)
    assert result.outcome is Outcome.COMPLETED, result.alarm
    assert any(p.phase == "paused" for p in seen)
    cps = [p.plasma_ug_per_ml for p in seen if p.plasma_ug_per_ml is not None]
    assert max(cps) <= plan.tci.max_plasma_ug_per_ml + 1e-6
    assert held(seen) == pytest.approx(TARGET, rel=TOLERANCE)
    assert truth.delivered_ml == pytest.approx(result.delivered_ml, abs=0.01)


def test_ctl_cli_needs_a_quantity_for_target_and_bolus(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pumpctl.operator.cli import main

    journal = str(tmp_path / "run.sqlite")
    for op, example in (("target", "0.4ug/mL"), ("bolus", "0.1mg/kg")):
        result = CliRunner().invoke(main, ["ctl", op, "--journal", journal, "--reason", "x"])
        assert result.exit_code == 64 and example in result.output  # usage error
    result = CliRunner().invoke(main, ["ctl", "pause", "0.4ug/mL", "--journal", journal])
    assert result.exit_code == 64 and "takes no quantity" in result.output
    # with a quantity and no run listening: the usual "no run" exit
    result = CliRunner().invoke(
        main, ["ctl", "target", "0.4ug/mL", "--journal", journal, "--reason", "pain"]
    )
    assert result.exit_code == 14
