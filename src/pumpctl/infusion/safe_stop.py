"""Stopping the pump and being sure of it (SR18): stop, re-read, repeat until confirmed.

A link that struggles is not flooded: retries back off (0.5, 1, 2, 4 s, then every 5 s) until a
deadline, after which the stop is reported unconfirmed, loudly: someone must go and look.
"""

from __future__ import annotations

from pumpctl.clock import Clock
from pumpctl.drivers.base import PumpAlarm, PumpDriver, PumpError, PumpState
from pumpctl.infusion.events import AlarmEvent, StopConfirmed
from pumpctl.infusion.recorder import RunRecorder
from pumpctl.log import get_logger

__all__ = ["confirm_stop"]

_log = get_logger("pumpctl.infusion.supervisor")

#: an alarm reply means the stop was not executed; resend at once this many times (a pump
#: reports each alarm once, so this converges in a few attempts)
_ALARM_RESENDS = 5
_MAX_BACKOFF_S = 5.0


async def confirm_stop(
    driver: PumpDriver,
    clock: Clock,
    recorder: RunRecorder,
    *,
    why: str,
    deadline_s: float,
    retry_interval_s: float,
) -> bool:
    """True once the pump reports it is not running; False when `deadline_s` of clock time
    passed without that (journaled as a `stop_unconfirmed` alarm)."""
    deadline = clock.now() + deadline_s
    attempt = 0
    while True:
        attempt += 1
        try:
            await driver.stop()
            status = await driver.read_status()
            if status.state is not PumpState.RUNNING:
                recorder.write(StopConfirmed(why=why, attempts=attempt))
                _log.info(
                    "pump.stop_confirmed", why=why, attempts=attempt, state=status.state.value
                )
                return True
        except PumpAlarm as exc:
            _log.warning("pump.stop_alarm_reply", reason=exc.reason.value, attempt=attempt)
            if attempt < _ALARM_RESENDS:
                continue
        except PumpError as exc:
            _log.warning("pump.stop_failed", attempt=attempt, error=str(exc))
        if clock.now() >= deadline:
            _log.critical(
                "pump.stop_unconfirmed",
                why=why,
                attempts=attempt,
                message="THE PUMP DID NOT CONFIRM THE STOP: check it by hand",
            )
            recorder.write(AlarmEvent(reason="stop_unconfirmed", attempts=attempt))
            return False
        backoff = retry_interval_s * 2 ** min(attempt - 1, 3)
        await clock.sleep(min(backoff, _MAX_BACKOFF_S))
