"""`pumpctl check`: validate a program and print the plan the pump will run."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pumpctl.operator.cli.common import (
    EXIT_SOFT_LIMIT,
    echo,
    pair_overrides,
    with_overrides,
)


@click.command()
@click.argument("program", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print the plan as one JSON object")
@with_overrides
def check(
    program: Path,
    as_json: bool,
    override_fields: tuple[str, ...],
    override_reasons: tuple[str, ...],
) -> None:
    """Validate PROGRAM against its drug library and print the compiled plan."""
    import json
    import logging

    from pumpctl.dosing.check import check_program
    from pumpctl.log import configure_logging

    # stdout carries only the plan (a table, or one JSON object that scripts parse); the table
    # already names every violation, so console logs would only repeat it
    configure_logging(console=False, level=logging.WARNING)
    result = check_program(program, dict(pair_overrides(override_fields, override_reasons)))
    if as_json:
        echo(json.dumps(result.to_json(), indent=2))
    else:
        echo(result.render_table())
    if result.exit_code == EXIT_SOFT_LIMIT:
        click.echo(
            "a soft limit was crossed: re-run with --override FIELD --reason TEXT to proceed",
            err=True,
        )
    sys.exit(result.exit_code)
