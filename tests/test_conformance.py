"""The exported conformance suite (`pumpctl.testing.conformance`) over every installed family:
each driver against its own emulation (in memory and over a pty) and each emulation's `feed`
fuzzed. A family another package installs is picked up here too."""

from __future__ import annotations

from pumpctl.testing.conformance import ConformanceSuite, conformance_families


class TestConformance(ConformanceSuite):
    families = conformance_families()


def test_every_builtin_family_is_in_the_suite() -> None:
    models = {f.model for f in conformance_families()}
    assert {"ne1000", "harvard-legacy", "harvard-elite", "masterflex-ls"} <= models
    assert all(f.samples for f in conformance_families() if f.model in models)
