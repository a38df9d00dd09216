"""`pumpctl serve --sila`: a separate process serves the station over TLS, a client connects with
the certificate it wrote, and SIGTERM stops every pump and the server cleanly (exit 0)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import pumpctl.station.sila  # noqa: F401  (sila2 first)
from pumpctl.clock import wall_monotonic

pytestmark = pytest.mark.slow
SAFETY_S = 30.0

STATION = """station: cli-sila
pumps:
  left: {model: ne1000, port: /dev/ttyUSB5, journal: left.sqlite, program: acute-pain.yaml}
"""


def test_serve_over_tls_then_sigterm_stops_the_pump_and_exits_0(tmp_path: Path) -> None:
    from sila2.client import SilaClient

    station = tmp_path / "station.yaml"
    station.write_text(STATION)
    ca = tmp_path / "ca.pem"
    command = [sys.executable, "-m", "pumpctl", "serve", str(station), "--simulate"]
    command += ["--sila", "127.0.0.1:0", "--no-discovery", "--ca-out", str(ca)]
    env = {**os.environ, "GRPC_VERBOSITY": "NONE"}
    proc = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        deadline = wall_monotonic() + SAFETY_S
        port = None
        while port is None and wall_monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "the server ended before announcing itself"
            if line.startswith("SILA="):
                port = int(line.strip().rpartition(":")[2])
        assert port is not None and ca.is_file()
        with SilaClient("127.0.0.1", port, root_certs=ca.read_bytes()) as client:
            pumps = client.StationService.Pumps.get()
            assert [(p.Name, p.Simulated, p.Fault) for p in pumps] == [("left", True, "")]
            phase = client.InfusionProgramService.Phase.subscribe(
                metadata=[client.StationService.PumpName("left")]
            )
            assert next(iter(phase)) in ("idle", "priming", "loading")  # its program started
            phase.cancel()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=SAFETY_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (tmp_path / "left.sqlite").is_file()  # the run was journaled, and stopped
