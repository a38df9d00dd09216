"""`python -m pumpctl` runs the CLI."""

from pumpctl.operator.cli import main

main()
