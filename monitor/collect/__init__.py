"""Collect stage: one module per source kind, registered here by name."""

from __future__ import annotations

from monitor.collect.accesslog import AccessLogCollector, NginxCollector
from monitor.collect.base import LineCollector
from monitor.collect.squid import SquidCollector

COLLECTORS: dict[str, type[LineCollector]] = {
    SquidCollector.name: SquidCollector,
    AccessLogCollector.name: AccessLogCollector,
    NginxCollector.name: NginxCollector,
}
