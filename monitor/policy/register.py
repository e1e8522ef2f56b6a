"""The organisation's register (systems, vendors and their transfer mechanisms) as validated models."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ISO2 = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SystemDef(Strict):
    name: str
    sources: list[str] = []  # CIDRs or single addresses
    users: list[str] = []  # proxy-authenticated user names
    data_categories: list[str]
    criticality: Literal["low", "normal", "high", "critical"] = "normal"
    owner: str | None = None
    nis2_scope: bool = True  # supports the service that makes the organisation a NIS2 entity

    @field_validator("sources")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        for s in v:
            try:
                ipaddress.ip_network(s, strict=False)
            except ValueError as exc:
                raise ValueError(f"'{s}' is not an IP address or CIDR") from exc
        return v


class Dpf(Strict):
    type: Literal["dpf"]
    # eu-us = the EU-US Data Privacy Framework; the historic EU-US programmes are kept so that
    # past transfers can be judged as of their day
    framework: Literal["eu-us", "uk-ext", "swiss-us", "privacy-shield", "safe-harbour"] = "eu-us"
    certified_since: dt.date
    scope: Literal["hr", "non-hr", "both"] = "non-hr"
    checked_on: dt.date | None = None  # when the DPF List entry was last looked at
    lapsed_on: dt.date | None = None  # certification lapsed / withdrawn (first day not covered)


class Scc(Strict):
    type: Literal["scc"]
    module: Literal[1, 2, 3, 4]
    signed: dt.date
    tia: dt.date | None = None  # transfer impact assessment date (Clause 14)
    expires: dt.date | None = None
    version: Literal["2021/914", "2010/87", "2001/497", "2004/915"] = "2021/914"


class Bcr(Strict):
    type: Literal["bcr"]
    approved_on: dt.date
    authority: str | None = None


class Derogation(Strict):
    type: Literal["derogation"]
    point: Literal["a", "b", "c", "d", "e", "f", "g", "compelling-interests"]
    justification: str
    occasional_limit_per_day: int | None = None  # requests/day that still count as occasional
    recorded_on: dt.date | None = None  # Art. 49(6): documented in the records of processing


class AdequacyScope(Strict):
    """The recipient is confirmed inside a limited adequacy decision's scope (e.g. PIPEDA, APPI)."""

    type: Literal["adequacy-scope"]
    country: ISO2
    confirmed_on: dt.date
    note: str | None = None


Mechanism = Annotated[Dpf | Scc | Bcr | Derogation | AdequacyScope, Field(discriminator="type")]


class VendorDef(Strict):
    name: str
    domains: list[str] = []  # a destination matches a domain and all its subdomains
    legal_entity: str | None = None
    seat: ISO2 | None = None
    same_entity: bool = False  # the organisation itself abroad: not a transfer (EDPB 05/2021)
    mechanisms: list[Mechanism] = []

    @field_validator("domains")
    @classmethod
    def _lower(cls, v: list[str]) -> list[str]:
        return [d.strip().lower().lstrip(".") for d in v]


class OverrideDef(Strict):
    """Pin a CIDR or hostname (exact, or `*.example.com`) to facts the operator knows better."""

    cidr: str | None = None
    host: str | None = None
    country: Annotated[str, Field(pattern=r"^([A-Z]{2})$")] | None = None  # ISO code, or EU for "inside the EU"
    provider: str | None = None
    legal_entity: str | None = None
    seat: ISO2 | None = None
    region: str | None = None
    internal: bool = False  # our own network: never a transfer
    note: str | None = None

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                ipaddress.ip_network(v, strict=False)
            except ValueError as exc:
                raise ValueError(f"'{v}' is not an IP address or CIDR") from exc
        return v

    @model_validator(mode="after")
    def _one_target(self) -> OverrideDef:
        if (self.cidr is None) == (self.host is None):
            raise ValueError("give exactly one of 'cidr' or 'host'")
        if not (self.internal or self.country or self.provider):
            raise ValueError("an override must set 'country', 'provider' or 'internal: true'")
        return self


class WaiverDef(Strict):
    """Accepted risk for one system sending to one destination (vendor name or domain), until it expires."""

    system: str
    destination: str  # a vendor name or a domain (matches its subdomains)
    justification: str
    approved_by: str
    granted: dt.date
    expires: dt.date

    @model_validator(mode="after")
    def _order(self) -> WaiverDef:
        if self.expires < self.granted:
            raise ValueError("expires is before granted")
        return self


class ApprovedSupplier(Strict):
    """NIS2 Art. 21(2)(d): a supplier approved after a supply-chain security assessment."""

    vendor: str
    approved_on: dt.date
    approved_by: str | None = None
    review_due: dt.date | None = None


class Register(Strict):
    systems: list[SystemDef] = []
    vendors: list[VendorDef] = []
    waivers: list[WaiverDef] = []
    approved_suppliers: list[ApprovedSupplier] = []
    nis2_entity: Literal["essential", "important", "none"] = "none"
