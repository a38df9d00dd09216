"""`pumpctl simulate`: serve an emulated pump on a pty, a device path or TCP.

Registered into the main `pumpctl` group by pumpctl.operator.cli; kept here so the simulator's options
live next to the simulator.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pumpctl.operator.cli.common import (
    CliError,
    Exit,
    OneLineError,
    check_model,
    configure_logs,
    log_options,
    with_log_options,
)


def _echo(line: str) -> None:
    click.echo(line)
    sys.stdout.flush()


def _check_faults(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[str, ...]:
    """Parse every `--fault` before anything starts; a bad one is a usage error naming it."""
    from pumpctl.simulator.faults import FaultSpecError, parse_fault

    for spec in value:
        try:
            parse_fault(spec)
        except FaultSpecError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc
    return value


@click.command()
@click.argument("model", callback=check_model)
@click.option(
    "--port", "port", metavar="PATH", help="open this existing device path (e.g. a socat pty)"
)
@click.option("--tcp", "tcp", metavar="HOST:PORT", help="serve on a TCP socket (port 0: any free)")
@click.option(
    "--address",
    "addresses",
    type=click.IntRange(0, 99),
    multiple=True,
    help="pump address on the link (repeatable; default 0, masterflex-ls 1)",
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
@click.option(
    "--fault",
    "faults",
    metavar="SPEC",
    multiple=True,
    callback=_check_faults,
    help="inject a fault (repeatable): KIND[/ADDR]@WHEN[:DURATION][=ARG], WHEN in simulated "
    "time (300s, 10m, 1h) or commands (#120); e.g. stall@300s, link-drop@10m:30s, baud@1m=9600. "
    "Kinds: stall near-empty empty link-drop garble crc truncate slow reset baud",
)
@click.option(
    "--phd-address",
    "phd_addresses",
    type=click.IntRange(0, 99),
    multiple=True,
    help="a PHD2000 on the chain at this address (repeatable; harvard-legacy only)",
)
@click.option(
    "--pace/--no-pace",
    default=True,
    show_default=True,
    help="deliver bytes no faster than the pump's line allows (start, data, parity and stop "
    "bits at its baud), as a real pump does; --no-pace answers at once",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="seed of the faults' random choices"
)
@with_log_options
def simulate(
    model: str,
    port: str | None,
    tcp: str | None,
    addresses: tuple[int, ...],
    state_file: Path | None,
    time_scale: float,
    faults: tuple[str, ...],
    phd_addresses: tuple[int, ...],
    pace: bool,
    seed: int,
) -> None:
    """Emulate pump MODEL on a pty (default: a new one, printed as PTY=...), a path or TCP.

    MODEL: ne1000, harvard-legacy, harvard-elite, masterflex-ls, or one an installed package
    registers. Fault times are the pump's simulated time since start (so --time-scale speeds
    them up too). Bytes are paced at the pump's baud unless --no-pace.
    """
    from pumpctl.drivers.base import PumpConnectionError
    from pumpctl.simulator.registry import default_address
    from pumpctl.simulator.server import run_simulator

    # stdout carries only the announcements (PTY=..., TCP=...) that rigs parse; logs go to stderr
    configure_logs(log_options())
    if port and tcp:
        raise click.UsageError("give --port or --tcp, not both")
    try:
        run_simulator(
            model,
            port=port,
            tcp=tcp,
            addresses=list(addresses) or [default_address(model)],
            state_file=state_file,
            time_scale=time_scale,
            announce=_echo,
            faults=faults,
            seed=seed,
            pace=pace,
            phd_addresses=list(phd_addresses),
        )
    except ValueError as exc:
        # a bad address or fault for this model: one line, no usage banner; a usage error (64)
        raise OneLineError(str(exc)) from None
    except (PumpConnectionError, OSError) as exc:
        raise CliError(f"cannot serve the pump: {exc}", Exit.PORT_UNAVAILABLE) from None
