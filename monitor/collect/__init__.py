"""Collect stage: one module per source kind, registered here by name."""

from __future__ import annotations

from monitor.collect.accesslog import AccessLogCollector, NginxCollector
from monitor.collect.base import LineCollector
from monitor.collect.envoy import EnvoyCollector
from monitor.collect.generic import CsvCollector, JsonLinesCollector
from monitor.collect.haproxy import HaproxyCollector
from monitor.collect.squid import SquidCollector
from monitor.collect.zeek import ZeekCollector

COLLECTORS: dict[str, type[LineCollector]] = {
    SquidCollector.name: SquidCollector,
    AccessLogCollector.name: AccessLogCollector,
    NginxCollector.name: NginxCollector,
    EnvoyCollector.name: EnvoyCollector,
    HaproxyCollector.name: HaproxyCollector,
    ZeekCollector.name: ZeekCollector,
    JsonLinesCollector.name: JsonLinesCollector,
    CsvCollector.name: CsvCollector,
}
