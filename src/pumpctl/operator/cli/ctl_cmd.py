"""`pumpctl ctl`: control a running `pumpctl run` from another terminal."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.option(
    "--journal",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="the --journal of the running `pumpctl run`",
)
@click.argument(
    "op",
    type=click.Choice(
        ["status", "titrate", "pause", "resume", "stop", "syringe-changed", "target", "bolus"]
    ),
)
@click.argument("rate", metavar="[QUANTITY]", required=False)
@click.option(
    "--reason", default="", help="why (required for titrate, target, bolus; journaled with who)"
)
@click.option("--who", default=None, help="who asks (default: your user name)")
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=15.0,
    show_default=True,
    help="seconds to wait for the run's reply",
)
def ctl(
    journal: Path, op: str, rate: str | None, reason: str, who: str | None, timeout_s: float
) -> None:
    """Control a running `pumpctl run` from another terminal: status, titrate RATE (e.g.
    0.3mg/kg/h), target CONC (a TCI target, e.g. 0.4ug/mL), bolus DOSE (e.g. 0.1mg/kg), each
    with --reason; pause, resume, stop. Exit 1: refused; 14: no run listening."""
    from pumpctl.operator.control_client import ctl as send_ctl

    example = {"titrate": "0.3mg/kg/h", "target": "0.4ug/mL", "bolus": "0.1mg/kg"}
    if op in example and not rate:
        raise click.UsageError(f"{op} needs a quantity with units, e.g. {example[op]}")
    if op not in example and rate:
        raise click.UsageError(f"{op} takes no quantity")
    code, text = send_ctl(journal, op, rate=rate, reason=reason, who=who, timeout_s=timeout_s)
    click.echo(text, err=code != 0)
    sys.exit(code)
