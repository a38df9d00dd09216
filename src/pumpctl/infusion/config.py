"""How a supervisor polls, tolerates and stops: the numbers behind SR15, SR17-SR19 and SR22."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SupervisorConfig"]


class SupervisorConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    poll_interval_s: float = Field(default=1.0, gt=0)
    #: SR17: this many consecutive missed polls, or this much silence, is a comm alarm
    max_missed_polls: int = Field(default=3, ge=1)
    max_silence_s: float = Field(default=5.0, gt=0)
    #: SR19: pump link watchdog, at least 2 x poll interval; None disables
    watchdog_timeout_s: float | None = Field(default=10.0, gt=0)
    #: SR15: paused longer than this raises an alarm (the patient gets no drug)
    max_pause_s: float = Field(default=15 * 60.0, gt=0)
    #: SR22: allowed |pump counter - rate x time| beyond stated accuracy and timing jitter
    deviation_floor_ml: float = Field(default=0.05, ge=0)
    #: wall seconds two processes' scaled clocks may drift apart (a simulator and its rig under
    #: load): multiplied by the time scale, it widens the SR22 tolerance on scaled clocks only
    wall_jitter_s: float = Field(default=0.25, ge=0)
    #: SR18: how long to keep retrying the stop before reporting it unconfirmed
    stop_confirm_deadline_s: float = Field(default=30.0, gt=0)
    stop_retry_interval_s: float = Field(default=0.5, gt=0)
    #: journal a delivered-volume checkpoint at least this often (clock seconds)
    checkpoint_interval_s: float = Field(default=60.0, gt=0)
    #: a watcher's progress at least this often (clock seconds), and at every change it shows
    progress_interval_s: float = Field(default=1.0, gt=0)
