"""`sim://MODEL?...`: an emulation as a port name, in memory on the caller's clock."""

from __future__ import annotations

import pytest

from pumpctl.clock import Clock, run_with_clock
from pumpctl.drivers.base import AlarmReason, PumpState
from pumpctl.drivers.registry import driver_class
from pumpctl.simulator import is_sim_url, open_sim_transport, parse_sim_url
from pumpctl.simulator.url import SimUrl


def test_parse() -> None:
    assert parse_sim_url("sim://masterflex-ls") == SimUrl("masterflex-ls", 1)  # factory number
    assert parse_sim_url("sim://ne1000?address=3&faults=stall@2m,link-drop@1h:30s&seed=7") == (
        SimUrl("ne1000", 3, ("stall@2m", "link-drop@1h:30s"), 7)
    )
    assert parse_sim_url("sim://ne1000?fault=baud@1m=9600").faults == ("baud@1m=9600",)
    assert is_sim_url("sim://ne1000") and not is_sim_url("/dev/ttyUSB0")


@pytest.mark.parametrize(
    "url",
    ["sim://", "socket://x:1", "sim://ne1000/x", "sim://ne1000?addr=1", "sim://ne1000?address=²"],
)
def test_bad_urls_are_one_line_errors(url: str) -> None:
    with pytest.raises(ValueError, match=r"^[^\n]+$"):
        parse_sim_url(url)


def test_unknown_model_names_the_choices() -> None:
    async def main(clock: Clock) -> None:
        open_sim_transport("sim://ne2000", clock=clock)

    with pytest.raises(ValueError, match="valid models: harvard-elite, harvard-legacy"):
        run_with_clock(main, virtual=True)


def test_a_driver_runs_on_a_sim_url_with_its_faults_on_the_virtual_clock() -> None:
    async def main(clock: Clock) -> tuple[PumpState, AlarmReason | None, float]:
        transport = open_sim_transport("sim://ne1000?address=2&faults=stall@60s", clock=clock)
        async with driver_class("ne1000")(transport, address=2) as driver:
            await driver.configure_syringe(26.59)
            await driver.set_rate(60.0)
            await driver.set_target_volume(None)
            await driver.start()
            await clock.sleep(600.0)  # ten simulated minutes: no wall time
            status = await driver.read_status()
            return status.state, status.alarm, clock.now()

    state, alarm, now = run_with_clock(main, virtual=True)
    assert (state, alarm, now) == (PumpState.ALARM, AlarmReason.STALL, 600.0)
