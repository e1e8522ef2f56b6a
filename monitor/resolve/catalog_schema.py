"""Resolve stage, catalog data: the validated shape of rules/catalog/ (regions and providers)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from monitor.policy.register import ISO2, Strict

Kind = Literal["ai-api", "payment", "analytics", "observability", "cloud", "cdn", "saas", "devtools"]
DpfStatus = Literal["certified", "not-listed", "unknown", "not-applicable"]
# ISO 3166-1 alpha-2, plus EU ("somewhere inside the EU") where a region or zone allows it
Country = ISO2
FILES = ("regions.yaml", "providers.yaml")
_NOT_SEATS = {"EU": "EU is not a country", "UK": "the ISO code is GB", "EL": "the ISO code is GR"}
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_LITERAL = re.compile(r"^[a-z0-9_-]*$")
_REGION_RE = r"(?P<region>[a-z0-9]+(?:-[a-z0-9]+)*)"
_ANY_RE = r"[a-z0-9_-]+"
_STAR_RE = r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*"


class RegionDef(Strict):
    country: Country
    name: str
    uncertain: bool = False
    note: str | None = None


class RegionsFile(Strict):
    regions: dict[str, dict[str, RegionDef]]
    sources: dict[str, str]


class Dpf(Strict):
    status: DpfStatus
    checked_on: dt.date
    source: str | None = None

    @model_validator(mode="after")
    def _sourced(self) -> Dpf:
        if self.status == "certified" and not self.source:
            raise ValueError("a DPF certification needs a source")
        return self


def check_pattern(p: str) -> str:
    """The pattern itself if it is well formed, else ValueError saying what is wrong."""
    if p != p.strip().lower() or p.endswith(".") or not p:
        raise ValueError("write patterns in lower case, without spaces or a trailing dot")
    labels = p.split(".")
    for label in labels:
        if "*" in label and label != "*":
            raise ValueError(f"'*' stands for whole labels only (got '{label}'): use {{any}} inside a label")
        if unknown := [n for n in _PLACEHOLDER.findall(label) if n not in ("region", "any")]:
            raise ValueError(f"unknown placeholder {{{unknown[0]}}}: use {{region}} or {{any}}")
        if label == "" or (label != "*" and not _LITERAL.match(_PLACEHOLDER.sub("", label))):
            raise ValueError(f"label '{label}' has characters a hostname cannot have")
    if p.count("{region}") > 1:
        raise ValueError("at most one {region} per pattern")
    if labels[-1] == "*" or "{" in labels[-1]:
        raise ValueError("the last label must be literal (e.g. the top-level domain)")
    return p


class HostDef(Strict):
    pattern: str
    region: str | None = None
    region_table: str | None = None
    processing_country: Country | None = None
    edge: bool | None = None  # overrides the provider's `edge` for this host
    note: str | None = None
    source: str | None = None
    uncertain: bool = False
    examples: list[str] = Field(min_length=1)

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str) -> str:
        return check_pattern(v)


class ProviderDef(Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    name: str
    legal_entity: str
    seat: ISO2
    eea_entity: str | None = None
    kind: Kind
    edge: bool = False
    asns: list[PositiveInt] = []
    dpf: Dpf
    source: str
    note: str | None = None
    uncertain: bool = False
    hosts: list[HostDef] = []

    @field_validator("seat")
    @classmethod
    def _real_country(cls, v: str) -> str:
        if v in _NOT_SEATS:
            raise ValueError(f"'{v}' cannot be a legal seat ({_NOT_SEATS[v]})")
        return v

    @model_validator(mode="after")
    def _dpf_fits_seat(self) -> ProviderDef:
        if self.dpf.status == "not-applicable" and self.seat == "US":
            raise ValueError("dpf status not-applicable is for entities seated outside the US")
        return self


class CatalogInfo(Strict):
    version: str
    checked: dt.date


class ProvidersFile(Strict):
    catalog: CatalogInfo
    providers: list[ProviderDef]
