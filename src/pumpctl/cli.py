"""`pumpctl` command line: demo, check, run, simulate, ports.

Heavy modules are imported inside each command so `pumpctl --help` stays instant and a command
only pays for what it uses.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

EXIT_OK = 0
EXIT_REFUSED = 1  # program invalid or hard limit crossed: nothing was sent to the pump
EXIT_SOFT_LIMIT = 2  # soft limit crossed and not overridden: nothing was sent to the pump
EXIT_ALARM = 3  # the run ended in an alarm; the pump was confirmed stopped
EXIT_STOPPED = 4  # the run was stopped by the operator before completion
EXIT_UNCONFIRMED = 5  # the run ended in an alarm and the stop could NOT be confirmed


def _echo(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pumpctl")
def main() -> None:
    """Infusion-pump controller, simulator and safety supervisor (lab software, not a medical
    device)."""


@main.command()
@click.argument("model")
@click.option("--port", "port", metavar="PATH", help="open this existing device path (e.g. a socat pty)")
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
    from pumpctl.simulator.server import run_simulator

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


@main.command()
def ports() -> None:
    """List the serial ports on this machine."""
    from pumpctl.drivers.transport import list_ports

    found = list_ports()
    if not found:
        _echo("no serial ports found")
    for p in found:
        _echo(f"{p.device}\t{p.description}\t{p.hwid}")


if __name__ == "__main__":  # pragma: no cover
    main()
