"""Finds the register vendor behind a destination (by domain suffix or provider name)."""

from __future__ import annotations

from monitor.policy.evaluator import VendorRef
from monitor.policy.register import VendorDef
from monitor.records import Destination
from monitor.yamlsrc import Sourced


class VendorIndex:
    def __init__(self, vendors: list[VendorDef], source: Sourced | None = None, key: str = "vendors") -> None:
        self.by_domain: dict[str, VendorRef] = {}
        self.by_name: dict[str, VendorRef] = {}
        for i, v in enumerate(vendors):
            where = str(source.where((key, i))) if source else f"vendor '{v.name}'"
            mwhere = tuple(
                str(source.where((key, i, "mechanisms", j))) if source else where for j in range(len(v.mechanisms))
            )
            ref = VendorRef(v, where, mwhere)
            self.by_name[v.name.lower()] = ref
            if v.legal_entity:  # a catalog may name the contracting entity rather than the brand
                self.by_name.setdefault(v.legal_entity.lower(), ref)
            for d in v.domains:
                self.by_domain[d] = ref

    def match(self, dest: Destination) -> VendorRef | None:
        host = (dest.host or "").lower().rstrip(".")
        # longest matching suffix wins: eu.api.example.com before example.com
        while host:
            ref = self.by_domain.get(host)
            if ref is not None:
                return ref
            host = host.partition(".")[2]
        for name in (dest.legal_entity, dest.provider):
            if name and name.lower() in self.by_name:
                return self.by_name[name.lower()]
        return None
