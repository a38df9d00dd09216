"""Operator control of a running `pumpctl run` from another terminal (SR09, SR10).

`pumpctl run --journal J` listens on a UNIX socket next to the journal (`J.ctl`); `pumpctl ctl
--journal J OP` connects to it (`pumpctl.operator.control_client`). The socket is the only way in: local, owner-only (mode 0600, so
the kernel refuses other users' connects), no network. Every request goes through the
supervisor's operator API, which queues it to the one task that owns the pump, applies the
titration limits and journals the change; this module only parses, validates and logs.

Protocol: JSON lines, one request -> one reply, several requests per connection allowed::

    {"op": "titrate", "rate": "0.3 mg/kg/h", "reason": "distress", "who": "alice"}
    -> {"ok": true, "progress": {...}}  |  {"ok": false, "error": "..."}

A malformed request gets an error reply and never takes the server (or the run) down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pumpctl.clock import RealClock
from pumpctl.infusion.requests import SupervisorError
from pumpctl.infusion.supervisor import Supervisor
from pumpctl.log import get_logger
from pumpctl.operator.control_pk import PK_OPS, execute, precheck
from pumpctl.operator.control_socket import (
    CLOSE_GRACE_S,
    CTL_OK,
    CTL_REFUSED,
    CTL_UNREACHABLE,
    DEFAULT_TIMEOUT_S,
    MAX_LINE_BYTES,
    MAX_UNIX_PATH_BYTES,
    ControlError,
    _bind_owner_only,
    _check_private_dir,
    _in_fallback_dir,
    _peer_uid,
    control_socket_path,
    local_user,
)

__all__ = [
    "CTL_OK",
    "CTL_REFUSED",
    "CTL_UNREACHABLE",
    "DEFAULT_TIMEOUT_S",
    "MAX_UNIX_PATH_BYTES",
    "OPS",
    "ControlError",
    "ControlRequest",
    "ControlServer",
    "control_socket_path",
    "local_user",
]

OPS = ("status", "titrate", "pause", "resume", "stop", "syringe-changed", "target", "bolus")

RateParser = Callable[[str], float]


class ControlRequest(BaseModel):
    """One operator request; unknown keys and non-string values are refused (no typo passes)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    op: Literal[
        "status", "titrate", "pause", "resume", "stop", "syringe-changed", "target", "bolus"
    ]
    reason: str = Field(default="", max_length=1000)
    who: str | None = Field(default=None, max_length=200)
    #: with units, as the operator typed it ("0.3 mg/kg/h"; a target "0.4 ug/mL", a bolus
    #: "0.1 mg/kg"); a bare number is ambiguous
    rate: str | None = Field(default=None, max_length=200)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err["loc"]) or "request"
        parts.append(f"{where}: {err['msg']}")
    return "bad request: " + "; ".join(parts)


