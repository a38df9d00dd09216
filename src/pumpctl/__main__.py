"""`python -m pumpctl` runs the CLI."""

from pumpctl.cli import main

main()
