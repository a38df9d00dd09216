"""Every way `pumpctl` can end has one documented exit code (issue 12): one table in code
(`EXIT_CODES`), the same table in the README and the operator guide, and no code shared by a
usage error and a refusal or a soft limit."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from pumpctl.families import models
from pumpctl.operator import control
from pumpctl.operator.cli import common, main
from pumpctl.operator.cli.common import EXIT_CODES, Exit, exit_code_table

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TABLE = re.compile(r"<!-- exit-codes -->\n(.*?)\n<!-- /exit-codes -->", re.S)


@pytest.mark.parametrize("page", ["README.md", "docs/operator-guide.md"])
def test_the_documented_table_is_the_table_in_code(page: str) -> None:
    found = TABLE.search((ROOT / page).read_text(encoding="utf-8"))
    assert found is not None, f"{page} has no <!-- exit-codes --> table"
    assert found.group(1) == exit_code_table(), (
        f"{page}: paste `python -c 'from pumpctl.operator.cli.common import exit_code_table as t;"
        " print(t())'` between the markers"
    )


def test_every_code_is_documented_once_and_usage_is_apart() -> None:
    assert list(EXIT_CODES) == list(Exit)  # nothing undocumented, nothing documented twice
    assert len({int(c) for c in Exit}) == len(Exit)
    assert Exit.USAGE not in (Exit.REFUSED, Exit.SOFT_LIMIT) and Exit.USAGE == 64
    assert control.CTL_OK == Exit.OK and control.CTL_REFUSED == Exit.REFUSED
    assert control.CTL_UNREACHABLE == Exit.NO_RUN  # was 3, the alarm code


def test_commands_exit_only_with_codes_from_the_table() -> None:
    """No bare integer reaches sys.exit in the CLI package: every ending goes through `Exit`."""
    for path in (ROOT / "src/pumpctl/operator/cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("sys.exit", "ctx.exit"):
                for arg in node.args:
                    assert not isinstance(arg, ast.Constant), f"{path.name}: {ast.unparse(node)}"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.output


@pytest.mark.parametrize(
    "args",
    [
        ["models", "--no-such-option"],
        ["no-such-command"],
        ["check"],
        ["run", str(EXAMPLES / "acute-pain.yaml"), "--port", "/dev/null"],  # --model missing
        ["ctl", "--journal", "j.sqlite", "titrate"],  # titrate without a rate
        ["report", str(EXAMPLES / "acute-pain.yaml"), "-o", "r.pdf"],
    ],
)
def test_click_usage_errors_exit_64_not_2(args: list[str]) -> None:
    code, output = invoke(*args)
    assert code == Exit.USAGE, output
    assert "Error:" in output


@pytest.mark.parametrize("command", ["run", "demo", "accuracy"])
def test_an_unknown_model_is_a_usage_error_listing_the_models(command: str) -> None:
    args = {
        "run": ["run", str(EXAMPLES / "acute-pain.yaml"), "--model", "ne100", "--port", "x"],
        "demo": ["demo", "--model", "ne100"],
        "accuracy": ["accuracy", "ne100"],
    }[command]
    code, output = invoke(*args)
    assert code == Exit.USAGE
    assert "unknown pump model 'ne100'; valid models: chemyx-fusion, hamilton-psd4," in output


def test_models_lists_families_pumps_and_line_settings() -> None:
    code, output = invoke("models")
    assert code == Exit.OK
    lines = output.splitlines()
    n = len(models())
    table = {line.split()[0]: line for line in lines[1 : n + 1]}
    pumps = dict(line.split(": ", 1) for line in lines[n + 1 :])
    assert set(table) == set(pumps) == set(models())
    assert {"ne1000", "harvard-legacy", "harvard-elite", "masterflex-ls"} <= set(table)
    assert "19200 8N1" in table["ne1000"] and "New Era" in table["ne1000"]
    assert "9600 8N2" in table["harvard-legacy"]
    assert "115200 8N1" in table["harvard-elite"]
    assert re.search(r"4800 7O1\s+1 \(1-89\)\s+Cole-Parmer Masterflex", table["masterflex-ls"])
    assert "PHD2000" in pumps["harvard-legacy"] and "NE-500" in pumps["ne1000"]


@pytest.mark.parametrize("command", ["report", "journal"])
@pytest.mark.parametrize("content", [b"hello\n", b"SQLite format 3\x00" + bytes(84)])
def test_a_file_that_is_not_a_journal_exits_65_with_one_line(
    tmp_path: Path, command: str, content: bytes
) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(content)
    result = CliRunner().invoke(
        main, [command, str(path), *(["-o", "r.png"] * (command == "report"))]
    )
    assert result.exit_code == Exit.BAD_INPUT
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {path} is ") and "not a pumpctl journal" in line
    assert path.read_bytes() == content  # untouched


def test_run_refuses_a_non_journal_before_opening_the_port(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a journal")
    code, output = invoke(
        "run", str(EXAMPLES / "acute-pain.yaml"), "--model", "ne1000",
        "--port", str(tmp_path / "no-such-port"), "--journal", str(notes),
    )  # fmt: skip
    assert code == Exit.BAD_INPUT
    assert "not a pumpctl journal" in output and "no-such-port" not in output


def test_ctrl_c_outside_an_infusion_exits_130_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("pumpctl.dosing.check.check_program", interrupted)
    result = CliRunner().invoke(main, ["check", str(EXAMPLES / "acute-pain.yaml")])
    assert result.exit_code == Exit.INTERRUPTED == 130
    assert result.stderr.strip() == "interrupted: no infusion was started"


def test_a_bug_exits_70_with_one_line_and_no_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something impossible")

    monkeypatch.setattr("pumpctl.dosing.check.check_program", broken)
    result = CliRunner().invoke(main, ["check", str(EXAMPLES / "acute-pain.yaml")])
    assert result.exit_code == Exit.INTERNAL
    (line,) = result.stderr.splitlines()
    assert line.startswith("internal error (a bug in pumpctl, please report it): RuntimeError:")


def test_help_lists_the_exit_codes() -> None:
    code, output = invoke("--help")
    assert code == Exit.OK
    assert "Exit codes: 0 ok, 1 refused, 2 soft limit, 3 alarm" in " ".join(output.split())
    assert common.exit_code_epilog().startswith("Exit codes: ")
