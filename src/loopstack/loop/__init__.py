"""The closed loop: triggers, gates, rollouts, the controller."""

from loopstack.loop._controller import Controller, ControllerEvent, StepReport
from loopstack.loop._cron import CronSchedule
from loopstack.loop._firings import FiringView, loop_status
from loopstack.loop._trigger_store import StoredTrigger, TriggerStore
from loopstack.loop._triggers import KINDS, Firing, Trigger

__all__ = [  # noqa: RUF022 - plain sorted(), as the package test expects
    "Controller",
    "ControllerEvent",
    "CronSchedule",
    "Firing",
    "FiringView",
    "KINDS",
    "StepReport",
    "StoredTrigger",
    "Trigger",
    "TriggerStore",
    "loop_status",
]
