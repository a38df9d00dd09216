"""Smoke test of `make bench`: every benchmark runs at tiny size and reports the agreed shape.

Timings are never asserted here (speed is judged by `python -m bench` on a quiet machine); only
that each benchmark runs end to end and writes the keys the issue asks for.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SAFETY_S = 240.0  # guards against a hang only


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "latest.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SAFETY_S,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| benchmark | metric | result | target | met |" in proc.stdout
    data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return data


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def test_machine_and_every_benchmark_present(results: dict[str, Any]) -> None:
    assert results["quick"] is True
    assert {"python", "cpu_count", "platform"} <= results["machine"].keys()
    for name in (
        "time_acceleration",
        "dose_accuracy",
        "demo_5day",
        "wire_floor",
        "pumps_per_process",
        "peer_nesp_lib",
    ):
        assert "error" not in results[name], results[name]
        assert _number(results[name]["bench_wall_s"])


def test_time_acceleration_shape(results: dict[str, Any]) -> None:
    res = results["time_acceleration"]
    assert res["outcome"] == "completed"
    assert _number(res["speedup"]) and res["speedup"] > 0
    assert res["poll_interval_s"] == 1.0
    assert res["status_polls"] > 0
    assert isinstance(res["met"], bool)


def test_dose_accuracy_shape(results: dict[str, Any]) -> None:
    res = results["dose_accuracy"]
    assert set(res["phases"]) == {"prime", "loading", "maintenance"}
    for phase in res["phases"].values():
        assert {"prescribed_ml", "delivered_ml", "pump_counter_ml", "error_ml"} <= phase.keys()
    assert _number(res["max_error_ml"])
    assert res["volume_resolution_ml"] == 0.001
    assert res["total_prescribed_ml"] == pytest.approx(2.9)


def test_wire_floor_shape(results: dict[str, Any]) -> None:
    res = results["wire_floor"]
    assert _number(res["unpaced"]["exchange_latency_ms_p50"])
    assert _number(res["unpaced"]["exchange_latency_ms_p99"])
    for baud in ("9600", "19200"):
        entry = res[baud]
        assert "fraction_of_wire_limit" in entry
        assert _number(entry["wire_limit_polls_per_s"])
        if entry["measured"]:
            assert _number(entry["fraction_of_wire_limit"])
        else:
            assert entry["fraction_of_wire_limit"] is None
            assert entry["why_not_measured"]
    # safe mode, stopped pump: `0` (6 bytes) -> `00S` (8), `0DIS` (9) -> `00SI0.000W0.000ML` (22)
    assert res["unpaced"]["bytes_per_poll"] == 31.0  # one safe-mode DIS exchange: 9 + 22 bytes


def test_pumps_per_process_shape(results: dict[str, Any]) -> None:
    res = results["pumps_per_process"]
    sizes = [k for k, v in res.items() if isinstance(v, dict) and "pumps" in v]
    assert sizes
    for key in sizes:
        entry = res[key]
        assert entry["pumps"] == int(key)
        assert entry["polls"] > 0
        assert _number(entry["p99_lateness_ms"])
        assert _number(entry["cpu_ms_per_poll"])
        assert entry["not_in_maintenance"] == []


def test_demo_5day_shape(results: dict[str, Any]) -> None:
    res = results["demo_5day"]
    assert res["rounds"] == len(res["runs"]) == 1
    assert _number(res["demo_wall_s"]) and res["demo_wall_s"] > 0
    assert res["simulated_h"] > 2.0  # the quick copy: 2 h of maintenance plus its changes
    assert res["met"] is None  # a 2 h run judges nothing about 5 days
    assert res["target_wall_s"] == 10.0


def test_peer_shape(results: dict[str, Any]) -> None:
    res = results["peer_nesp_lib"]
    assert _number(res["ratio"]) and res["ratio"] > 0  # pumpctl / the bare blocking client
    assert res["target_ratio"] == 1.05
    assert res["operations_per_sequence"] == 24
    assert len(res["seconds_each"]["pumpctl"]) == len(res["seconds_each"]["bare"])
    if "nesp_lib" in res["seconds_each"]:
        assert len(res["seconds_each"]["nesp_lib"]) == len(res["seconds_each"]["pumpctl"])
