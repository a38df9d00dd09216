"""`pumpctl ports`: serial ports on this machine."""

from __future__ import annotations

import click

from pumpctl.operator.cli.common import echo


@click.command()
def ports() -> None:
    """List the serial ports on this machine."""
    from pumpctl.drivers.transport import list_ports

    found = list_ports()
    if not found:
        echo("no serial ports found")
    for p in found:
        echo(f"{p.device}\t{p.description}\t{p.hwid}")
