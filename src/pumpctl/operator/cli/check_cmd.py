"""`pumpctl check`: validate a program and print the plan the pump will run."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pumpctl.operator.cli.common import (
    EXIT_SOFT_LIMIT,
    OneLineError,
    check_model,
    echo,
    pair_overrides,
    with_overrides,
)


@click.command()
@click.argument("program", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print the plan as one JSON object")
@click.option(
    "--model",
    callback=check_model,
    help="the pump it will run on: its own rounding (what is printed is what it is sent) "
    "and ranges",
)
@click.option(
    "--no-library",
    is_flag=True,
    help="run a drug the library does not list, with no dose limits (shown and journaled)",
)
@with_overrides
def check(
    program: Path,
    as_json: bool,
    model: str | None,
    no_library: bool,
    override_fields: tuple[str, ...],
    override_reasons: tuple[str, ...],
) -> None:
    """Validate PROGRAM against its drug library (and --model's pump) and print the plan."""
    import json
    import logging

    from pumpctl.dosing.check import check_program
    from pumpctl.families import UnknownModel
    from pumpctl.log import configure_logging

    # stdout carries only the plan (a table, or one JSON object that scripts parse); the table
    # already names every violation, so console logs would only repeat it
    configure_logging(console=False, level=logging.WARNING)
    overrides = dict(pair_overrides(override_fields, override_reasons))
    try:
        result = check_program(program, overrides, model=model, no_library=no_library)
    except UnknownModel as exc:  # a driver registered without a family spec
        raise OneLineError(f"{exc}: a driver without a family spec has no ranges") from None
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
