"""`pumpctl` command line: one module per command; this one only assembles the group.

Heavy modules are imported inside each command so `pumpctl --help` stays instant and a command
only pays for what it uses.
"""

from __future__ import annotations

import click

from pumpctl.operator.cli.common import (
    EXIT_ALARM,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_SOFT_LIMIT,
    EXIT_STOPPED,
    EXIT_UNCONFIRMED,
)

__all__ = [
    "EXIT_ALARM",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_SOFT_LIMIT",
    "EXIT_STOPPED",
    "EXIT_UNCONFIRMED",
    "main",
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pumpctl")
def main() -> None:
    """Infusion-pump controller, simulator and safety supervisor (lab software, not a medical
    device)."""


def _register_subcommands() -> None:
    from pumpctl.operator.cli.check_cmd import check
    from pumpctl.operator.cli.ctl_cmd import ctl
    from pumpctl.operator.cli.journal_cmd import accuracy, journal_cmd, report
    from pumpctl.operator.cli.ports_cmd import ports
    from pumpctl.operator.cli.predict_cmd import predict
    from pumpctl.operator.cli.run_cmd import demo, run
    from pumpctl.operator.cli.serve_cmd import serve
    from pumpctl.operator.cli.simulate_cmd import simulate

    for command in (check, demo, run, ctl, journal_cmd, ports, simulate, report, accuracy):
        main.add_command(command)
    main.add_command(predict)
    main.add_command(serve)


_register_subcommands()

if __name__ == "__main__":  # pragma: no cover
    main()
