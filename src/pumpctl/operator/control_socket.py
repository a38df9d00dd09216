"""The control socket's path and its safety rules: owner-only, private directory, peer uid.

Shared by the server (`pumpctl.operator.control`) and the client (`control_client`).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import hashlib
import os
import socket
import stat
import struct
import tempfile
from pathlib import Path

__all__ = [
    "CLOSE_GRACE_S",
    "CTL_OK",
    "CTL_REFUSED",
    "CTL_UNREACHABLE",
    "DEFAULT_TIMEOUT_S",
    "MAX_LINE_BYTES",
    "MAX_UNIX_PATH_BYTES",
    "ControlError",
    "control_socket_path",
    "local_user",
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


class ControlError(Exception):
    """The control socket cannot be used: no run listening, another server, unsafe path."""


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
