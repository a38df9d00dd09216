"""The documentation site: generated pages are current, every safety requirement is accounted
for, the strict mkdocs build passes, and what the guides show really works."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import click
import pytest

from pumpctl.operator.cli import main as pumpctl_main
from pumpctl.operator.cli.journal_cmd import accuracy, report

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SAFETY_S = 600  # wall seconds: a hang fails the test, it never decides a pass


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gen = _generator()


def test_generated_pages_are_current() -> None:
    stale = [str(p.relative_to(ROOT)) for p in gen.stale_pages()]
    assert stale == [], f"stale generated pages {stale}: run `python docs/gen_reference.py`"


def test_every_requirement_has_a_test_or_is_honestly_listed() -> None:
    tests = gen.requirement_tests()
    assert list(gen.REQUIREMENTS) == [f"SR{n:02d}" for n in range(1, 35)]
    missing = set(gen.uncovered(tests)) - gen.NOT_YET_COVERED
    assert not missing, (
        f"{sorted(missing)} have no test_SRxx_... test: write one, or list them in "
        "NOT_YET_COVERED in docs/gen_reference.py (the safety page then says so)"
    )


def test_requirement_tests_are_found_by_name(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_a.py").write_text(
        "def test_SR13_stop_from_every_phase():\n    pass\n\n\n"
        "class TestComm:\n    async def test_SR17_SR19_link_loss(self):\n        pass\n\n"
        "def test_sr13_lower_case_does_not_count():\n    pass\n\n\n"
        "def helper_SR01():\n    pass\n"
    )
    (tests / "helpers.py").write_text("def test_SR01_not_a_test_module():\n    pass\n")
    found = gen.requirement_tests(tests)
    assert [(r.path, r.line, r.name) for r in found["SR13"]] == [
        ("tests/test_a.py", 1, "test_SR13_stop_from_every_phase")
    ]
    assert (
        [r.name for r in found["SR17"]]
        == [r.name for r in found["SR19"]]
        == ["test_SR17_SR19_link_loss"]
    )
    assert found["SR01"] == []
    page = gen.render_safety(found)
    assert "**3 of 34 requirements have a test named after them.**" in page
    assert "| SR13 | Stop is reachable from every phase. | `tests/test_a.py::test_SR13_stop" in page
    assert "| SR01 |" in page and "**not yet covered**" in page


def test_reference_pages_name_units_and_rules() -> None:
    program = gen.render_program_reference()
    assert "| `concentration` | quantity in mg/mL (`2 mg/mL`) | **required** | > 0 |" in program
    assert (
        "| `care_area` | `adult` \\| `pediatric` \\| `canine` \\| `feline` | **required** |"
        in program
    )
    assert "exactly one of `duration`, `volume` or `until_stopped: true`" in program
    library = gen.render_library_reference()
    assert "| `entries` | list of [Entry](#entry) | **required** |  |" in library
    assert "| `per_1h` | [limits](#limit) in mg/kg" in library
    assert "| WeightLimit | kg | `70 kg` |" in library


# ------------------------------------------------------------------------------ the guides


def _blocks(page: str, language: str) -> list[str]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.S | re.M)


def _commands() -> dict[str, click.Command]:
    # `report` and `accuracy` live in report_cli and are registered into the group by cli.py
    commands: dict[str, click.Command] = {"report": report, "accuracy": accuracy}
    commands.update(pumpctl_main.commands)
    return commands


DOC_PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))


@pytest.mark.parametrize("page", DOC_PAGES)
def test_shell_commands_in_the_docs_exist(page: str) -> None:
    """Every `pumpctl ...` line names a real command and real options, and every example
    program it names exists in the repository."""
    commands = _commands()
    for block in _blocks(page, "sh"):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip().rstrip("&").strip()
            if not line.startswith("pumpctl "):
                continue
            words = shlex.split(line)
            assert words[1] in commands, f"{page}: `{line}`: no command {words[1]!r}"
            command = commands[words[1]]
            options = {opt for param in command.params for opt in param.opts}
            options |= {"-h", "--help"}
            for word in words[2:]:
                if word.startswith("-"):
                    assert word.split("=")[0] in options, f"{page}: `{line}`: no option {word}"
                elif word.endswith(".yaml") and word.startswith("examples/"):
                    assert (ROOT / word).is_file(), f"{page}: `{line}`: no file {word}"


@pytest.mark.slow
@pytest.mark.parametrize("page", ["integrator-guide.md", "driver-author-guide.md"])
def test_python_in_the_guides_runs(page: str, tmp_path: Path) -> None:
    """The `python` blocks of a guide, in order, as one script in a fresh interpreter."""
    script = tmp_path / "guide.py"
    script.write_text("\n".join(_blocks(page, "python")), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=SAFETY_S,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "completed" in proc.stdout


@pytest.mark.slow
def test_mkdocs_build_is_strict_and_clean(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SAFETY_S,
        env=env,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "WARNING" not in output, output
    for page in ("index", "quickstart", "hil-guide", "safety", "reference/program", "design"):
        assert (tmp_path / "site" / page / "index.html").is_file() or page == "index"
    assert (tmp_path / "site" / "index.html").is_file()
