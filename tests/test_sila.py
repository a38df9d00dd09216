"""A SiLA 2 orchestrator drives a simulated station end to end, over TLS on localhost.

The sila2 client locks the station, runs a program on two pumps at once, titrates one while the
other stalls (fault injection): the stalled one alarms and stops, the other completes. A client
without the lock is refused; a refused program is a typed error naming field, value and limit;
plain doses go through the same check and supervisor. Real clock, programs of seconds, polls
every 0.25 s; waits poll for conditions with deadlines, nothing is timed.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # TLS handshakes of refused clients: quiet

import pumpctl.station.sila  # noqa: F401  (sila2 first: it picks the protobuf runtime)
from pumpctl.clock import RealClock, wall_monotonic
from pumpctl.infusion.journal import Journal
from pumpctl.station.service import SilaOptions, StationHost
from pumpctl.station.spec import load_station_text
from pumpctl.station.station import station_config

pytestmark = pytest.mark.slow
SAFETY_S = 20.0  # a deadline for conditions; reaching it fails the test

ROOT = Path(__file__).resolve().parents[1]
SYRINGE = "container: {syringe: {inner_diameter: 26.7 mm, volume: 60 mL}}"
STATION = f"""
station: sila-test
pumps:
  left:  {{model: ne1000, port: sim://ne1000, address: 0, journal: left.sqlite, {SYRINGE}}}
  right: {{model: ne1000, port: sim://ne1000, address: 1, journal: right.sqlite, {SYRINGE}}}
  bench: {{model: harvard-elite, port: sim://harvard-elite, journal: bench.sqlite, {SYRINGE}}}
"""
# 0.4 mL prime at 720 mL/h (2 s), then 2 s of maintenance at 0.2 mg/kg/h: titratable
PROGRAM = """
program: sila-short
drug: {name: ketamine, concentration: 2 mg/mL}
patient: {weight: 70 kg, care_area: adult}
pump: {syringe: {inner_diameter: 26.7 mm, volume: 60 mL}}
phases:
  prime: {volume: 0.4 mL, rate: 720 mL/h}
  maintenance: {rate: 0.2 mg/kg/h, duration: 2 s}
titration: {max_step: 0.1 mg/kg/h, min_interval: 15 min}
"""


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    deadline = wall_monotonic() + SAFETY_S
    while wall_monotonic() < deadline:
        value = condition()
        if value:
            return value
        threading.Event().wait(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StationHost]:
    folder = tmp_path_factory.mktemp("station")
    spec = load_station_text(STATION, ROOT / "examples")
    with StationHost(
        spec,
        sila=SilaOptions(host="127.0.0.1", port=0, discovery=False),
        faults={"right": ["stall@0.5s"]},  # occluded from half a second after the port opened
        config=station_config(RealClock().time_scale, poll_s=0.25),
        cwd=folder,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def client(host: StationHost) -> Iterator[Any]:
    from sila2.client import SilaClient

    endpoint = host.endpoint
    assert endpoint.certificate_pem is not None  # TLS is the default
    with SilaClient("127.0.0.1", endpoint.port, root_certs=endpoint.certificate_pem) as c:
        yield c


def pump(client: Any, name: str) -> Any:
    return client.StationService.PumpName(name)


def finished(instance: Any) -> Any:
    wait_for(lambda: instance.done, "the command to finish")
    return instance


def test_orchestrator_locks_runs_two_pumps_titrates_one_and_the_other_stalls(
    host: StationHost, client: Any
) -> None:
    from sila2.client import SilaClient
    from sila2.framework import DefinedExecutionError, InvalidMetadata

    token = str(uuid.uuid4())
    client.LockController.LockServer(token, 60)
    lock = client.LockController.LockIdentifier(token)
    try:
        left = client.InfusionProgramService.RunProgram(
            PROGRAM, [], "", metadata=[lock, pump(client, "left")]
        )
        right = client.InfusionProgramService.RunProgram(
            PROGRAM, [], "", metadata=[lock, pump(client, "right")]
        )
        seen: list[Any] = []
        titrated = None
        for update in left.subscribe_to_intermediate_responses():
            seen.append(update)
            if update.Phase == "maintenance" and titrated is None:
                titrated = client.InfusionProgramService.Titrate(
                    "0.25 mg/kg/h", "pain score 6/10", metadata=[lock, pump(client, "left")]
                )
        # a client without the lock is refused before anything runs; one with a wrong lock too
        with SilaClient(
            "127.0.0.1", host.endpoint.port, root_certs=host.endpoint.certificate_pem
        ) as other:
            with pytest.raises(InvalidMetadata, match="LockIdentifier"):
                other.InfusionProgramService.RunProgram(
                    PROGRAM, [], "", metadata=[pump(other, "bench")]
                )
            wrong = other.LockController.LockIdentifier("not-the-token")
            with pytest.raises(DefinedExecutionError, match="InvalidLockIdentifier"):
                other.InfusionProgramService.Pause("", metadata=[wrong, pump(other, "left")])
            # an emergency stop never waits for the lock (the pump is idle: a no-op stop)
            other.InfusionProgramService.Stop("drill", metadata=[pump(other, "bench")])
        left_result = finished(left).get_responses()
        right_result = finished(right).get_responses()
    finally:
        client.LockController.UnlockServer(token)

    assert titrated is not None and titrated.FlowRate == pytest.approx(8.75)  # 0.25 mg/kg/h
    phases = [u.Phase for u in seen]
    assert "priming" in phases and "maintenance" in phases
    assert any(u.DoseRate == "0.25 mg/kg/h" and u.FlowRate == pytest.approx(8.75) for u in seen)
    # [plasma, effect site] from the pump's reported volumes (ketamine, adult: Domino)
    predicted = [u.PredictedConcentration for u in seen if u.Phase == "maintenance"]
    # [plasma, effect site]: from zero at the start of maintenance (no loading dose), rising
    assert predicted and all(len(c) == 2 and min(c) >= 0 for c in predicted)
    assert predicted[-1][0] > predicted[0][0] and predicted[-1][1] > 0
    assert left_result.Outcome == "completed" and left_result.Alarm == ""
    assert right_result.Outcome == "alarm" and right_result.Alarm == "stall"
    assert right_result.DeliveredVolume < 0.4  # stalled during its prime
    station = host.station
    assert station is not None
    truth = station.ground_truth("left")
    assert truth is not None and truth.delivered_ml == pytest.approx(
        left_result.DeliveredVolume, abs=1e-3
    )
    right_truth = station.ground_truth("right")
    assert right_truth is not None and not right_truth.running  # safe-stopped, confirmed
    phase = client.InfusionProgramService.Phase.subscribe(metadata=[pump(client, "right")])
    assert next(iter(phase)) == "alarm"  # stays visible after the run (SR34)
    phase.cancel()
    with Journal(station.pumps["left"].journal_path) as journal:
        titrations = [e for e in journal.events(left_result.RunId) if e.kind.value == "titration"]
    assert titrations and titrations[0].payload["who"] == "SiLA client"


def test_refused_program_is_a_typed_error_naming_field_value_and_limit(
    host: StationHost, client: Any
) -> None:
    from sila2.framework import DefinedExecutionError

    station = host.station
    assert station is not None
    with Journal(station.pumps["bench"].journal_path) as journal:
        runs_before = len(journal.runs())
    instance = client.InfusionProgramService.RunProgram(
        "rejected-loading", [], "", metadata=[pump(client, "bench")]
    )
    with pytest.raises(DefinedExecutionError) as info:
        finished(instance).get_responses()
    assert info.value.identifier == "ProgramRefused"
    refused = json.loads(info.value.message)
    assert refused["exit_code"] == 1
    dose = next(v for v in refused["violations"] if v["field"] == "phases.loading.dose")
    assert (dose["value"], dose["limit"], dose["unit"], dose["severity"]) == (
        5.0,
        1.0,
        "mg/kg",
        "hard",
    )
    with Journal(station.pumps["bench"].journal_path) as journal:
        assert len(journal.runs()) == runs_before  # SR01: nothing reached the pump
    bench = [pump(client, "bench")]
    checked = client.InfusionProgramService.CheckProgram("rejected-loading", [], metadata=bench)
    assert checked.ExitCode == 1
    assert {v.Field for v in checked.Violations} >= {"phases.loading.dose", "phases.loading.over"}
    # the soft limit alone, overridden with a reason, is what a caller may accept: not the rest
    override = {"Field": "phases.loading.over", "Reason": "test"}
    again = client.InfusionProgramService.CheckProgram(
        "rejected-loading", [override], metadata=bench
    )
    assert again.ExitCode == 1


def test_plain_dose_is_checked_supervised_and_observed(host: StationHost, client: Any) -> None:
    from sila2.framework import DefinedExecutionError

    dosing = client.PumpFluidDosingService
    bench = [pump(client, "bench")]
    levels: list[float] = []
    subscription = dosing.SyringeFillLevel.subscribe(metadata=bench)
    subscription.add_callback(levels.append)
    try:
        wait_for(lambda: levels, "the first fill level")
        start_ml = levels[0]
        finished(dosing.DoseVolume(0.1, 360.0, metadata=bench)).get_responses()
        wait_for(lambda: levels[-1] == pytest.approx(start_ml - 0.1, abs=1e-3), "the new level")
    finally:
        subscription.cancel()
    assert len(set(levels)) >= 2  # it moved while dosing, not only at the end
    station = host.station
    assert station is not None
    truth = station.ground_truth("bench")
    assert truth is not None and truth.delivered_ml == pytest.approx(0.1, abs=1e-3)
    max_rate = dosing.MaxFlowRate.subscribe(metadata=bench)
    limit = next(iter(max_rate))
    max_rate.cancel()
    for volume, rate, error in (
        (0.1, limit * 2, "FlowRateOutOfRange"),
        (1e4, 60.0, "DosingRefused"),
    ):
        with pytest.raises(DefinedExecutionError) as info:
            finished(dosing.DoseVolume(volume, rate, metadata=bench)).get_responses()
        assert info.value.identifier == error
        assert json.loads(info.value.message)["limit"] is not None


def test_flow_ends_with_stop_dosage_and_a_cancelled_dose_stops_the_pump(
    host: StationHost, client: Any
) -> None:
    from sila2.framework import UndefinedExecutionError

    dosing = client.PumpFluidDosingService
    bench = [pump(client, "bench")]
    station = host.station
    assert station is not None
    flow = dosing.GenerateFlow(120.0, metadata=bench)
    wait_for(lambda: station.pumps["bench"].state().rate_ml_per_h > 0, "the flow to start")
    dosing.StopDosage(metadata=bench)
    finished(flow).get_responses()  # StopDosage is how a flow ends: no error
    dose = dosing.DoseVolume(1.0, 60.0, metadata=bench)
    wait_for(lambda: station.pumps["bench"].state().rate_ml_per_h > 0, "the dose to start")
    client.CancelController.CancelCommand(str(dose.execution_uuid))
    with pytest.raises(UndefinedExecutionError, match="stopped"):
        finished(dose).get_responses()
    truth = station.ground_truth("bench")
    assert truth is not None and not truth.running


def test_simulation_controller_and_unknown_pumps(host: StationHost, client: Any) -> None:
    from sila2.framework import DefinedExecutionError

    assert client.SimulationController.SimulationMode.get() is True
    with pytest.raises(DefinedExecutionError, match="StartRealModeFailed"):
        client.SimulationController.StartRealMode()  # every port here is sim://
    assert client.StationService.PumpNames.get() == ["left", "right", "bench"]
    with pytest.raises(DefinedExecutionError, match="UnknownPump"):
        client.InfusionProgramService.Pause("", metadata=[pump(client, "nowhere")])
