"""`sim://MODEL[?address=N&faults=SPEC,SPEC&seed=S]`: an emulation as a port name.

`pumpctl run --port sim://ne1000` (and any caller holding a clock) gets an in-memory
`Transport` into a fresh emulation on the caller's clock, so the emulation is a backend like any
other: `open_sim_transport(url, clock=clock)` is the drop-in for
`drivers.registry.open_transport(port, clock=clock, model=model)` when `is_sim_url(port)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from pumpctl.clock import Clock
from pumpctl.simulator.endpoints import InMemoryTransport
from pumpctl.simulator.registry import default_address

__all__ = ["SCHEME", "SimUrl", "is_sim_url", "open_sim_transport", "parse_sim_url"]

SCHEME = "sim"


@dataclass(frozen=True)
class SimUrl:
    model: str
    address: int
    faults: tuple[str, ...] = ()
    seed: int = 0


def is_sim_url(port: str) -> bool:
    return port.startswith(f"{SCHEME}://")


def parse_sim_url(url: str) -> SimUrl:
    """ValueError on one line for anything but `sim://MODEL` with known query keys."""
    parts = urlsplit(url)
    if parts.scheme != SCHEME or not parts.netloc or parts.path not in ("", "/"):
        raise ValueError(f"expected sim://MODEL[?address=N&faults=...], got {url!r}")
    model = parts.netloc
    address, seed = default_address(model), 0
    faults: list[str] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if key == "address" and value.isascii() and value.isdigit():
            address = int(value)
        elif key == "seed" and value.isascii() and value.lstrip("-").isdigit():
            seed = int(value)
        elif key in ("fault", "faults"):
            faults.extend(spec for spec in value.split(",") if spec)
        else:
            raise ValueError(f"{url!r}: unknown or bad query item {key}={value!r}")
    return SimUrl(model, address, tuple(faults), seed)


def open_sim_transport(url: str, *, clock: Clock) -> InMemoryTransport:
    """An in-memory transport into a new emulation named by `url`, on `clock` (virtual or
    real). ValueError (FaultSpecError included) names what is wrong with the URL."""
    from pumpctl.simulator.server import build_emulation, build_faults

    sim = parse_sim_url(url)
    faults = build_faults(sim.faults, sim.seed)
    emulation = build_emulation(sim.model, [sim.address], faults=faults)
    return InMemoryTransport(emulation, clock, name=url, faults=faults)
