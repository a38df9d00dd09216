"""Operator control of a running `pumpctl run` from another terminal (SR09, SR10).

`pumpctl run --journal J` listens on a UNIX socket next to the journal (`J.ctl`); `pumpctl ctl
--journal J OP` connects to it. The socket is the only way in: local, owner-only (mode 0600, so
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
import getpass
import hashlib
import json
import os
import socket
import stat
import struct
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pumpctl.clock import RealClock
from pumpctl.infusion.outcome import Progress
from pumpctl.infusion.requests import SupervisorError
from pumpctl.infusion.supervisor import Supervisor
from pumpctl.log import get_logger

__all__ = [
    "CTL_OK",
    "CTL_REFUSED",
    "CTL_UNREACHABLE",
    "MAX_UNIX_PATH_BYTES",
    "OPS",
    "ControlError",
    "ControlRequest",
    "ControlServer",
    "control_socket_path",
    "ctl",
    "format_reply",
    "local_user",
    "send_request",
]

#: Linux `sun_path` is 108 bytes including the terminating NUL.
MAX_UNIX_PATH_BYTES = 107
#: a request or reply line longer than this is refused (a titration needs < 1 KiB)
MAX_LINE_BYTES = 64 * 1024
#: how long `ctl` waits for the run's reply: a request waits for the supervisor's next turn
#: (at most one poll interval plus one pump exchange), so this is generous
DEFAULT_TIMEOUT_S = 15.0
#: on close, how long an in-flight request may still take to get its reply (wall seconds)
CLOSE_GRACE_S = 2.0

#: `pumpctl ctl` exit codes (2 is click's usage error)
CTL_OK = 0
CTL_REFUSED = 1  # the run answered and refused (wrong phase, titration limit, bad rate...)
CTL_UNREACHABLE = 14  # Exit.NO_RUN: no run listening, no reply, or the socket cannot be trusted

OPS = ("status", "titrate", "pause", "resume", "stop", "syringe-changed")

RateParser = Callable[[str], float]


class ControlError(Exception):
    """The control socket cannot be used: no run listening, another server, unsafe path."""


class ControlRequest(BaseModel):
    """One operator request; unknown keys and non-string values are refused (no typo passes)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    op: Literal["status", "titrate", "pause", "resume", "stop", "syringe-changed"]
    reason: str = Field(default="", max_length=1000)
    who: str | None = Field(default=None, max_length=200)
    #: with units, as the operator typed it ("0.3 mg/kg/h"); a bare number is ambiguous
    rate: str | None = Field(default=None, max_length=200)


def local_user() -> str:
    """The login name of this process's user (who is asking), else its uid."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return f"uid{os.getuid()}"


# ---------------------------------------------------------------------------------- socket path


def _fallback_dir() -> Path:
    """Owner-only directory for sockets whose natural path is too long."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime and Path(runtime).is_dir() else Path(tempfile.gettempdir())
    return base / f"pumpctl-{os.getuid()}"


def control_socket_path(journal_path: Path) -> Path:
    """The run's control socket: `run.sqlite` -> `run.sqlite.ctl`, next to the journal.

    AF_UNIX paths are limited to 107 bytes. Only when the absolute path next to the journal is
    longer does the socket move to `$XDG_RUNTIME_DIR/pumpctl-<uid>/` (else the temp dir), named
    by a hash of the journal's absolute path, so `run` and `ctl` still derive the same path from
    the same journal. The server creates that directory 0700 and both sides check its owner.
    """
    journal = Path(journal_path).expanduser().resolve()
    natural = journal.with_name(journal.name + ".ctl")
    if len(os.fsencode(natural)) <= MAX_UNIX_PATH_BYTES:
        return natural
    digest = hashlib.sha256(os.fsencode(journal)).hexdigest()[:24]
    short = _fallback_dir() / f"{digest}.ctl"
    if len(os.fsencode(short)) > MAX_UNIX_PATH_BYTES:
        raise ControlError(
            f"no control socket path under {MAX_UNIX_PATH_BYTES} bytes for {journal}"
        )
    return short


def _check_private_dir(directory: Path, *, create: bool) -> None:
    """The fallback directory must be ours and closed to others (else anyone could pose as a run)."""
    if create:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        return  # nothing there: the connect will say no run is listening
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise ControlError(f"{directory} is not a private directory of this user; not using it")


def _in_fallback_dir(path: Path) -> bool:
    return path.parent == _fallback_dir()


# ---------------------------------------------------------------------------------- server


def _bind_owner_only(path: Path) -> tuple[socket.socket, tuple[int, int]]:
    """Bind a listening AF_UNIX socket created 0600 (no window where others may connect).

    The umask is process-wide; it is tightened only around `bind`, so at worst a file created by
    another thread in that instant is *more* private than intended, never less.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound = False
    try:
        old_umask = os.umask(0o177)
        try:
            sock.bind(os.fspath(path))
            bound = True
        finally:
            os.umask(old_umask)
        path.chmod(0o600)  # in case a platform ignores the umask for sockets
        st = os.lstat(path)
        if not stat.S_ISSOCK(st.st_mode) or stat.S_IMODE(st.st_mode) != 0o600:
            raise ControlError(f"{path} did not come out as an owner-only socket")
        if st.st_uid != os.geteuid():
            raise ControlError(f"{path} is not owned by this user")
        sock.listen(8)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        if bound:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return sock, (st.st_dev, st.st_ino)


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    """The connecting process's uid (Linux SO_PEERCRED), for the audit log; None elsewhere."""
    sock = writer.get_extra_info("socket")
    peercred = getattr(socket, "SO_PEERCRED", None)
    if sock is None or peercred is None:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, peercred, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", raw)
    return int(uid)


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
    lines.append(f"alarms    {', '.join(p.alarms) if p.alarms else 'none'}")
    return "\n".join(lines)
