"""`pumpctl models`: every pump model pumpctl knows (built-in families and installed ones)."""

from __future__ import annotations

import click

from pumpctl.operator.cli.common import echo


@click.command()
@click.option("--verbose", "-v", is_flag=True, help="also the pumps, line settings and demo program")
def models(verbose: bool) -> None:
    """List the pump models `--model` and `pumpctl simulate` accept, one a line."""
    from pumpctl.families import families

    for spec in families():
        if not verbose:
            echo(f"{spec.model}\t{spec.title}")
            continue
        simulated = "simulated" if spec.emulation else "no emulation"
        echo(
            f"{spec.model}\t{spec.title}\n"
            f"\tpumps: {', '.join(spec.pumps)}\n"
            f"\tprotocol: {spec.protocol}; {spec.line}; {spec.container}; {simulated}\n"
            f"\tdemo: pumpctl demo --model {spec.model}  ({spec.demo_program})"
        )
