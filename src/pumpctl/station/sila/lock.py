"""LockController done as the standard says (sila2's bundled one is not, see docs/sila.md).

- Only the calls given as `protected` need the lock identifier, and only while the server is
  locked: an unlocked station needs no metadata (the bundled one demands it and then fails).
- `Timeout` 0 means no timeout (the bundled one expires at once).
- Every call with the valid identifier restarts the timeout (the bundled one never does).
- Thread-safe: sila2 calls in from many worker threads.
Stops (InfusionProgramService.Stop, PumpFluidDosingService.StopDosage) are deliberately not
protected: an emergency stop must never wait for whoever holds the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, cast

from sila2.features.lockcontroller import (
    InvalidLockIdentifier,
    LockControllerBase,
    LockControllerFeature,
    LockServer_Responses,
    ServerAlreadyLocked,
    ServerNotLocked,
    UnlockServer_Responses,
)
from sila2.framework import Command, Feature, FullyQualifiedIdentifier, Metadata, Property
from sila2.server import MetadataDict, MetadataInterceptor, SilaServer

from pumpctl.clock import wall_monotonic
from pumpctl.log import get_logger

__all__ = ["StationLockController"]

Protected = Feature | Command | Property | FullyQualifiedIdentifier
_LOCK_ID = cast(Metadata[Any], LockControllerFeature["LockIdentifier"])


class StationLockController(LockControllerBase):
    def __init__(self, parent_server: SilaServer, protected: Sequence[Protected]) -> None:
        super().__init__(parent_server=parent_server)
        self._protected = list(protected)
        self._mutex = threading.Lock()
        self._token: str | None = None
        self._timeout_s = 0.0
        self._last_use_s = 0.0
        self.log = get_logger("pumpctl.station.sila.lock")
        parent_server.add_metadata_interceptor(_LockInterceptor(self))

    def _expire(self) -> None:
        """Drop an expired lock; call with the mutex held."""
        if (
            self._token is not None
            and self._timeout_s > 0
            and wall_monotonic() - self._last_use_s > self._timeout_s
        ):
            self._token = None
            self.log.warning("sila.lock_expired", timeout_s=self._timeout_s)

    @property
    def locked(self) -> bool:
        with self._mutex:
            self._expire()
            return self._token is not None

    def check(self, token: str) -> None:
        """Accept `token` for a protected call (and refresh the timeout), or refuse it."""
        with self._mutex:
            self._expire()
            if self._token is None:
                return
            if token != self._token:
                raise InvalidLockIdentifier("The sent lock identifier is not valid.")
            self._last_use_s = wall_monotonic()

    def get_IsLocked(self, *, metadata: MetadataDict) -> bool:
        return self.locked

    def LockServer(
        self, LockIdentifier: str, Timeout: int, *, metadata: MetadataDict
    ) -> LockServer_Responses:
        with self._mutex:
            self._expire()
            if self._token is not None:
                raise ServerAlreadyLocked("The server is locked by another client.")
            self._token, self._timeout_s = LockIdentifier, float(Timeout)
            self._last_use_s = wall_monotonic()
        self.log.info("sila.locked", timeout_s=Timeout)
        return LockServer_Responses()

    def UnlockServer(
        self, LockIdentifier: str, *, metadata: MetadataDict
    ) -> UnlockServer_Responses:
        with self._mutex:
            self._expire()
            if self._token is None:
                raise ServerNotLocked("The server is not locked.")
            if LockIdentifier != self._token:
                raise InvalidLockIdentifier("The sent lock identifier is not valid.")
            self._token = None
        self.log.info("sila.unlocked")
        return UnlockServer_Responses()

    def get_calls_affected_by_LockIdentifier(self) -> list[Protected]:
        # sila2 asks this on every request to know which metadata the call requires
        return list(self._protected) if self.locked else []


class _LockInterceptor(MetadataInterceptor):
    def __init__(self, lock: StationLockController) -> None:
        super().__init__([_LOCK_ID])
        self.lock = lock

    def intercept(
        self, parameters: Any, metadata: MetadataDict, target_call: FullyQualifiedIdentifier
    ) -> None:
        self.lock.check(metadata[_LOCK_ID])
