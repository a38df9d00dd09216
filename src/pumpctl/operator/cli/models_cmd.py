"""`pumpctl models`: the pump models `--model` accepts, their pumps and line settings."""

from __future__ import annotations

import click

from pumpctl.operator.cli.common import echo


@click.command()
def models() -> None:
    """List the pump models (for --model), the pumps each drives and its factory line
    settings (baud, data bits, parity, stop bits) and default address."""
    from pumpctl.operator.models import pump_models

    rows = [("model", "line", "address", "pumps")]
    rows += [
        (m.model, m.line(), str(m.default_address), f"{m.maker} {m.pumps}".strip())
        for m in pump_models()
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[3])
