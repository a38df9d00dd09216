"""A station pump takes TCI target changes and clinician boluses as `pumpctl ctl` does.

On the virtual clock, against the NE-1000 emulation: the text grammar of `ctl target` / `ctl
bolus`, the supervisor's limits (the range, step and interval of a target; the bolus lockout)
as typed refusals naming the limit, and nothing changed by a refusal. The timing rules are
checked at exact simulated times.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pumpctl.clock import Clock, RealClock
from pumpctl.dosing.plan import Plan
from pumpctl.infusion.journal import Journal
from pumpctl.infusion.pk_refusals import BolusRefused, TargetRefused
from pumpctl.infusion.supervisor import SupervisorError
from pumpctl.station.pump import NotRunning, StationPump
from pumpctl.station.spec import StationSpec, load_station_text
from pumpctl.station.station import Station

from .conftest import run_virtual

ROOT = Path(__file__).resolve().parents[1]
SYRINGE = "container: {syringe: {inner_diameter: 26.7 mm, volume: 60 mL}}"
# 70 kg, 2 mg/mL: 0.1 mg/kg = 7 mg = 3.5 mL over 1 min; 10 min lockout from the bolus's end
BOLUS_PROGRAM = """
program: station-bolus
drug: {name: ketamine, concentration: 2 mg/mL}
patient: {weight: 70 kg, care_area: adult}
pump: {syringe: {inner_diameter: 26.7 mm, volume: 60 mL}}
phases:
  maintenance: {rate: 0.2 mg/kg/h, duration: 2 h}
