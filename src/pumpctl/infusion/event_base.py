"""The base every typed journal event derives from, and what a payload value is.

Kept apart from `events` (the models of every kind but notes, and the parsing) and from
`note_events` (the notes) so that both can build on it without importing each other.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from pumpctl.infusion.journal import EventKind

__all__ = ["Json", "Record"]

Json = Any  # a JSON value (the journal refuses anything json.dumps would not write strictly)


class Record(BaseModel):
    """Frozen; unknown keys are kept (a newer writer may add fields an older reader ignores)."""

    model_config = ConfigDict(frozen=True, extra="allow")
    kind: ClassVar[EventKind]

    def payload(self) -> dict[str, Json]:
        return self.model_dump(mode="json", exclude_none=False)
