"""What one evaluation looks at: the system, the destination, the day, and the register entries that apply."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from monitor.policy.register import ApprovedSupplier, VendorDef, WaiverDef
from monitor.policy.rulepack import RulePack
from monitor.records import Destination, System


@dataclass(frozen=True)
class WaiverRef:
    waiver: WaiverDef
    where: str


@dataclass(frozen=True)
class SupplierRef:
    entry: ApprovedSupplier
    where: str


@dataclass(frozen=True)
class Extras:
    """Register facts beyond the vendor: waiver, NIS2 status and approval, today's volume."""

    waiver: WaiverRef | None = None
    nis2_entity: str = "none"  # essential / important / none
    supplier: SupplierRef | None = None  # the vendor's approved-supplier entry, if any
    volume: int | None = None  # requests this system sent to this destination that day, as known


@dataclass(frozen=True)
class VendorRef:
    """A register vendor with where it is written (config file:line)."""

    vendor: VendorDef
    where: str
    mechanism_where: tuple[str, ...] = ()


@dataclass
class Case:
    """What the checks look at, and what a matching check found (for the verdict's basis)."""

    pack: RulePack
    system: System
    dest: Destination
    day: dt.date
    vendor: VendorRef | None
    extras: Extras = field(default_factory=lambda: Extras())
    found: list[str] = field(default_factory=list)
    rule_id: str | None = None
    rule_where: str | None = None
    article: str | None = None  # a check may narrow the step's article, e.g. 49(1)(b)

    @property
    def volume(self) -> int | None:
        return self.extras.volume

    @property
    def waiver(self) -> WaiverRef | None:
        return self.extras.waiver

    @property
    def country(self) -> str | None:
        return self.dest.country

    def mechanisms(self) -> list[tuple[object, str]]:
        if self.vendor is None:
            return []
        locs = self.vendor.mechanism_where or tuple(self.vendor.where for _ in self.vendor.vendor.mechanisms)
        return list(zip(self.vendor.vendor.mechanisms, locs, strict=False))
