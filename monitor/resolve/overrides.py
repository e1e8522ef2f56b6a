"""Operator overrides from the config: a CIDR or hostname pinned to a location or provider (first evidence)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from monitor.policy.register import OverrideDef
from monitor.yamlsrc import Sourced

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Override:
    spec: OverrideDef
    where: str  # config file:line


class Overrides:
    """Hostnames match exactly or, for `*.example.com`, any subdomain; CIDRs by longest prefix."""

    def __init__(self, defs: list[OverrideDef], source: Sourced | None = None, key: str = "overrides") -> None:
        self.hosts: dict[str, Override] = {}
        self.suffixes: dict[str, Override] = {}
        self.nets: list[tuple[Network, Override]] = []
        for i, d in enumerate(defs):
            o = Override(d, str(source.where((key, i))) if source else f"override #{i + 1}")
            if d.host:
                h = d.host.lower().rstrip(".")
                if h.startswith("*."):
                    self.suffixes[h[2:]] = o
                else:
                    self.hosts[h] = o
            if d.cidr:
                self.nets.append((ipaddress.ip_network(d.cidr, strict=False), o))
        self.nets.sort(key=lambda n: n[0].prefixlen, reverse=True)

    def __bool__(self) -> bool:
        return bool(self.hosts or self.suffixes or self.nets)

    def for_host(self, host: str | None) -> Override | None:
        if not host:
            return None
        h = host.lower().rstrip(".")
        if h in self.hosts:
            return self.hosts[h]
        while "." in h:
            h = h.partition(".")[2]
            if h in self.suffixes:
                return self.suffixes[h]
        return None

    def for_ip(self, ip: str | None) -> Override | None:
        if not ip or not self.nets:
            return None
        addr = ipaddress.ip_address(ip)
        for net, o in self.nets:
            if addr.version == net.version and addr in net:
                return o
        return None
