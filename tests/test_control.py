"""Operator control socket: a real supervisor and a real UNIX socket, on a scaled real clock.

The socket is real I/O, which the virtual clock cannot fast-forward safely, so the run uses
`RealClock(time_scale=3600)` (one simulated hour per wall second): the real NE-1000 driver
against the in-memory NE-1000 emulation. Waits are event-driven; the wall timeouts are safety
nets that never decide pass or fail.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from pumpctl.clock import Clock, RealClock
from pumpctl.dosing.plan import ContainerSpec, Plan, Segment, SegmentPhase, TitrationLimits
from pumpctl.drivers.registry import driver_class
from pumpctl.infusion.journal import EventKind, Journal
from pumpctl.infusion.supervisor import Outcome, Progress, RunResult, Supervisor, SupervisorConfig
from pumpctl.operator.control import (
    CTL_OK,
    CTL_REFUSED,
    CTL_UNREACHABLE,
    MAX_UNIX_PATH_BYTES,
    ControlError,
    ControlServer,
    control_socket_path,
)
from pumpctl.operator.control_client import ctl, send_request
from pumpctl.runner import run_on_simulator
from pumpctl.simulator.devices.base import PumpSnapshot
from pumpctl.simulator.endpoints import InMemoryTransport
from pumpctl.simulator.server import build_emulation

SAFETY_S = 30.0  # wall seconds; only there so a broken build fails instead of hanging
HOUR_S = 3600.0

# Short polls on the scaled clock are a busy loop; these keep the run calm and make the
# reconciliation tolerance irrelevant to what is tested here (the control path).
CONFIG = SupervisorConfig(
    poll_interval_s=30.0,
    watchdog_timeout_s=None,
    max_pause_s=100 * HOUR_S,
    checkpoint_interval_s=600.0,
    deviation_floor_ml=5.0,
)


def ketamine_plan() -> Plan:
    """70 kg, ketamine 1 mg/mL, 0.2 mg/kg/h = 14 mL/h until stopped; steps of 0.1 mg/kg/h."""
    return Plan(
        program="ctl-test",
        program_hash="c" * 64,
        drug="ketamine",
        concentration_mg_per_ml=1.0,
        weight_kg=70.0,
        drug_in_library=True,
        container=ContainerSpec(inner_diameter_mm=26.7, capacity_ml=60.0),
        segments=(
            Segment(
                phase=SegmentPhase.MAINTENANCE,
                rate_ml_per_h=14.0,
                dose_rate=0.2,
                dose_rate_unit="mg/kg/h",
            ),
        ),
        titration=TitrationLimits(
            max_step_ml_per_h=7.0,
            min_interval_s=10 * HOUR_S,  # an immediate second increase is always too early
            max_rate_ml_per_h=70.0,
            ml_per_h_per_dose_unit=70.0,
        ),
    )


class Run:
    """`run_on_simulator` in the background; its supervisor is handed to the test."""

    def __init__(self, journal: Journal) -> None:
        self.clock = RealClock(time_scale=HOUR_S)
        self.journal = journal
        self.path = control_socket_path(journal.path)
        self.in_maintenance = asyncio.Event()
        self.task: asyncio.Task[tuple[RunResult, PumpSnapshot]] | None = None
        self._supervisor: asyncio.Future[Supervisor] = asyncio.get_running_loop().create_future()

    @property
    def supervisor(self) -> Supervisor:
        return self._supervisor.result()

    def _on_progress(self, progress: Progress) -> None:
        if progress.phase == "maintenance":
            self.in_maintenance.set()

    async def _operator(self, sup: Supervisor, clock: Clock) -> None:
        self._supervisor.set_result(sup)
        await asyncio.Event().wait()  # the test is the operator; run_on_simulator cancels this

    async def start(self) -> Supervisor:
        self.task = asyncio.create_task(
            run_on_simulator(
                ketamine_plan(),
                self.clock,
                config=CONFIG,
                journal=self.journal,
                on_progress=self._on_progress,
                operator=self._operator,
            )
        )
        async with self.clock.wall_timeout(SAFETY_S):
            return await self._supervisor

    async def in_maintenance_phase(self) -> None:
        async with self.clock.wall_timeout(SAFETY_S):
            await self.in_maintenance.wait()

    async def request(self, **request: Any) -> dict[str, Any]:
        return await send_request(self.path, request, timeout_s=SAFETY_S)

    async def result(self) -> tuple[RunResult, PumpSnapshot]:
        assert self.task is not None
        async with self.clock.wall_timeout(SAFETY_S):
            return await self.task

    async def abort(self) -> None:
        if self.task is not None and not self.task.done():
            await self.supervisor.stop(reason="test teardown", who="test")
            await self.result()


def idle_supervisor(journal: Journal) -> Supervisor:
    """A supervisor whose run has not started (its pump is never opened)."""
    clock = RealClock()
    transport = InMemoryTransport(build_emulation("ne1000", [0]), clock)
    return Supervisor(driver_class("ne1000")(transport, address=0), ketamine_plan(), clock)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "run.sqlite") as j:
        yield j


@pytest.fixture
async def run(journal: Journal) -> AsyncIterator[Run]:
    r = Run(journal)
    try:
        async with ControlServer(await r.start(), r.path):
            await r.in_maintenance_phase()
            yield r
    finally:
        await r.abort()


# ------------------------------------------------------------------------------ socket path


def test_socket_path_is_next_to_the_journal(tmp_path: Path) -> None:
    assert control_socket_path(tmp_path / "run.sqlite") == (tmp_path / "run.sqlite.ctl").resolve()


def test_socket_path_of_a_relative_journal_is_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert control_socket_path(Path("j.sqlite")) == tmp_path.resolve() / "j.sqlite.ctl"


def test_too_long_socket_path_falls_back_to_a_short_stable_one(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    journal = deep / "run.sqlite"
    path = control_socket_path(journal)
    assert len(os.fsencode(path)) <= MAX_UNIX_PATH_BYTES
    assert path.parent.name == f"pumpctl-{os.getuid()}"
    assert path.suffix == ".ctl"
    assert control_socket_path(journal) == path  # run and ctl derive the same path
    assert control_socket_path(deep / "other.sqlite") != path


# ------------------------------------------------------------------------------ operator session


async def test_operator_session_titrate_pause_resume_stop(run: Run, journal: Journal) -> None:
    mode = os.lstat(run.path).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600

    status = await run.request(op="status")
    assert status["ok"] is True
    assert status["progress"]["phase"] == "maintenance"
    assert status["progress"]["rate_ml_per_h"] == 14.0

    # 0.3 mg/kg/h x 70 kg / 1 mg/mL = 21 mL/h: a 7 mL/h step, within max_step
    up = await run.request(op="titrate", rate="0.3 mg/kg/h", reason="distress", who="alice")
    assert up == {"ok": True, "progress": up["progress"]}
    assert up["progress"]["rate_ml_per_h"] == 21.0
    assert up["progress"]["dose_rate"] == pytest.approx(0.3)

    again = await run.request(op="titrate", rate="0.4 mg/kg/h", reason="still", who="alice")
    assert again["ok"] is False
    assert "titration.min_interval" in again["error"]

    # a decrease bigger than max_step is still allowed and immediate (SR09); 25 mg/h = 25 mL/h
    # would be an increase, 7 mg/h = 7 mL/h is down by 14 mL/h
    down = await run.request(op="titrate", rate="7 mg/h", reason="sedated", who="bob")
    assert down["ok"] is True
    assert down["progress"]["rate_ml_per_h"] == 7.0

    bare = await run.request(op="titrate", rate="7 mL/h", reason="x", who="bob")
    assert bare["ok"] is False
    assert "SR04" in bare["error"]

    paused = await run.request(op="pause", reason="line check", who="carol")
    assert paused["ok"] is True
    assert paused["progress"]["phase"] == "paused"
    assert paused["progress"]["rate_ml_per_h"] == 0.0

    refused = await run.request(op="pause", reason="twice", who="carol")
    assert refused["ok"] is False
    assert "cannot pause in phase paused" in refused["error"]

    resumed = await run.request(op="resume", who="carol")
    assert resumed["ok"] is True
    assert resumed["progress"]["phase"] == "maintenance"
    assert resumed["progress"]["rate_ml_per_h"] == 7.0

    stopped = await run.request(op="stop", reason="end of procedure", who="carol")
    assert stopped["ok"] is True
    result, truth = await run.result()
    assert result.outcome is Outcome.STOPPED
    assert truth.running is False  # the emulated pump really stopped

    assert run.supervisor.run_id is not None
    titrations = [
        e.payload for e in journal.events(run.supervisor.run_id, kinds=[EventKind.TITRATION])
    ]
    assert [
        (t["accepted"], t["old_ml_per_h"], t["new_ml_per_h"], t["reason"], t["who"])
        for t in titrations
    ] == [
        (True, 14.0, 21.0, "distress", "alice"),
        (False, 21.0, 28.0, "still", "alice"),
        (True, 21.0, 7.0, "sedated", "bob"),
    ]
    transitions = [
        (e.payload["trigger"], e.payload["info"].get("who"))
        for e in journal.events(run.supervisor.run_id, kinds=[EventKind.TRANSITION])
        if e.payload["trigger"] in ("pause", "resume")
    ]
    assert transitions == [("pause", "carol"), ("resume", "carol")]
    stops = [
        e.payload
        for e in journal.events(run.supervisor.run_id, kinds=[EventKind.NOTE])
        if e.payload.get("event") == "stop_requested"
    ]
    assert stops == [{"event": "stop_requested", "reason": "end of procedure", "who": "carol"}]


async def test_request_after_the_run_ended_is_refused(run: Run) -> None:
    assert (await run.request(op="stop", reason="done", who="t"))["ok"] is True
    await run.result()
    late = await run.request(op="pause", reason="late", who="t")
    assert late["ok"] is False
    status = await run.request(op="status")
    assert status["ok"] is True
    assert status["progress"]["phase"] == "stopped"


async def test_who_defaults_to_the_local_user(run: Run, journal: Journal) -> None:
    reply = await run.request(op="titrate", rate="0.25 mg/kg/h", reason="pain")
    assert reply["ok"] is True
    assert run.supervisor.run_id is not None
    (event,) = journal.events(run.supervisor.run_id, kinds=[EventKind.TITRATION])
    assert event.payload["who"] == getpass.getuser()


# ------------------------------------------------------------------------------ bad requests


async def _raw(path: Path, *lines: bytes) -> list[dict[str, Any]]:
    """Send raw lines on one connection and read one reply per line."""
    async with RealClock().wall_timeout(SAFETY_S):
        reader, writer = await asyncio.open_unix_connection(os.fspath(path))
        replies = []
        for line in lines:
            writer.write(line)
            await writer.drain()
            replies.append(json.loads(await reader.readline()))
        writer.close()
        await writer.wait_closed()
    return replies


async def test_malformed_requests_get_errors_and_the_server_keeps_serving(run: Run) -> None:
    replies = await _raw(
        run.path,
        b"{not json\n",
        b"[1, 2]\n",
        b'{"op": "explode"}\n',
        b'{"op": "pause", "typo": 1}\n',
        b'{"op": "titrate", "rate": 21, "reason": "number without unit"}\n',
        b'{"op": "titrate", "rate": "0.3 mg/kg/h", "reason": "   "}\n',
        b'{"op": "titrate", "reason": "no rate"}\n',
        b'{"op": "titrate", "rate": "fast", "reason": "nonsense"}\n',
        b'{"op": "pause", "rate": "1 mg/h"}\n',
        b"\xff\xfe\n",
        b'{"op": "status"}\n',
    )
    errors = [r.get("error", "") for r in replies[:-1]]
    assert all(r["ok"] is False for r in replies[:-1])
    assert errors[0].startswith("malformed request")
    assert errors[1].startswith("bad request")
    assert "op" in errors[2]
    assert "typo" in errors[3]
    assert "rate" in errors[4]
    assert errors[5] == "titrate needs a reason (SR10)"
    assert errors[6].startswith("titrate needs a rate")
    # one field prefix, not `rate 'fast' refused: rate: rate: ...` (issue 12)
    assert errors[7].startswith("rate: 'fast' is not a rate in mg/kg/h, mg/h or mL/h (")
    assert errors[7].count("rate:") == 1
    assert errors[8] == "pause takes no rate"
    assert errors[9].startswith("malformed request")
    assert replies[-1]["ok"] is True
    assert replies[-1]["progress"]["phase"] == "maintenance"
    assert replies[-1]["progress"]["rate_ml_per_h"] == 14.0  # nothing above changed anything


async def test_oversized_request_is_refused(run: Run) -> None:
    (reply,) = await _raw(run.path, b'{"op": "status", "reason": "' + b"x" * 70_000 + b'"}\n')
    assert reply["ok"] is False
    assert "longer than" in reply["error"]
    assert (await run.request(op="status"))["ok"] is True


# ------------------------------------------------------------------------------ server lifecycle


async def test_no_server_gives_a_clear_error(tmp_path: Path) -> None:
    path = control_socket_path(tmp_path / "run.sqlite")
    with pytest.raises(ControlError, match="no run is listening on"):
        await send_request(path, {"op": "status"}, timeout_s=SAFETY_S)
    code, text = await asyncio.to_thread(ctl, tmp_path / "run.sqlite", "status")
    assert code == CTL_UNREACHABLE
    assert text == f"error: no run is listening on {path} (is `pumpctl run` running?)"


async def test_ctl_prints_status_and_refusals(run: Run, journal: Journal) -> None:
    code, text = await asyncio.to_thread(ctl, journal.path, "status")
    assert code == CTL_OK
    assert text.splitlines()[0] == "phase     maintenance (segment maintenance)"
    assert text.splitlines()[1] == "rate      14.000 mL/h (0.2 mg/kg/h)"
    assert text.splitlines()[-1] == "alarms    none"
    code, text = await asyncio.to_thread(
        ctl, journal.path, "titrate", rate="0.3mg/kg/h", reason="distress", who="alice"
    )
    assert code == CTL_OK
    assert text.splitlines()[:3] == [
        "titration accepted",
        "phase     maintenance (segment maintenance)",
        "rate      21.000 mL/h (0.3 mg/kg/h)",
    ]
    code, text = await asyncio.to_thread(ctl, journal.path, "resume")
    assert code == CTL_REFUSED
    assert text == "refused: cannot resume in phase maintenance"


async def test_second_server_on_a_live_socket_is_refused(run: Run) -> None:
    with pytest.raises(ControlError, match="already listening"):
        await ControlServer(run.supervisor, run.path).start()
    assert (await run.request(op="status"))["ok"] is True  # the first one is untouched


async def test_stale_socket_file_is_replaced_and_removed_on_close(
    tmp_path: Path, journal: Journal
) -> None:
    path = control_socket_path(journal.path)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(os.fspath(path))
    dead.close()  # the file stays: a crashed run leaves exactly this behind
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    sup = idle_supervisor(journal)
    async with ControlServer(sup, path):
        reply = await send_request(path, {"op": "pause", "reason": "early"}, timeout_s=SAFETY_S)
        assert reply == {"ok": False, "error": "the run has not started"}
    assert not path.exists()


async def test_a_regular_file_on_the_socket_path_is_not_replaced(
    tmp_path: Path, journal: Journal
) -> None:
    path = control_socket_path(journal.path)
    path.write_text("precious")
    sup = idle_supervisor(journal)
    with pytest.raises(ControlError, match="not a socket"):
        await ControlServer(sup, path).start()
    assert path.read_text() == "precious"


async def test_fallback_directory_is_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="rt") as runtime, Journal(deep / "run.sqlite") as j:
        monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)  # short, whatever pytest's tmp path is
        path = control_socket_path(j.path)
        assert path.parent == Path(runtime) / f"pumpctl-{os.getuid()}"
        sup = idle_supervisor(j)
        async with ControlServer(sup, path):
            assert stat.S_IMODE(os.lstat(path.parent).st_mode) == 0o700
            reply = await send_request(path, {"op": "status"}, timeout_s=SAFETY_S)
            assert reply["ok"] is True
        path.parent.chmod(0o755)
        with pytest.raises(ControlError, match="not a private directory"):
            await send_request(path, {"op": "status"}, timeout_s=SAFETY_S)
