"""A SiLA 2 client changes a TCI target and gives clinician boluses on a simulated station.

The sila2 client against the station's server over TLS on localhost, as `test_sila.py`: an
accepted target is journaled with who and why; a too-early increase and a too-high target are
typed errors naming the limit, and change nothing; a bolus is given, a second one inside the
lockout is refused. The server is real I/O, which the virtual clock cannot fast-forward safely
(see `test_control.py`), so the station runs on a clock 60 times faster than wall time: the
refusals rest on margins of 11 wall seconds or more (the 15-min titration interval, the 10-min
lockout after a 1-min bolus) against calls of milliseconds; the exact simulated times are
checked on the virtual clock in `test_station_pk.py`. Waits poll for conditions with deadlines.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import pumpctl.station.sila  # noqa: F401  (sila2 first: it picks the protobuf runtime)
from pumpctl.infusion.journal import Journal
from pumpctl.station.service import SilaOptions, StationHost
from pumpctl.station.spec import load_station_text
from pumpctl.station.station import station_config

from .test_sila import wait_for
from .test_station_pk import BOLUS_PROGRAM, TCI_PROGRAM

TIME_SCALE = 60.0  # simulated seconds per wall second
ROOT = Path(__file__).resolve().parents[1]
SYRINGE = "container: {syringe: {inner_diameter: 26.7 mm, volume: 60 mL}}"
STATION = f"""
station: sila-pk
pumps:
  tci:   {{model: ne1000, port: sim://ne1000, address: 0, journal: tci.sqlite, {SYRINGE}}}
  bolus: {{model: ne1000, port: sim://ne1000, address: 1, journal: bolus.sqlite, {SYRINGE}}}
"""
WHO = "SiLA client"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StationHost]:
    with StationHost(
        load_station_text(STATION, ROOT / "examples"),
        sila=SilaOptions(host="127.0.0.1", port=0, discovery=False),
        time_scale=TIME_SCALE,
        config=station_config(TIME_SCALE, poll_s=1.0),
        cwd=tmp_path_factory.mktemp("station"),
    ) as running:
        yield running


@pytest.fixture(scope="module")
def client(host: StationHost) -> Iterator[Any]:
    from sila2.client import SilaClient

    endpoint = host.endpoint
    with SilaClient("127.0.0.1", endpoint.port, root_certs=endpoint.certificate_pem) as c:
        yield c


def start(host: StationHost, client: Any, name: str, program: str, phase: str) -> Any:
    """RunProgram on pump `name`, once it runs `phase`: (the command, the PumpName metadata)."""
    meta = [client.StationService.PumpName(name)]
    run = client.InfusionProgramService.RunProgram(program, [], "", metadata=meta)
    station = host.station
    assert station is not None
    wait_for(lambda: station.pumps[name].state().phase == phase, f"{name} to run {phase}")
    return run, meta


def stop(client: Any, run: Any, meta: list[Any]) -> Any:
    client.InfusionProgramService.Stop("test over", metadata=meta)
    wait_for(lambda: run.done, "the run to end")
    return run.get_responses()


def refusal(call: Callable[[], Any]) -> tuple[str, str]:
    from sila2.framework import DefinedExecutionError

    with pytest.raises(DefinedExecutionError) as info:
        call()
    return info.value.identifier, info.value.message


def notes(host: StationHost, name: str, run_id: str, event: str) -> list[dict[str, Any]]:
    assert host.station is not None
    with Journal(host.station.pumps[name].journal_path) as journal:
        return [e.payload for e in journal.events(run_id) if e.payload.get("event") == event]


def test_target_is_accepted_journaled_and_refused_past_its_limits(
    host: StationHost, client: Any
) -> None:
    service = client.InfusionProgramService
    run, meta = start(host, client, "tci", TCI_PROGRAM, "tci")
    accepted = service.SetTarget("0.35 ug/mL", "pain score 6/10", metadata=meta)
    soon = refusal(lambda: service.SetTarget("0.45 ug/mL", "still pain", metadata=meta))
    high = refusal(lambda: service.SetTarget("0.9 ug/mL", "still pain", metadata=meta))
    unit = refusal(lambda: service.SetTarget("0.4 mg/kg", "still pain", metadata=meta))
    no_bolus = refusal(lambda: service.Bolus("0.1 mg/kg", "pain", metadata=meta))
    assert host.station is not None
    sup = host.station.pumps["tci"].supervisor
    assert sup is not None and sup.pk.target == pytest.approx(0.35)  # refusals changed nothing
    result = stop(client, run, meta)

    assert accepted.AcceptedTarget == pytest.approx(0.35)
    assert soon[0] == "TargetRefused"
    interval = json.loads(soon[1])
    assert (interval["field"], interval["name"], interval["limit"], interval["unit"]) == (
        "target",
        "min_interval",
        900.0,
        "s",
    )
    assert "wait" in interval["message"]
    assert high[0] == "TargetRefused"
    ceiling = json.loads(high[1])
    assert (ceiling["name"], ceiling["value"], ceiling["limit"], ceiling["unit"]) == (
        "max_target",
        0.9,
        0.6,
        "ug/mL",
    )
    assert "0-0.6 ug/mL" in ceiling["message"]
    assert unit[0] == "RequestRefused" and unit[1].startswith("target:")
    assert no_bolus == ("RequestRefused", "no bolus in phase tci")
    assert result.Outcome == "stopped"
    changes = notes(host, "tci", result.RunId, "tci_target")
    assert [(c["accepted"], c["new_ug_per_ml"], c["who"]) for c in changes] == [
        (True, 0.35, WHO),
        (False, 0.45, WHO),
        (False, 0.9, WHO),
    ]
    assert changes[0]["reason"] == "pain score 6/10"


def test_bolus_is_given_and_a_second_inside_the_lockout_is_refused(
    host: StationHost, client: Any
) -> None:
    service = client.InfusionProgramService
    run, meta = start(host, client, "bolus", BOLUS_PROGRAM, "maintenance")
    given = service.Bolus("0.1 mg/kg", "breakthrough pain", metadata=meta)
    again = refusal(lambda: service.Bolus("7 mg", "still pain", metadata=meta))
    target = refusal(lambda: service.SetTarget("0.3 ug/mL", "pain", metadata=meta))
    assert host.station is not None
    pump = host.station.pumps["bolus"]
    state = pump.state
    # 1 simulated minute at basal + bolus rate, then back to the basal 7 mL/h
    wait_for(lambda: state().delivered_ml > 3.5 and state().rate_ml_per_h < 8, "the bolus to be in")
    result = stop(client, run, meta)

    assert given.AcceptedDose == pytest.approx(7.0)  # 0.1 mg/kg of 70 kg
    assert again[0] == "BolusRefused"
    lockout = json.loads(again[1])
    assert (lockout["field"], lockout["name"], lockout["limit"], lockout["unit"]) == (
        "bolus",
        "lockout",
        600.0,
        "s",
    )
    assert 0.0 <= lockout["value"] < 600.0  # seconds into the lockout, never negative
    assert 600.0 < lockout["next_allowed_in_s"] <= 660.0  # from the bolus's end, 1 min on
    assert "lockout 10 min" in lockout["message"]
    assert target[0] == "RequestRefused" and "no TCI phase" in target[1]
    # the pump's counter has the bolus on top of the basal (7 mL/h)
    assert result.Outcome == "stopped" and result.DeliveredVolume > 3.5
    truth = host.station.ground_truth("bolus")
    assert truth is not None and truth.delivered_ml == pytest.approx(
        result.DeliveredVolume,
        abs=0.003,  # to the counter's step, as in test_tci_run.py
    )
    boluses = notes(host, "bolus", result.RunId, "bolus")
    assert [(b["accepted"], b["dose_mg"], b["who"]) for b in boluses] == [
        (True, 7.0, WHO),
        (False, 7.0, WHO),
    ]
    assert boluses[0]["reason"] == "breakthrough pain"


def test_target_and_bolus_need_the_lock_and_a_run(host: StationHost, client: Any) -> None:
    from sila2.client import SilaClient
    from sila2.framework import InvalidMetadata

    service = client.InfusionProgramService
    meta = [client.StationService.PumpName("tci")]
    assert refusal(lambda: service.SetTarget("0.3 ug/mL", "x", metadata=meta))[0] == "NotRunning"
    assert refusal(lambda: service.Bolus("7 mg", "x", metadata=meta))[0] == "NotRunning"
    token = str(uuid.uuid4())
    client.LockController.LockServer(token, 60)
    try:
        endpoint = host.endpoint
        with SilaClient("127.0.0.1", endpoint.port, root_certs=endpoint.certificate_pem) as other:
            other_meta = [other.StationService.PumpName("tci")]
            with pytest.raises(InvalidMetadata, match="LockIdentifier"):
                other.InfusionProgramService.SetTarget("0.3 ug/mL", "x", metadata=other_meta)
            with pytest.raises(InvalidMetadata, match="LockIdentifier"):
                other.InfusionProgramService.Bolus("7 mg", "x", metadata=other_meta)
    finally:
        client.LockController.UnlockServer(token)
