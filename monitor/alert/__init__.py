"""Alert stage: the outbox deliverer and one module per channel, registered by channel type."""

from __future__ import annotations

from monitor.alert.base import Alerter
from monitor.alert.jsonl import JsonlAlerter
from monitor.alert.smtp import EmailAlerter
from monitor.alert.stderr import StderrAlerter
from monitor.alert.stdout import StdoutAlerter
from monitor.alert.syslog import SyslogAlerter
from monitor.alert.webhook import WebhookAlerter

# channel type (the `type:` of an alerts.channels entry) -> class with from_channel(cfg, base_dir)
ALERTERS: dict[str, type[Alerter]] = {
    EmailAlerter.name: EmailAlerter,
    JsonlAlerter.name: JsonlAlerter,
    StderrAlerter.name: StderrAlerter,
    StdoutAlerter.name: StdoutAlerter,
    SyslogAlerter.name: SyslogAlerter,
    WebhookAlerter.name: WebhookAlerter,
}
