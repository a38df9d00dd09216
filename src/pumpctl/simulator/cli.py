"""`pumpctl simulate`: serve an emulated pump on a pty, a device path or TCP.

Registered into the main `pumpctl` group by pumpctl.cli; kept here so the simulator's options
live next to the simulator.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


def _echo(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()


@click.command()
@click.argument("model")
@click.option(
    "--port", "port", metavar="PATH", help="open this existing device path (e.g. a socat pty)"
)
@click.option("--tcp", "tcp", metavar="HOST:PORT", help="serve on a TCP socket (port 0: any free)")
@click.option(
    "--address",
    "addresses",
    type=click.IntRange(0, 99),
    multiple=True,
    help="pump address on the link (repeatable; default 0)",
)
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="keep a JSON snapshot of every pump's ground truth in this file",
)
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="simulated seconds per wall second",
)
def simulate(
    model: str,
    port: str | None,
    tcp: str | None,
    addresses: tuple[int, ...],
    state_file: Path | None,
    time_scale: float,
) -> None:
    """Emulate pump MODEL on a pty (default: a new one, printed as PTY=...), a path or TCP."""
    import logging

    from pumpctl.log import configure_logging
    from pumpctl.simulator.server import run_simulator

    # stdout carries only the announcements (PTY=..., TCP=...) that rigs parse; logs go to stderr
    configure_logging(console=True, level=logging.WARNING, stream=sys.stderr)
    if port and tcp:
        raise click.UsageError("give --port or --tcp, not both")
    try:
        run_simulator(
            model,
            port=port,
            tcp=tcp,
            addresses=list(addresses) or [0],
            state_file=state_file,
            time_scale=time_scale,
            announce=_echo,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
