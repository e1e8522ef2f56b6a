"""Collect stage: one module per source kind, registered here by name."""

from __future__ import annotations

from typing import Any

from monitor.collect.accesslog import AccessLogCollector, NginxCollector
from monitor.collect.base import LineCollector
from monitor.collect.envoy import EnvoyCollector
from monitor.collect.generic import CsvCollector, JsonLinesCollector
from monitor.collect.haproxy import HaproxyCollector
from monitor.collect.squid import SquidCollector
from monitor.collect.zeek import ZeekCollector
from monitor.errors import UsageError

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


def make_collector(name: str, options: dict[str, Any] | None = None) -> Any:
    """The registered collector `name`, built with its options (a bad option is a UsageError)."""
    if name not in COLLECTORS:
        raise UsageError(f"unknown collector '{name}'; known: {', '.join(sorted(COLLECTORS))}")
    try:
        return COLLECTORS[name](**(options or {}))
    except TypeError as exc:  # an option the collector does not take
        raise UsageError(f"collector '{name}': {exc}") from exc
