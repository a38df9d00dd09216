"""Telling a pumpctl journal from any other file before opening it.

`pumpctl report notes.txt` used to end in `sqlite3.DatabaseError` with a stack, and an SQLite
file of something else was "journal schema 0": neither tells an operator they gave the wrong
file. The check reads only the SQLite header (magic string and `user_version`, which a
journal sets), so it works on a file that is not SQLite at all and never creates one.
"""

from __future__ import annotations

from pathlib import Path

from pumpctl.infusion.journal import Journal, JournalError

__all__ = ["NotAJournal", "check_journal_file", "open_journal_for_reading"]

_SQLITE_MAGIC = b"SQLite format 3\x00"
_USER_VERSION_OFFSET = 60  # big-endian 4 bytes in the database header (sqlite.org/fileformat)


class NotAJournal(JournalError):
    """The file exists but is not a pumpctl journal."""


def check_journal_file(path: Path) -> None:
    """Return if `path` is a pumpctl journal or does not exist yet (a run creates it);
    `NotAJournal` naming what it is otherwise."""
    if not path.exists():
        return
    if path.is_dir():
        raise NotAJournal(f"{path} is a directory, not a journal file")
    try:
        with path.open("rb") as fh:
            header = fh.read(100)
    except OSError as exc:
        raise NotAJournal(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not header:
        return  # an empty file: SQLite makes a new database of it
    hint = "give the --journal file of a `pumpctl run` or `pumpctl demo`"
    if not header.startswith(_SQLITE_MAGIC):
        raise NotAJournal(f"{path} is not a pumpctl journal (not an SQLite database): {hint}")
    version = int.from_bytes(header[_USER_VERSION_OFFSET : _USER_VERSION_OFFSET + 4], "big")
    if version == 0:
        raise NotAJournal(f"{path} is an SQLite database but not a pumpctl journal: {hint}")


def open_journal_for_reading(path: Path) -> Journal:
    """Open an existing journal read-only (`report`, `journal`); `NotAJournal` or
    `JournalError` with one readable line otherwise."""
    if not path.exists():
        raise JournalError(f"no journal at {path}")
    check_journal_file(path)
    if path.stat().st_size == 0:
        raise NotAJournal(f"{path} is empty, not a journal")
    return Journal.open_readonly(path)
