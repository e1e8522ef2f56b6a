"""Alert stage: the configured channels built into alerters (config -> Channels), each by its registered type."""

from __future__ import annotations

from typing import Any

from monitor.alert import ALERTERS
from monitor.alert.base import Alerter
from monitor.alert.channels import Route
from monitor.alert.incidents import IncidentPolicy
from monitor.alert.outbox import Channels
from monitor.alert.stderr import StderrAlerter
from monitor.errors import UsageError
from monitor.settings import Config

STDERR = "stderr"  # the `alerts.stderr: true` echo, a channel like the others


def build_alerter(cfg: Any, config: Config) -> Alerter:
    cls: Any = ALERTERS.get(cfg.type)
    if cls is None:
        raise UsageError(f"alert channel '{cfg.name}': type '{cfg.type}' is not available")
    alerter: Alerter = cls.from_channel(cfg, config.base)
    return alerter


def make_channels(config: Config) -> Channels:
    a = config.settings.alerts
    alerters: dict[str, Alerter] = {}
    routes: dict[str, Route] = {}
    for cfg in a.all_channels():
        alerters[cfg.name] = build_alerter(cfg, config)
        routes[cfg.name] = cfg.route
    if a.stderr and STDERR not in alerters:
        alerters[STDERR] = StderrAlerter()
        routes[STDERR] = Route()
    st = config.settings
    policy = IncidentPolicy(
        nis2_entity=st.organisation.nis2 != "none",
        nis2_systems=frozenset(x.name for x in st.systems if x.criticality in ("high", "critical")),
    )
    limits = {c.name: c.max_per_minute for c in a.all_channels() if c.max_per_minute}
    return Channels(alerters, routes, a.retry, policy, limits)
