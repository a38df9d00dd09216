"""Wire-level pump emulations and what serves them (pty, TCP, in memory, `sim://` URLs).

`open_sim_transport("sim://MODEL?address=N&faults=...", clock=clock)` and `is_sim_url(port)`
are re-exported lazily (importing `pumpctl.simulator.devices` stays cheap).
"""

from __future__ import annotations

from typing import Any

__all__ = ["is_sim_url", "open_sim_transport", "parse_sim_url"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from pumpctl.simulator import url

        return getattr(url, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
