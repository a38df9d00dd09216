"""`pumpctl serve STATION.yaml`: every pump of a station in one process, optionally over SiLA 2."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from pumpctl.operator.cli.common import (
    EXIT_ALARM,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_STOPPED,
    EXIT_UNCONFIRMED,
    configure_logs,
    echo,
    log_options,
    with_log_options,
)

#: the worst outcome decides the exit code of a station run without SiLA
_SEVERITY = {"completed": EXIT_OK, "stopped": EXIT_STOPPED, "alarm": EXIT_ALARM}


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise click.BadParameter(f"want HOST:PORT, got {text!r}", param_hint="--sila")
    return host or "127.0.0.1", int(port)


def _faults(specs: tuple[str, ...]) -> dict[str, list[str]]:
    faults: dict[str, list[str]] = {}
    for spec in specs:
        pump, sep, fault = spec.partition(":")
        if not sep or not pump or not fault:
            raise click.BadParameter(f"want PUMP:SPEC, got {spec!r}", param_hint="--fault")
        faults.setdefault(pump, []).append(fault)
    return faults


def _sila_options(
    sila_at: str | None, insecure: bool, no_discovery: bool, cert: Path | None, key: Path | None
) -> Any:
    from pumpctl.station.service import SilaOptions

    if (cert is None) != (key is None):
        raise click.UsageError("--cert and --key go together")
    if sila_at is None:
        return None
    host, port = _host_port(sila_at)
    return SilaOptions(
        host=host,
        port=port,
        insecure=insecure,
        discovery=not no_discovery,
        key_pem=key.read_bytes() if key else None,
        cert_pem=cert.read_bytes() if cert else None,
    )


def _announcer(ca_path: Path, cert: Path | None, json_log: bool) -> Any:
    def announce(what: str, value: Any) -> None:
        if what == "sila":
            # the certificate is on disk before the address is announced: clients may connect
            if value.certificate_pem is not None and cert is None:
                ca_path.write_bytes(value.certificate_pem)
                echo(f"CA={ca_path}")
            echo(f"SILA={value.host}:{value.port}")
        elif what == "runs" and not json_log:
            for name, watch in value.items():
                echo(f"{name}: running {watch.plan.program if watch.plan else '(nothing left)'}")

    return announce


def _report(watches: Any, json_log: bool) -> list[str]:
    outcomes = []
    for name, watch in watches.items():
        result = watch.result
        outcome = result.outcome.value if result is not None else "stopped"
        outcomes.append(outcome)
        if not json_log and result is not None:
            alarm = f" ({result.alarm})" if result.alarm else ""
            echo(f"{name}: {outcome}{alarm}, {result.delivered_ml:.3f} mL delivered")
    return outcomes


def _exit_code(outcomes: list[str]) -> int:
    if "unconfirmed" in outcomes:
        return EXIT_UNCONFIRMED
    return max((_SEVERITY.get(o, EXIT_ALARM) for o in outcomes), default=EXIT_OK)


@click.command()
@click.argument("station_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--simulate", is_flag=True, help="every port is its family's in-process emulation")
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="clock seconds per wall second (demos on --simulate; rigs matching a simulator)",
)
@click.option("--sila", "sila_at", metavar="HOST:PORT", help="serve SiLA 2 here (port 0: any)")
@click.option("--insecure", is_flag=True, help="SiLA without TLS (local tests only)")
@click.option("--no-discovery", is_flag=True, help="do not announce the server (mDNS)")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--ca-out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write the self-signed certificate clients need here (default: STATION-ca.pem)",
)
@click.option("--fault", "faults", multiple=True, metavar="PUMP:SPEC", help="e.g. left:stall@2h")
@with_log_options
@click.option("--json-log", is_flag=True, help="print structlog JSON lines")
def serve(
    station_file: Path,
    simulate: bool,
    time_scale: float,
    sila_at: str | None,
    insecure: bool,
    no_discovery: bool,
    cert: Path | None,
    key: Path | None,
    ca_out: Path | None,
    faults: tuple[str, ...],
    json_log: bool,
) -> None:
    """Supervise every pump of STATION_FILE: one supervisor and journal each, today's safety
    rules each; a fault on one pump safe-stops that pump only. Ctrl-C stops every pump safely.

    Without --sila, runs the station file's programs and exits when they have ended (exit code
    of the worst outcome); with --sila, serves until stopped.
    """
    import asyncio
    import signal

    from pumpctl.clock import Clock, run_with_clock
    from pumpctl.station.programs import ProgramRefused
    from pumpctl.station.service import serve_station
    from pumpctl.station.spec import StationError, load_station
    from pumpctl.station.station import Station, UnknownPump

    configure_logs(log_options(), json_log=json_log)
    try:
        spec = load_station(station_file)
    except StationError as exc:
        for issue in exc.issues:
            click.echo(f"error: {issue.field}: {issue.message}", err=True)
        sys.exit(EXIT_REFUSED)
    sila = _sila_options(sila_at, insecure, no_discovery, cert, key)
    announce = _announcer(ca_out or Path(f"{station_file.stem}-ca.pem"), cert, json_log)

    async def main(clock: Clock) -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        station = Station(spec, clock, simulate=simulate, faults=_faults(faults))
        return await serve_station(
            station, sila=sila, stop=stop, announce=announce, until_runs_end=sila is None
        )

    try:
        watches = run_with_clock(main, time_scale=time_scale)
    except ProgramRefused as exc:
        for v in exc.result.violations:
            click.echo(f"error: pumps.{exc.pump}: {v.message}", err=True)
        sys.exit(exc.exit_code or EXIT_REFUSED)
    except (UnknownPump, ValueError) as exc:  # faults for unknown pumps or that cannot apply
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_REFUSED)
    outcomes = _report(watches, json_log)
    sys.exit(_exit_code(outcomes) if sila is None else EXIT_OK)