class ControlServer:
    """Serves the control socket of one supervisor; `async with ControlServer(...):`.

    `rate_parser` turns the operator's rate text into mL/h for this run's plan (normally
    `titration.dose_rate_to_ml_per_h(text, plan)`, which refuses bare mL/h for library drugs,
    SR04); by default that function is used with the supervisor's plan.
    """

    def __init__(
        self,
        supervisor: Supervisor,
        path: Path,
        *,
        rate_parser: RateParser | None = None,
    ) -> None:
        self.supervisor = supervisor
        self.path = Path(path)
        self._rate_parser = rate_parser
        self._server: asyncio.Server | None = None
        self._identity: tuple[int, int] | None = None
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._closing = False
        self.log = get_logger(
            "pumpctl.operator.control",
            pump_id=supervisor.driver.pump_id,
            program_id=supervisor.plan.program,
            socket=str(self.path),
        )

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen; refuses if a live server answers on the path, removes a stale socket file."""
        if self._server is not None:
            raise RuntimeError("control server already started")
        if len(os.fsencode(self.path)) > MAX_UNIX_PATH_BYTES:
            raise ControlError(f"{self.path} is longer than {MAX_UNIX_PATH_BYTES} bytes")
        if _in_fallback_dir(self.path):
            _check_private_dir(self.path.parent, create=True)
        await self._clear_stale()
        sock, self._identity = _bind_owner_only(self.path)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, sock=sock, limit=MAX_LINE_BYTES
            )
        except BaseException:
            sock.close()
            self._unlink_own_socket()
            raise
        self.log.info("control.listening")

    async def _clear_stale(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlError(f"{self.path} exists and is not a socket; not replacing it")
        try:
            async with RealClock().wall_timeout(2.0):
                _reader, writer = await asyncio.open_unix_connection(os.fspath(self.path))
        except (ConnectionRefusedError, FileNotFoundError):
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.log.info("control.stale_socket_removed")
            return
        except TimeoutError:
            pass  # something holds the path but does not accept: treat as live, do not steal it
        except OSError as exc:
            raise ControlError(f"cannot check {self.path}: {exc}") from exc
        else:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        raise ControlError(f"another run is already listening on {self.path}")

    async def close(self) -> None:
        """Stop listening, end open connections, remove our socket file (not someone else's).

        A connection waiting for the supervisor gets `CLOSE_GRACE_S` to receive its reply (the
        request itself is shielded and completes inside the supervisor regardless).
        """
        server, self._server = self._server, None
        if server is None:
            return
        self._closing = True
        server.close()
        for writer in self._connections.values():
            writer.close()  # an idle connection sees EOF and ends by itself
        pending = set(self._connections)
        if pending:
            _done, pending = await asyncio.wait(pending, timeout=CLOSE_GRACE_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await server.wait_closed()
        self._unlink_own_socket()
        self.log.info("control.closed")

    def _unlink_own_socket(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if (st.st_dev, st.st_ino) == self._identity:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def __aenter__(self) -> ControlServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- connections ---------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections[task] = writer
        try:
            await self._converse(reader, writer)
        except asyncio.CancelledError:
            # asyncio (3.11) logs a cancelled connection task as an error; when the cancel is
            # ours (close), end quietly
            if not self._closing:
                raise
        finally:
            writer.close()
            if task is not None:
                self._connections.pop(task, None)

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer_uid = _peer_uid(writer)
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # the line overran MAX_LINE_BYTES
                    await self._send(writer, _error(f"request longer than {MAX_LINE_BYTES} bytes"))
                    return
                if not line:
                    return
                if not line.strip():
                    continue
                reply = await self.handle_line(line, peer_uid=peer_uid)
                await self._send(writer, reply)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; whatever it asked was already handled or never read

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, reply: Mapping[str, Any]) -> None:
        writer.write(json.dumps(reply, separators=(",", ":")).encode() + b"\n")
        await writer.drain()

    async def handle_line(self, line: bytes, *, peer_uid: int | None = None) -> dict[str, Any]:
        """One raw request line -> its reply; never raises (a bad client must not stop a run)."""
        try:
            data = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.log.warning("control.malformed", error=str(exc), peer_uid=peer_uid)
            return _error(f"malformed request (one JSON object per line expected): {exc}")
        try:
            request = ControlRequest.model_validate(data)
        except ValidationError as exc:
            message = _validation_message(exc)
            self.log.warning("control.malformed", error=message, peer_uid=peer_uid)
            return _error(message)
        try:
            return await self.handle(request, peer_uid=peer_uid)
        except Exception as exc:  # a bug here must not take the run down with it
            self.log.exception("control.internal_error", op=request.op)
            return _error(f"internal error: {exc}")

    async def handle(
        self, request: ControlRequest, *, peer_uid: int | None = None
    ) -> dict[str, Any]:
        """Execute one validated request through the supervisor's operator API."""
        sup = self.supervisor
        who = (request.who or "").strip() or local_user()
        reason = request.reason.strip()
        fields: dict[str, Any] = {
            "op": request.op,
            "who": who,
            "reason": reason,
            "peer_uid": peer_uid,
        }
        if request.rate is not None:
            fields["rate"] = request.rate
        error = self._precheck(request, reason)
        if error is None:
            try:
                # shield: if this connection is dropped mid-request, the queued request still
                # completes inside the supervisor instead of being cancelled under its feet
                if request.op == "pause":
                    await asyncio.shield(sup.pause(reason=reason, who=who))
                elif request.op == "resume":
                    await asyncio.shield(sup.resume(who=who))
                elif request.op == "stop":
                    await asyncio.shield(sup.stop(reason=reason, who=who))
                elif request.op == "syringe-changed":
                    await asyncio.shield(sup.container_changed(who=who))
                elif request.op in PK_OPS:
                    assert request.rate is not None
                    await execute(sup, request.op, request.rate, reason=reason, who=who)
                elif request.op == "titrate":
                    assert request.rate is not None
                    rate_ml_per_h = self._parse_rate(request.rate)
                    fields["rate_ml_per_h"] = rate_ml_per_h
                    await asyncio.shield(sup.titrate(rate_ml_per_h, reason=reason, who=who))
            except SupervisorError as exc:
                error = str(exc)
            except _RateError as exc:
                error = str(exc)
        if error is not None:
            self.log.warning("control.refused", error=error, **fields)
            return _error(error)
        progress = sup.progress()
        if request.op != "status":
            self.log.info("control.done", phase=progress.phase, **fields)
        return {"ok": True, "progress": progress.model_dump(mode="json")}

    @staticmethod
    def _precheck(request: ControlRequest, reason: str) -> str | None:
        if request.op in PK_OPS:
            return precheck(request.op, request.rate, reason)
        if request.op == "titrate":
            if request.rate is None or not request.rate.strip():
                return "titrate needs a rate with units, e.g. '0.3 mg/kg/h'"
            if not reason:
                return "titrate needs a reason (SR10)"
        elif request.rate is not None:
            return f"{request.op} takes no rate"
        return None

    def _parse_rate(self, text: str) -> float:
        parser = self._rate_parser
        if parser is None:
            from pumpctl.dosing.titration import dose_rate_to_ml_per_h

            plan = self.supervisor.plan

            def parser(t: str) -> float:
                return dose_rate_to_ml_per_h(t, plan)

        from pumpctl.dosing.titration import TitrationRefused

        try:
            return float(parser(text))
        except TitrationRefused as exc:  # names its field already ("rate: ...")
            raise _RateError(str(exc)) from exc
        except Exception as exc:  # the parser's errors are the operator's input errors
            raise _RateError(f"rate {text!r}: {exc}") from exc


class _RateError(Exception):
    pass


def _error(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}


# ---------------------------------------------------------------------------------- client
