"""Step protocol between a client harness (run by the third-party venv's python) and its test.

The harness performs one operation of the unchanged client library, prints one JSON line
`{"step": NAME, "result": ...}` (or `{"step": NAME, "error": ...}` and exits 1), then waits for a
line on stdin before the next operation, so the test can check the simulator's ground truth
after every operation. Standard library only: it runs outside the project's venv.
"""

from __future__ import annotations

import inspect
import json
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import Any


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record, default=repr) + "\n")
    sys.stdout.flush()


def _wait() -> None:
    if not sys.stdin.readline():  # the test is gone: stop here
        sys.exit(0)


def step(name: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run `fn(*args, **kwargs)`, report it, wait for the go-ahead; return its result."""
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:
        _emit({"step": name, "error": f"{type(exc).__name__}: {exc}", "tb": traceback.format_exc()})
        sys.exit(1)
    _emit({"step": name, "result": result})
    _wait()
    return result


async def astep(
    name: str, fn: Callable[..., Awaitable[Any] | Any], /, *args: Any, **kwargs: Any
) -> Any:
    """`step` inside an event loop: `fn` may return an awaitable (awaited) or a value. The
    go-ahead is read blocking: between operations nothing else needs to run."""
    try:
        result = fn(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        _emit({"step": name, "error": f"{type(exc).__name__}: {exc}", "tb": traceback.format_exc()})
        sys.exit(1)
    _emit({"step": name, "result": result})
    _wait()
    return result
