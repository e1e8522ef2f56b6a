"""Attribute stage: maps each unique (source IP, user) to the internal system it belongs to."""

from __future__ import annotations

import ipaddress

from monitor.policy.register import SystemDef
from monitor.records import System

UNATTRIBUTED = "unattributed"


class Inventory:
    """Users first (they name a service account), then the most specific source network."""

    def __init__(self, systems: list[SystemDef], unattributed_categories: tuple[str, ...] = ("unknown",)) -> None:
        self.systems = {
            s.name: System(s.name, tuple(s.data_categories), s.criticality, s.owner, s.nis2_scope) for s in systems
        }
        self.unattributed = System(UNATTRIBUTED, unattributed_categories, "normal", None)
        self.users = {u: s.name for s in systems for u in s.users}
        nets = [(ipaddress.ip_network(c, strict=False), s.name) for s in systems for c in s.sources]
        self.nets = sorted(nets, key=lambda n: n[0].prefixlen, reverse=True)

    def get(self, name: str) -> System:
        return self.systems.get(name, self.unattributed)

    def system_for(self, source_ip: str | None, user: str | None) -> System:
        if user and user in self.users:
            return self.systems[self.users[user]]
        if source_ip:
            try:
                addr = ipaddress.ip_address(source_ip)
            except ValueError:
                return self.unattributed
            for net, name in self.nets:
                if addr.version == net.version and addr in net:
                    return self.systems[name]
        return self.unattributed
