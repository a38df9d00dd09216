"""Test helpers pumpctl exports for pump families, built in or installed by other packages.

`pumpctl.testing.conformance.ConformanceSuite` is the conformance suite every family's driver
and emulation pass (in memory on the virtual clock and over a pty), with hypothesis fuzzing of
the emulation's `feed`. Needs the `dev` extra (pytest, hypothesis).
"""
