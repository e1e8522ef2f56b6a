"""Finds the register vendor behind a destination (by domain suffix or provider name)."""

from __future__ import annotations

from monitor.policy.case import Extras, SupplierRef, VendorRef, WaiverRef
from monitor.policy.register import Derogation, Register, VendorDef
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


class RegisterIndex:
    """Everything the evaluator needs from the register for one (system, destination): vendor and Extras."""

    def __init__(self, register: Register, source: Sourced | None = None) -> None:
        self.vendors = VendorIndex(register.vendors, source)
        self.nis2_entity = register.nis2_entity
        self.suppliers: dict[str, SupplierRef] = {}
        for i, a in enumerate(register.approved_suppliers):
            where = str(source.where(("approved_suppliers", i))) if source else f"approved supplier '{a.vendor}'"
            self.suppliers[a.vendor.lower()] = SupplierRef(a, where)
        self.waivers: dict[str, list[WaiverRef]] = {}
        for i, w in enumerate(register.waivers):
            where = str(source.where(("waivers", i))) if source else f"waiver for '{w.system}'"
            self.waivers.setdefault(w.system, []).append(WaiverRef(w, where))
        self._by_dest: dict[int, tuple[Destination, VendorRef | None]] = {}

    def vendor(self, dest: Destination) -> VendorRef | None:
        # Asked twice for every evidence row of every batch, for the few Destination objects the
        # resolver hands out again and again: remembered by object (a Destination is frozen; the
        # entry keeps it alive, so its id is not reused while remembered).
        hit = self._by_dest.get(id(dest))
        if hit is not None and hit[0] is dest:
            return hit[1]
        ref = self.vendors.match(dest)
        if len(self._by_dest) > 10_000:
            self._by_dest.clear()
        self._by_dest[id(dest)] = (dest, ref)
        return ref

    def extras(self, system: str, dest: Destination, vendor: VendorRef | None, volume: int | None = None) -> Extras:
        supplier = self.suppliers.get(vendor.vendor.name.lower()) if vendor else None
        return Extras(self._waiver(system, dest, vendor), self.nis2_entity, supplier, volume)

    def _waiver(self, system: str, dest: Destination, vendor: VendorRef | None) -> WaiverRef | None:
        for w in self.waivers.get(system, ()):
            target = w.waiver.destination.lower()
            if vendor is not None and vendor.vendor.name.lower() == target:
                return w
            host = (dest.host or "").lower()
            if host and (host == target or host.endswith("." + target)) or dest.ip == target:
                return w
        return None

    def has_derogation_limit(self, vendor: VendorRef | None) -> bool:
        return vendor is not None and any(
            isinstance(m, Derogation) and m.occasional_limit_per_day is not None for m in vendor.vendor.mechanisms
        )
