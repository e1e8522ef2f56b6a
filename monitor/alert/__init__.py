"""Alert stage: the outbox deliverer and one module per channel, registered by name."""

from __future__ import annotations

from monitor.alert.base import Alerter
from monitor.alert.jsonl import JsonlAlerter
from monitor.alert.stderr import StderrAlerter

ALERTERS: dict[str, type[Alerter]] = {
    JsonlAlerter.name: JsonlAlerter,
    StderrAlerter.name: StderrAlerter,
}
