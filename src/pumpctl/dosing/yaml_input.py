"""Reading YAML input (programs, libraries, station files): one error type that names fields.

Every problem becomes an `Issue` with the dotted field path, the value and a message, and a
`ProgramError` carries all of them, so a bad file is refused in one pass naming each field.
Duplicate keys are refused (PyYAML silently keeps the last one); libyaml parses where PyYAML
has it.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["Issue", "ProgramError", "load_yaml_mapping"]

#: characters of an offending input quoted in an error message
_MAX_SHOWN = 60


class Issue(BaseModel):
    """One schema problem: dotted field path, the offending value and a message."""

    model_config = ConfigDict(frozen=True)
    field: str
    value: Any = None
    message: str


class ProgramError(ValueError):
    """The program file does not parse or does not validate; `issues` lists every problem."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("; ".join(f"{i.field}: {i.message}" for i in issues))

    @classmethod
    def from_validation(cls, exc: ValidationError, prefix: str = "") -> ProgramError:
        issues = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            field = f"{prefix}.{loc}" if prefix and loc else (loc or prefix or "program")
            msg = err["msg"].removeprefix("Value error, ")
            value = err.get("input")
            if isinstance(value, dict | list):
                value = None
            elif isinstance(value, str) and len(value) > _MAX_SHOWN:
                value = value[:_MAX_SHOWN] + "…"  # an error stays one readable line
            issues.append(Issue(field=field, value=value, message=msg))
        return cls(issues)

    @classmethod
    def from_os_error(cls, exc: OSError, field: str, path: str) -> ProgramError:
        return cls([Issue(field=field, value=path, message=f"cannot read: {exc.strerror or exc}")])


#: libyaml's parser where PyYAML was built with it (its wheels are): the same safe
#: constructor, parsing about 10x faster than the pure-Python one
_SafeLoader: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = (
    yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
)


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return dict(loader.construct_mapping(node))


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line error as one line: the problem and where (line and column)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return f"{exc.problem or exc.context or 'syntax error'}{where}"
    return " ".join(str(exc).split())


def load_yaml_mapping(text: str, what: str) -> dict[str, Any]:
    """Parse YAML text that must be a mapping; errors become a `ProgramError`."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ProgramError(
            [Issue(field=what, message=f"not valid YAML: {_yaml_problem(exc)}")]
        ) from exc
    except RecursionError as exc:  # deeply nested flow collections
        raise ProgramError(
            [Issue(field=what, message="not valid YAML: nested too deeply")]
        ) from exc
    if not isinstance(data, dict):
        raise ProgramError([Issue(field=what, message="must be a YAML mapping")])
    return data
