"""The client half of the control socket: `pumpctl ctl` sends one request and prints the reply.

The server half, the protocol and the socket's safety rules are in `pumpctl.operator.control`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pumpctl.clock import RealClock
from pumpctl.infusion.outcome import Progress
from pumpctl.operator.control_socket import (
    CTL_OK,
    CTL_REFUSED,
    CTL_UNREACHABLE,
    DEFAULT_TIMEOUT_S,
    MAX_LINE_BYTES,
    ControlError,
    _check_private_dir,
    _in_fallback_dir,
    control_socket_path,
    local_user,
)

__all__ = ["ctl", "format_reply", "send_request"]


async def send_request(
    path: Path, request: Mapping[str, Any], timeout_s: float = DEFAULT_TIMEOUT_S
) -> dict[str, Any]:
    """Send one request to the run listening on `path` and return its reply.

    Raises `ControlError` with an operator-readable message when no run listens, the reply
    does not come within `timeout_s` wall seconds, or the socket is not trustworthy.
    """
    path = Path(path)
    if _in_fallback_dir(path):
        _check_private_dir(path.parent, create=False)
    _check_socket_owner(path)
    line = b""
    try:
        async with RealClock().wall_timeout(timeout_s):
            reader, writer = await asyncio.open_unix_connection(
                os.fspath(path), limit=MAX_LINE_BYTES
            )
            try:
                writer.write(json.dumps(dict(request), separators=(",", ":")).encode() + b"\n")
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise ControlError(f"no run is listening on {path} (is `pumpctl run` running?)") from exc
    except PermissionError as exc:
        raise ControlError(
            f"permission denied on {path}: the control socket is owner-only; "
            "use the account that started the run"
        ) from exc
    except TimeoutError as exc:
        raise ControlError(
            f"no reply from the run within {timeout_s:g} s; the request may still be carried "
            "out: check with `pumpctl ctl status`"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ControlError(f"control socket {path}: {exc}") from exc
    if not line:
        raise ControlError("the run closed the connection without replying")
    try:
        reply = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ControlError(f"malformed reply from the run: {exc}") from exc
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise ControlError(f"malformed reply from the run: {reply!r}")
    return reply


def _check_socket_owner(path: Path) -> None:
    """Only talk to a socket of our own user (or anyone's, as root): no impostor runs."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return  # the connect reports "no run is listening"
    if not stat.S_ISSOCK(st.st_mode):
        raise ControlError(f"{path} is not a socket")
    euid = os.geteuid()
    if euid != 0 and st.st_uid != euid:
        raise ControlError(f"{path} belongs to uid {st.st_uid}, not to you; not using it")


def ctl(
    journal_path: Path,
    op: str,
    *,
    rate: str | None = None,
    reason: str = "",
    who: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> tuple[int, str]:
    """`pumpctl ctl`: send `op` to the run journaling to `journal_path`; (exit code, text)."""
    request: dict[str, Any] = {"op": op, "reason": reason, "who": who or local_user()}
    if rate is not None:
        request["rate"] = rate
    try:
        path = control_socket_path(journal_path)
        reply = asyncio.run(send_request(path, request, timeout_s))
    except ControlError as exc:
        return CTL_UNREACHABLE, f"error: {exc}"
    return format_reply(op, reply)


def format_reply(op: str, reply: Mapping[str, Any]) -> tuple[int, str]:
    """A reply as (exit code, readable text)."""
    if not reply.get("ok"):
        return CTL_REFUSED, f"refused: {reply.get('error', 'no reason given')}"
    try:
        progress = Progress.model_validate(reply.get("progress"))
    except ValidationError as exc:
        return CTL_UNREACHABLE, f"error: malformed progress in the reply: {exc}"
    done = {
        "status": "",
        "titrate": "titration accepted",
        "target": "TCI target accepted",
        "bolus": "bolus accepted",
        "pause": "paused",
        "resume": "resumed",
        "stop": "stop accepted: the run is stopping the pump",
        "syringe-changed": "container change confirmed: the infusion continues",
    }.get(op, op)
    return CTL_OK, (f"{done}\n" if done else "") + _format_progress(progress)


def _format_progress(p: Progress) -> str:
    dose = (
        f" ({p.dose_rate:.4g} {p.dose_rate_unit})"
        if p.dose_rate is not None and p.dose_rate_unit
        else ""
    )
    seg_planned = f" of {p.segment_planned_ml:.3f}" if p.segment_planned_ml is not None else ""
    total_planned = f" of {p.total_planned_ml:.3f}" if p.total_planned_ml is not None else ""
    lines = [
        f"phase     {p.phase}" + (f" (segment {p.segment.value})" if p.segment else ""),
        f"rate      {p.rate_ml_per_h:.3f} mL/h{dose}",
        f"segment   {p.segment_delivered_ml:.3f}{seg_planned} mL",
        f"total     {p.total_delivered_ml:.3f}{total_planned} mL",
    ]
    if p.segment_remaining_s is not None:
        from pumpctl.operator.display import format_duration

        lines.append(f"remaining {format_duration(p.segment_remaining_s)} in this segment")
    if p.plasma_ug_per_ml is not None and p.effect_ug_per_ml is not None:
        target = (
            f", target {p.tci_target_ug_per_ml:.3g}" if p.tci_target_ug_per_ml is not None else ""
        )
        lines.append(
            f"predicted plasma {p.plasma_ug_per_ml:.3g} ug/mL, effect site "
            f"{p.effect_ug_per_ml:.3g} ug/mL{target} (population model, not measured)"
        )
    lines.append(f"alarms    {', '.join(p.alarms) if p.alarms else 'none'}")
    return "\n".join(lines)
