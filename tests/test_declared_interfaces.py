"""What the supervisor, runner and station rely on is declared, not probed for.

A driver says in its capabilities what it can do beyond the abstract interface, and the flag
and the method agree; an emulation implements the rig hooks (a syringe, tubing, a reservoir)
its family's container needs, and the others refuse by name instead of doing nothing.
"""

from __future__ import annotations

import pytest

from pumpctl.clock import Clock, run_with_clock
from pumpctl.drivers.base import PumpDriver, UnsupportedError
from pumpctl.drivers.registry import default_address, driver_class
from pumpctl.families import families, family
from pumpctl.simulator.devices.base import Emulation
from pumpctl.simulator.endpoints import InMemoryTransport
from pumpctl.simulator.server import build_emulation

MODELS = [spec.model for spec in families()]


def _overrides(cls: type, base: type, name: str) -> bool:
    return getattr(cls, name) is not getattr(base, name)


@pytest.mark.parametrize("model", MODELS)
def test_a_driver_that_takes_a_syringe_volume_says_so(model: str) -> None:
    async def main(clock: Clock) -> tuple[bool, bool]:
        address = default_address(model)
        transport = InMemoryTransport(build_emulation(model, [address]), clock, name=model)
        driver = driver_class(model)(transport, address=address)
        flag = driver.capabilities.sets_syringe_volume
        implemented = _overrides(type(driver), PumpDriver, "configure_syringe_volume")
        if not implemented:
            with pytest.raises(UnsupportedError, match="does not take a syringe volume"):
                await driver.configure_syringe_volume(10.0)
        return flag, implemented

    flag, implemented = run_with_clock(main, virtual=True)
    assert flag == implemented


@pytest.mark.parametrize("model", MODELS)
def test_an_emulation_implements_the_rig_hooks_of_its_container(model: str) -> None:
    cls = type(build_emulation(model, [default_address(model)]))
    if family(model).container == "syringe":
        assert _overrides(cls, Emulation, "load_syringe")
    else:
        assert _overrides(cls, Emulation, "set_ml_per_rev")
        assert _overrides(cls, Emulation, "set_reservoir_ml")


def test_an_emulation_without_a_hook_refuses_by_name() -> None:
    emu = build_emulation("masterflex-ls", [default_address("masterflex-ls")])
    with pytest.raises(NotImplementedError, match="masterflex-ls emulation takes no syringe"):
        emu.load_syringe(1, 26.7, 60.0, 60.0)
    ne = build_emulation("ne1000", [0])
    with pytest.raises(NotImplementedError, match="has no tubing"):
        ne.set_ml_per_rev(0, 0.2)
    with pytest.raises(NotImplementedError, match="draws from no reservoir"):
        ne.set_reservoir_ml(0, 100.0)
