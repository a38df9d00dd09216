"""Finding the pump for a run (issue 12): a missing port, a silent port, the wrong model and
the wrong baud rate each end in their own one-line error naming port, line settings and model,
and what to try; `pumpctl run` leaves no journal behind when the pump cannot be reached; and a
Ctrl-C while an alarm's stop is under way keeps the alarm's outcome.

Classification runs on the virtual clock against the in-memory emulations (the same driver code
as on a serial line); one test drives `pumpctl run` against a silent pty end to end.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pty
from pathlib import Path

import pytest
from click.testing import CliRunner

from pumpctl.clock import Clock
from pumpctl.dosing.plan import SegmentPhase
from pumpctl.drivers.transport import Transport
from pumpctl.infusion.machine import Phase
from pumpctl.infusion.outcome import Outcome
from pumpctl.operator.cli import main
from pumpctl.operator.cli.common import Exit, exit_code
from pumpctl.operator.connect import (
    NoReply,
    PortUnavailable,
    TransportFactory,
    WrongPump,
    connect,
    probe_port,
)
from pumpctl.operator.models import model_info, pump_models
from pumpctl.operator.session import RunSettings, StopOnSignal, run_session
from pumpctl.simulator.endpoints import InMemoryTransport
from pumpctl.simulator.faults import FaultSchedule
from pumpctl.simulator.server import build_emulation

from .conftest import make_plan, run_virtual, segment

MODELS = [m.model for m in pump_models()]
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def pump_on_the_line(sim_model: str, *faults: str) -> TransportFactory:
    """Every transport the code opens reaches one emulated `sim_model` pump; the emulation
    garbles what a client at another baud rate sends, as a UART would."""
    emulation = build_emulation(sim_model, [model_info(sim_model).default_address])
    schedule = FaultSchedule.from_specs(faults, seed=0) if faults else None

    def factory(port: str, baudrate: int | None, model: str, clock: Clock) -> Transport:
        baud = baudrate or model_info(model).baudrate
        return InMemoryTransport(emulation, clock, name=port, faults=schedule, baud_rate=baud)

    return factory


async def failure_of(model: str, factory: TransportFactory, clock: Clock, **kw: int) -> Exception:
    try:
        driver = await connect(model, "/dev/ttyPUMP", clock, factory=factory, **kw)
    except Exception as exc:
        return exc
    await driver.close()
    raise AssertionError(f"{model} connected")


@pytest.mark.parametrize(("sim", "model"), list(itertools.permutations(MODELS, 2)))
def test_the_wrong_model_is_named_with_the_one_that_answers(sim: str, model: str) -> None:
    async def main_(clock: Clock) -> Exception:
        return await failure_of(model, pump_on_the_line(sim), clock)

    exc = run_virtual(main_)
    assert isinstance(exc, WrongPump), exc
    line = model_info(model).line()
    assert str(exc).startswith(f"no {model} answered on /dev/ttyPUMP at {line}, address ")
    assert f"the pump there answers as {sim} (" in str(exc)
    assert f"use --model {sim}" in str(exc) and "\n" not in str(exc)


def test_the_right_model_at_the_wrong_baud_is_told_the_baud() -> None:
    async def main_(clock: Clock) -> Exception:
        return await failure_of("ne1000", pump_on_the_line("ne1000"), clock, baudrate=9600)

    exc = run_virtual(main_)
    assert isinstance(exc, WrongPump)
    assert "no ne1000 answered on /dev/ttyPUMP at 9600 8N1, address 0" in str(exc)
    assert "one answers at 19200 8N1, address 0: use --baud 19200 --address 0" in str(exc)


def test_a_silent_port_is_no_reply_naming_port_line_and_model() -> None:
    async def main_(clock: Clock) -> Exception:
        return await failure_of("ne1000", pump_on_the_line("ne1000", "link-drop@0s:1h"), clock)

    exc = run_virtual(main_)
    assert isinstance(exc, NoReply)
    assert str(exc).startswith("no reply on /dev/ttyPUMP at 19200 8N1, address 0 (ne1000): ")
    assert "switched on" in str(exc) and "`pumpctl models`" in str(exc)


def test_the_right_model_connects_and_the_probe_finds_each_model() -> None:
    async def main_(clock: Clock) -> list[str]:
        found = []
        for model in MODELS:
            driver = await connect(model, "/dev/ttyPUMP", clock, factory=pump_on_the_line(model))
            await driver.close()
            hit = await probe_port("/dev/ttyPUMP", clock, factory=pump_on_the_line(model))
            found.append(hit.info.model if hit else "-")
        return found

    assert run_virtual(main_) == MODELS


def test_a_missing_device_is_port_unavailable() -> None:
    async def main_(clock: Clock) -> Exception:
        try:
            await connect("ne1000", "/nonexistent/ttyPUMP", clock)
        except Exception as exc:
            return exc
        raise AssertionError("connected")

    exc = run_virtual(main_)
    assert isinstance(exc, PortUnavailable)
    assert str(exc).startswith(
        "cannot open /nonexistent/ttyPUMP at 19200 8N1 (No such file or directory): "
    )


def run_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def test_run_on_a_missing_port_exits_10_and_creates_no_journal(tmp_path: Path) -> None:
    journal = tmp_path / "run.sqlite"
    code, _, err = run_cli(
        "run", str(EXAMPLES / "acute-pain.yaml"), "--model", "ne1000",
        "--port", str(tmp_path / "ttyUSB9"), "--journal", str(journal),
    )  # fmt: skip
    assert code == Exit.PORT_UNAVAILABLE
    (line,) = err.splitlines()
    assert line.startswith(f"error: cannot open {tmp_path / 'ttyUSB9'} at 19200 8N1 (")
    assert not journal.exists()


@pytest.mark.slow
def test_run_on_a_silent_pty_exits_11_with_one_line_and_no_journal(tmp_path: Path) -> None:
    """End to end over a real pty nobody answers (about 3 s of wall-clock reply timeouts)."""
    master, slave = pty.openpty()
    port = os.ttyname(slave)
    try:
        journal = tmp_path / "run.sqlite"
        code, _, err = run_cli(
            "run", str(EXAMPLES / "acute-pain.yaml"), "--model", "harvard-elite",
            "--port", port, "--journal", str(journal),
        )  # fmt: skip
    finally:
        os.close(master)
        os.close(slave)
    assert code == Exit.NO_REPLY
    assert err.splitlines() == [
        f"error: no reply on {port} at 115200 8N1, address 0 (harvard-elite): check the pump is "
        "switched on and cabled to this port, and its address and baud rate (`pumpctl models`)"
    ]
    assert not journal.exists()


def run_with_signal(
    tmp_path: Path, faults: tuple[str, ...], when: Phase
) -> tuple[Outcome, list[str]]:
    """A `pumpctl run` session on the virtual clock; Ctrl-C (the handler the signal calls) as
    soon as the supervisor is in phase `when`."""
    plan = make_plan(segment(SegmentPhase.MAINTENANCE, 6.0, 3.0))
    settings = RunSettings(model="ne1000", port="/dev/ttyPUMP", journal=tmp_path / "j.sqlite")
    said: list[str] = []
    tasks: list[asyncio.Task[None]] = []

    def on_stop_handler(stopper: StopOnSignal) -> None:
        async def press_ctrl_c_in(phase: Phase) -> None:
            while stopper.sup.phase is not phase:
                await stopper.sup.clock.sleep(0.5)
            stopper()
            stopper()  # a second press changes nothing either

        tasks.append(asyncio.ensure_future(press_ctrl_c_in(when)))

    async def main_(clock: Clock) -> Outcome:
        result = await run_session(
            plan,
            settings,
            clock,
            echo=said.append,
            factory=pump_on_the_line("ne1000", *faults),
            on_stop_handler=on_stop_handler,
        )
        assert result is not None
        return result.outcome

    return run_virtual(main_), said


def test_ctrl_c_during_an_alarms_stop_keeps_the_alarm_outcome(tmp_path: Path) -> None:
    """The link drops for good: the supervisor alarms and keeps trying to stop the pump; a
    Ctrl-C meanwhile must neither cut that short nor turn it into 'stopped' or 130."""
    outcome, said = run_with_signal(tmp_path, ("link-drop@5m:2h",), Phase.ALARM)
    assert outcome is Outcome.UNCONFIRMED
    assert exit_code(outcome.value) == Exit.UNCONFIRMED == 5
    assert said.count("already stopping the pump after the alarm: waiting for it to confirm") == 2


def test_ctrl_c_during_maintenance_stops_the_run(tmp_path: Path) -> None:
    outcome, said = run_with_signal(tmp_path, (), Phase.MAINTENANCE)
    assert outcome is Outcome.STOPPED and exit_code(outcome.value) == Exit.STOPPED
    assert said[-2:] == [
        "stop requested: stopping the pump",
        "the pump is already being stopped: waiting for it to confirm",
    ]
