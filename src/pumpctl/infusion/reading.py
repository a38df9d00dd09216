"""One poll's reading of the pump: what is a missed poll, and what is a corrupted reading.

A lost or garbled reply counts as a missed poll, and enough of them is a lost link (SR17,
SR20). On a protocol without a checksum a garbled digit parses as a valid number: an alarm that
a reading's numbers alone raise (deviation, over-delivery, a counter gone back) is confirmed by
a second reading before it is acted on; the first is then discarded, and logged. A changed
digit small enough to pass is booked; the reading after it, carrying on from the one before,
replaces it (`SegmentLedger.counter_reading`), and that is logged too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pumpctl.clock import Clock
from pumpctl.drivers.base import (
    DeliveredVolume,
    ProtocolError,
    PumpAlarm,
    PumpDriver,
    PumpError,
    PumpState,
    PumpStatus,
    PumpTimeout,
)
from pumpctl.infusion.commands import PumpCommands
from pumpctl.infusion.ledger import READING_ALARMS, Alarm, SegmentLedger, Tolerances

if TYPE_CHECKING:
    from pumpctl.infusion.segment import PollSettings

__all__ = ["PumpReader"]


class PumpReader:
    def __init__(
        self,
        driver: PumpDriver,
        clock: Clock,
        cmds: PumpCommands,
        settings: PollSettings,
        log: Any,
    ) -> None:
        self.driver, self.clock, self.cmds, self.settings, self.log = (
            driver,
            clock,
            cmds,
            settings,
            log,
        )
        self.missed_polls = 0

    async def take(
        self, ledger: SegmentLedger, tolerances: Tolerances
    ) -> tuple[PumpStatus, float] | None:
        """Read and book into `ledger`: the status and when it came back, None for a missed
        poll. `Alarm` for what the reading means, once a second reading confirms it."""
        reading = await self.read()
        if reading is None:
            return None
        status, delivered, replied = reading
        saved = ledger.reading_state()
        try:
            ledger.take_reading(status, delivered, replied, tolerances)
        except Alarm as first:
            if first.reason not in READING_ALARMS or status.state is PumpState.ALARM:
                raise  # what the pump itself reports is not a number to doubt
            ledger.restore_reading(saved)
            again = await self.read()
            if again is None:  # unconfirmed either way: the next poll decides
                return None
            status, delivered, replied = again
            ledger.take_reading(status, delivered, replied, tolerances)  # raises if confirmed
            # SR20: the first reading was corrupted in transit; it is not acted on
            self.log.warning("poll.reading_discarded", reason=first.reason, detail=first.detail)
        if ledger.replaced_ml is not None:  # SR20: the reading before this one was corrupted
            self.log.warning(
                "poll.reading_replaced", was_ml=ledger.replaced_ml, now_ml=ledger.counter_ml
            )
        return status, replied

    async def read(self) -> tuple[PumpStatus, DeliveredVolume, float] | None:
        """The pump's status and counters, and when they came back; None for a missed poll."""
        try:
            status, delivered = await self.driver.read_poll()
        except PumpAlarm as exc:
            raise Alarm(exc.reason.value, str(exc)) from exc
        except (PumpTimeout, ProtocolError) as exc:
            # silence is measured when the miss is known (after the driver's retries), not
            # when the poll began: a poll that retries for 3 s is 3 s more of silence (SR17)
            self._missed(self.clock.now(), exc)
            return None
        except PumpError as exc:
            raise Alarm("pump_error", str(exc)) from exc
        self.missed_polls = 0
        # the counter was read when the reply came back, not when the poll began: on a rig
        # running 1000x faster than real time a 10 ms reply is 10 s of pumping
        replied = self.clock.now()
        self.cmds.last_reply_s = replied
        return status, delivered, replied

    def _missed(self, now: float, exc: PumpError) -> None:
        """SR17/SR20: a lost or garbled reply counts; enough of them is a lost link."""
        self.missed_polls += 1
        silence = now - self.cmds.last_reply_s
        self.log.warning(
            "poll.missed", missed=self.missed_polls, silence_s=round(silence, 3), error=str(exc)
        )
        settings = self.settings
        if self.missed_polls >= settings.max_missed or silence >= settings.max_silence_s:
            raise Alarm(
                "communication_lost",
                f"{self.missed_polls} missed polls, {silence:.1f} s without a valid reply",
            ) from exc