bolus: {dose: 0.1 mg/kg, over: 1 min, lockout: 10 min, max_per_hour: 2, max_per_4h: 0.4 mg/kg}
"""
# the packaged example: TCI up to 0.6 ug/mL in steps of 0.1, increases 15 min apart
TCI_PROGRAM = "ketamine-tci"


def one_pump() -> StationSpec:
    return load_station_text(
        "station: pk\npumps:\n"
        f"  a: {{model: ne1000, port: sim://ne1000, journal: a.sqlite, {SYRINGE}}}\n",
        ROOT / "examples",
    )


def on_station(
    tmp_path: Path, source: str, body: Callable[[StationPump, Clock], Awaitable[Any]]
) -> Any:
    """Run `source` on pump a and `body(pump, clock)` once its dosing phase runs; then stop."""
    spec = one_pump()
    plan: Plan = Station(spec, RealClock(), cwd=tmp_path).checked(source, pump="a")
    dosing = plan.segments[-1].phase.value

    async def main(clock: Clock) -> Any:
        station = Station(spec, clock, cwd=tmp_path)
        await station.open()
        pump = station.pumps["a"]
        try:
            watch = await station.start("a", plan, who="test")
            while pump.state().phase != dosing and not watch.done:
                await clock.sleep(1.0)
            return await body(pump, clock)
        finally:
            await pump.shutdown("test over")
            await station.close()

    return run_virtual(main)


def notes(tmp_path: Path, event: str) -> list[dict[str, Any]]:
    with Journal(tmp_path / "a.sqlite") as journal:
        run = journal.latest_run()
        assert run is not None
        return [e.payload for e in journal.events(run.run_id) if e.payload.get("event") == event]


def test_target_changes_follow_range_step_and_interval(tmp_path: Path) -> None:
    async def body(pump: StationPump, clock: Clock) -> dict[str, Any]:
        sup = pump.supervisor
        assert sup is not None
        out: dict[str, Any] = {}
        out["accepted"] = await pump.set_target("0.35 ug/mL", reason="pain 6/10", who="dr-a")
        for key, text in (("soon", "0.45ug/mL"), ("high", "0.9 ug/mL")):
            with pytest.raises(TargetRefused) as info:
                await pump.set_target(text, reason="still pain", who="dr-a")
            out[key] = info.value
        out["target_after_refusals"] = sup.pk.target
        for text, reason, match in (
            ("0.4 mg/kg", "x", "target"),  # the wrong kind of quantity names its field
            ("0.4 ug/mL", "", "needs a reason"),
        ):
            with pytest.raises(SupervisorError, match=match):
                await pump.set_target(text, reason=reason, who="dr-a")
        with pytest.raises(SupervisorError, match="no bolus in phase tci"):
            await pump.bolus("0.1 mg/kg", reason="pain", who="dr-a")  # in TCI: raise the target
        await clock.sleep(15 * 60)  # the interval since the last increase has passed
        out["later"] = await pump.set_target("0.45 ug/mL", reason="still pain", who="dr-b")
        return out

    out = on_station(tmp_path, TCI_PROGRAM, body)
    assert out["accepted"] == pytest.approx(0.35) and out["later"] == pytest.approx(0.45)
    soon, high = out["soon"], out["high"]
    assert (soon.field, soon.name, soon.limit, soon.unit) == ("target", "min_interval", 900.0, "s")
    assert soon.value == pytest.approx(0.0) and "wait 900 s" in str(soon)
    assert (high.name, high.value, high.limit, high.unit) == ("max_target", 0.9, 0.6, "ug/mL")
    assert out["target_after_refusals"] == pytest.approx(0.35)  # a refusal changes nothing
    changes = notes(tmp_path, "tci_target")
    assert [(c["accepted"], c["new_ug_per_ml"], c["who"]) for c in changes] == [
        (True, 0.35, "dr-a"),
        (False, 0.45, "dr-a"),
        (False, 0.9, "dr-a"),
        (True, 0.45, "dr-b"),
    ]
    assert changes[0]["reason"] == "pain 6/10" and "0-0.6 ug/mL" in changes[2]["error"]


def test_bolus_is_given_and_a_second_inside_the_lockout_is_refused(tmp_path: Path) -> None:
    async def body(pump: StationPump, clock: Clock) -> dict[str, Any]:
        out: dict[str, Any] = {"before_ml": pump.state().delivered_ml}
        out["given_mg"] = await pump.bolus("0.1 mg/kg", reason="breakthrough pain", who="dr-a")
        await clock.sleep(5 * 60)  # the bolus (1 min) is in; 4 min into the lockout
        out["after_ml"] = pump.state().delivered_ml
        with pytest.raises(BolusRefused) as info:
            await pump.bolus("7 mg", reason="still pain", who="dr-a")
        out["refused"] = info.value
        with pytest.raises(SupervisorError, match="no TCI phase"):
            await pump.set_target("0.3 ug/mL", reason="x", who="dr-a")
        return out

    out = on_station(tmp_path, BOLUS_PROGRAM, body)
    assert out["given_mg"] == pytest.approx(7.0)
    # 5 min of basal (7 mL/h) and the 3.5 mL bolus, by the pump's own counter
    assert out["after_ml"] - out["before_ml"] == pytest.approx(3.5 + 7.0 * 5 / 60, abs=0.01)
    refused = out["refused"]
    assert (refused.field, refused.name, refused.limit, refused.unit) == (
        "bolus",
        "lockout",
        600.0,
        "s",
    )
    assert refused.value == pytest.approx(240.0)  # 4 min since the bolus ended
    assert refused.next_allowed_in_s == pytest.approx(360.0)
    assert "lockout 10 min" in str(refused)
    boluses = notes(tmp_path, "bolus")
    assert [(b["accepted"], b["dose_mg"], b["who"]) for b in boluses] == [
        (True, 7.0, "dr-a"),
        (False, 7.0, "dr-a"),
    ]
    assert boluses[0]["reason"] == "breakthrough pain"


def test_target_and_bolus_need_a_run(tmp_path: Path) -> None:
    async def main(clock: Clock) -> None:
        station = Station(one_pump(), clock, cwd=tmp_path)
        await station.open()
        try:
            with pytest.raises(NotRunning):
                await station.pumps["a"].set_target("0.3 ug/mL", reason="x", who="t")
            with pytest.raises(NotRunning):
                await station.pumps["a"].bolus("7 mg", reason="x", who="t")
        finally:
            await station.close()

    run_virtual(main)
