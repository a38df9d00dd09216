"""`pumpctl` command line: one module per command; this one assembles the group and decides
how the process ends (`common.EXIT_CODES`).

Heavy modules are imported inside each command so `pumpctl --help` stays instant and a command
only pays for what it uses.
"""

from __future__ import annotations

import os
from typing import Any

import click

from pumpctl.operator.cli.common import (
    EXIT_ALARM,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_SOFT_LIMIT,
    EXIT_STOPPED,
    EXIT_UNCONFIRMED,
    CliError,
    Exit,
    UsageError,
    exit_code_epilog,
)

__all__ = [
    "EXIT_ALARM",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_SOFT_LIMIT",
    "EXIT_STOPPED",
    "EXIT_UNCONFIRMED",
    "PumpctlGroup",
    "main",
]


class PumpctlGroup(click.Group):
    """A click group whose every ending is in the exit-code table: click's usage errors exit 64
    (not 2, which is a soft limit), Ctrl-C outside an infusion 130 (not click's "Aborted!" and
    1), and an unexpected exception 70 with one line (the traceback goes to the log file;
    `PUMPCTL_TRACEBACK=1` shows it on the console)."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            raise UsageError.of(exc) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise UsageError.of(exc) from None
        except CliError as exc:
            click.echo(f"error: {exc}", err=True)
            raise click.exceptions.Exit(exc.code) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("\ninterrupted: no infusion was started", err=True)
            raise click.exceptions.Exit(Exit.INTERRUPTED) from None
        except Exception as exc:
            if os.environ.get("PUMPCTL_TRACEBACK"):
                raise
            _report_internal_error(exc)
            raise click.exceptions.Exit(Exit.INTERNAL) from None


def _report_internal_error(exc: Exception) -> None:
    from pumpctl.log import get_logger

    get_logger("pumpctl.cli").debug("cli.internal_error", exc_info=exc)
    click.echo(
        f"internal error (a bug in pumpctl, please report it): {type(exc).__name__}: {exc}; "
        "the traceback is in --log-file, or rerun with PUMPCTL_TRACEBACK=1",
        err=True,
    )


@click.group(
    cls=PumpctlGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=exit_code_epilog(),
)
@click.version_option(package_name="pumpctl")
def main() -> None:
    """Infusion-pump controller, simulator and safety supervisor (lab software, not a medical
    device)."""


def _register_subcommands() -> None:
    from pumpctl.operator.cli.check_cmd import check
    from pumpctl.operator.cli.ctl_cmd import ctl
    from pumpctl.operator.cli.demo_cmd import demo
    from pumpctl.operator.cli.journal_cmd import accuracy, journal_cmd, report
    from pumpctl.operator.cli.models_cmd import models
    from pumpctl.operator.cli.ports_cmd import ports
    from pumpctl.operator.cli.predict_cmd import predict
    from pumpctl.operator.cli.run_cmd import run
    from pumpctl.operator.cli.serve_cmd import serve
    from pumpctl.operator.cli.simulate_cmd import simulate

    commands = (check, demo, run, ctl, journal_cmd, models, ports, simulate, report, accuracy)
    for command in (*commands, predict, serve):
        main.add_command(command)


_register_subcommands()

if __name__ == "__main__":  # pragma: no cover
    main()
