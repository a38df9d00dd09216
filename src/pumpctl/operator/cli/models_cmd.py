"""`pumpctl models`: the pump models `--model` accepts, their pumps and line settings."""

from __future__ import annotations

import click

from pumpctl.operator.cli.common import echo


@click.command()
def models() -> None:
    """List the pump models (for --model and `pumpctl simulate`), the pumps each drives, its
    factory line settings (baud, data bits, parity, stop bits) and its addresses."""
    from pumpctl.operator.models import pump_models

    rows = [("model", "line", "address", "what")]
    for m in pump_models():
        address = f"{m.default_address} ({m.addresses})" if m.addresses else str(m.default_address)
        rows.append((m.model, m.line(), address, m.title))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[3])
    for m in pump_models():
        if m.pumps:
            echo(f"{m.model}: {m.pumps}")
