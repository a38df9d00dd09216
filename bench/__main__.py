"""`python -m bench`: run every benchmark, write results/latest.json, print a Markdown table.

Options: `--quick` (tiny sizes, for the smoke test: shape, not timings), `--only NAME`
(repeatable), `--output PATH`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import traceback
from pathlib import Path
from typing import Any

from bench import Row, machine_info
from pumpctl.clock import wall_monotonic, wall_time

#: run order: dose_accuracy reuses the 5-day run of time_acceleration
BENCHMARKS = (
    "time_acceleration",
    "dose_accuracy",
    "demo_5day",
    "wire_floor",
    "pumps_per_process",
    "peer_nesp_lib",
    "station",
)
DEFAULT_OUTPUT = Path(__file__).parent / "results" / "latest.json"


def _clean(value: Any) -> Any:
    """JSON without NaN/inf (strict parsers reject them): those become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def markdown(rows: list[Row]) -> str:
    mark = {True: "yes", False: "**no**", None: "–"}
    lines = ["| benchmark | metric | result | target | met |", "|---|---|---|---|---|"]
    lines += [
        f"| {r.benchmark} | {r.metric} | {r.value} | {r.target} | {mark[r.met]} |" for r in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="run only these")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    selected = [b for b in BENCHMARKS if not args.only or b in args.only]
    results: dict[str, Any] = {
        "machine": machine_info(),
        "started_unix_s": wall_time(),
        "quick": args.quick,
    }
    rows: list[Row] = []
    failed = []
    for name in selected:
        module = importlib.import_module(f"bench.{name}")
        print(f"running {name}...", flush=True)
        t0 = wall_monotonic()
        try:
            res = module.run(quick=args.quick)
            rows += module.rows(res)
        except Exception as exc:  # one broken benchmark must not hide the others
            traceback.print_exc()
            res = {"error": f"{type(exc).__name__}: {exc}", "met": None}
            rows.append(Row(name, "error", str(exc), "", False))
            failed.append(name)
        res["bench_wall_s"] = wall_monotonic() - t0
        results[name] = res
        print(f"  {name}: {res['bench_wall_s']:.1f} s", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(_clean(results), indent=2) + "\n", encoding="utf-8")
    print()
    print(markdown(rows))
    print()
    print(f"results: {args.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
