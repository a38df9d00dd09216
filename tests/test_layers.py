"""The path of a dose reads from the folder names, and lower layers never import upper ones.

program → plan (`dosing`) → supervisor (`infusion`) → driver (`drivers`) → wire; on the other side
of the wire endpoint → emulation → physics (`simulator`). `families` (what is true of a pump on
either side), `clock` and `log` are the floor. A driver knows nothing of plans, an emulation
nothing of drivers beyond the `Transport` it implements for in-process use, and no dosing rule
knows a wire.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "pumpctl"

#: what each part may import (besides itself and the standard library / third parties)
ALLOWED: dict[str, set[str]] = {
    "clock": set(),
    "log": set(),
    "families": set(),
    "dosing": {"families", "log", "clock"},
    "drivers": {"families", "log", "clock"},
    # the in-process endpoint is a `Transport` (drivers.base / drivers.transport), nothing else
    "simulator": {"families", "log", "clock", "drivers.base", "drivers.transport"},
    "infusion": {"families", "log", "clock", "dosing", "drivers"},
    "runner": {"families", "log", "clock", "dosing", "drivers", "simulator", "infusion"},
    "api": {"families", "log", "clock", "dosing", "drivers", "infusion", "runner"},
    "testing": {"families", "log", "clock", "drivers", "simulator", "dosing", "infusion", "runner"},
    "operator": {"*"},
    "station": {"*"},
    "__init__": {"*"},
    "__main__": {"*"},
}


def _part(module: str) -> str:
    return module.removeprefix("pumpctl.").split(".")[0]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m == "pumpctl" or m.startswith("pumpctl.")}


def _allows(rules: set[str], target: str) -> bool:
    name = target.removeprefix("pumpctl.")
    return "*" in rules or any(name == r or name.startswith(r + ".") for r in rules)


MODULES = sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_imports_an_upper_layer(path: Path) -> None:
    module = "pumpctl." + ".".join(path.relative_to(SRC).with_suffix("").parts)
    part = _part(module) if path.parent != SRC else path.stem
    rules = ALLOWED[part]
    bad = sorted(
        t for t in _imports(path) if _part(t) != part and t != "pumpctl" and not _allows(rules, t)
    )
    assert not bad, f"{module} ({part}) imports {bad}"


def test_every_part_has_a_rule() -> None:
    parts = {p.stem if p.parent == SRC else p.relative_to(SRC).parts[0] for p in MODULES}
    assert parts <= set(ALLOWED), parts - set(ALLOWED)
