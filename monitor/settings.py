"""Loads and validates the config file (xborder.yaml) and the environment; first step of every command."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from monitor import yamlsrc
from monitor.alert.channels import Channel, JsonlChannel, RetrySettings
from monitor.errors import ConfigError, UsageError
from monitor.policy.register import (
    ApprovedSupplier,
    OverrideDef,
    Register,
    Strict,
    SystemDef,
    VendorDef,
    WaiverDef,
)

CONFIG_ENV = "XBORDER_CONFIG"
DEFAULT_CONFIG = "xborder.yaml"


class SourceDef(Strict):
    """A log source for `xborder run`: live files (globs allowed) read by one collector."""

    collector: str
    paths: list[str] = Field(min_length=1)  # live logs; rotated siblings are followed by inode and content
    options: dict[str, Any] = {}
    # First start (no checkpoint yet): "rotated" also reads the rotated generations already beside
    # each live file, oldest first (the history before xborder was installed, and whatever was
    # rotated before the first commit); "live" reads only the live files.
    backfill: Literal["rotated", "live"] = "rotated"


class RunSettings(Strict):
    poll_seconds: Annotated[float, Field(gt=0, le=60)] = 0.5  # new lines are picked up this often


class StoreSettings(Strict):
    url: str = "sqlite:///xborder.db"


class GeoipSettings(Strict):
    # any mix of City/Country/ASN/ISP databases; none: the offline RIR fallback is used
    databases: list[str] = []
    max_age_days: Annotated[int, Field(ge=1)] = 45
    # maxminddb reader: auto (C extension when present), mmap_ext, mmap, file, memory
    mode: Literal["auto", "mmap_ext", "mmap", "file", "memory"] = "auto"
    reload_check_seconds: Annotated[float, Field(ge=0)] = 30.0  # a replaced file is picked up this often


class CloudRangeFile(Strict):
    """A provider's published IP-range file (AWS ip-ranges.json, Google cloud.json, Azure service tags)."""

    provider: Literal["aws", "gcp", "azure", "auto"] = "auto"
    path: str


class AlertSettings(Strict):
    jsonl: str | None = "alerts.jsonl"  # shorthand for a jsonl channel named "jsonl"
    stderr: bool = True  # a one-line summary per alert for a person at the terminal (not an outbox channel)
    channels: list[Channel] = []
    retry: RetrySettings = RetrySettings()
    runbook_url: str | None = None  # put into every alert ("what next")
    # repeats of an open alert (same dedup key) within this many minutes are counted into it and
    # sent as one summary when the window ends; a higher severity always alerts at once
    suppress_minutes: Annotated[int, Field(ge=0, le=10080)] = 60

    @field_validator("channels")
    @classmethod
    def _unique_names(cls, v: list[Channel]) -> list[Channel]:
        names = [c.name for c in v]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise ValueError(f"channel name {dup!r} is used twice")
        return v

    def all_channels(self) -> list[Channel]:
        """The configured channels, the `jsonl:` shorthand included as a channel named "jsonl"
        (unless a configured channel already has that name)."""
        out: list[Channel] = list(self.channels)
        if self.jsonl and not any(c.name == "jsonl" for c in out):
            out.insert(0, JsonlChannel(name="jsonl", type="jsonl", path=self.jsonl))
        return out


class EvidenceSettings(Strict):
    window_minutes: Annotated[int, Field(ge=1, le=1440)] = 60

    @field_validator("window_minutes")
    @classmethod
    def _divides_day(cls, v: int) -> int:
        # a window must not straddle midnight: verdicts are per day
        if 1440 % v:
            raise ValueError("must divide a day (1440 minutes), e.g. 5, 15, 60, 1440")
        return v


class OrganisationSettings(Strict):
    name: str = "Example organisation"
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = "DE"
    # NIS2 (Directive (EU) 2022/2555) status: essential / important entity, or none
    nis2: Literal["essential", "important", "none"] = "none"


class Settings(Strict):
    organisation: OrganisationSettings = OrganisationSettings()
    store: StoreSettings = StoreSettings()
    geoip: GeoipSettings = GeoipSettings()
    alerts: AlertSettings = AlertSettings()
    evidence: EvidenceSettings = EvidenceSettings()
    rules_dir: str | None = None  # default: the rules/ shipped with xborder
    reports_dir: str = "reports-out"
    internal_networks: list[str] = []  # own ranges beyond RFC 1918/loopback: never a transfer
    sources: list[SourceDef] = []
    run: RunSettings = RunSettings()
    cloud_ranges: list[CloudRangeFile] = []
    overrides: list[OverrideDef] = []  # CIDR/hostname -> location/provider, first in the order of evidence
    unattributed: Literal["review", "personal"] = "review"
    systems: list[SystemDef] = []
    vendors: list[VendorDef] = []
    waivers: list[WaiverDef] = []
    approved_suppliers: list[ApprovedSupplier] = []


@dataclass(frozen=True)
class Config:
    """Validated settings plus where they came from (paths in them resolve against `base`)."""

    settings: Settings
    path: Path | None
    base: Path
    source: yamlsrc.Sourced | None = None  # for file:line of register entries on verdicts

    def resolve_path(self, p: str) -> Path:
        q = Path(p).expanduser()
        return q if q.is_absolute() else self.base / q

    @property
    def store_url(self) -> str:
        url = os.environ.get("XBORDER_DB_URL") or self.settings.store.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.resolve_path(url[len(prefix) :]))
        return url

    @property
    def register(self) -> Register:
        s = self.settings
        return Register(
            systems=s.systems,
            vendors=s.vendors,
            waivers=s.waivers,
            approved_suppliers=s.approved_suppliers,
            nis2_entity=s.organisation.nis2,
        )

    @property
    def rules_dir(self) -> Path:
        if self.settings.rules_dir:
            return self.resolve_path(self.settings.rules_dir)
        return default_rules_dir()


def default_rules_dir() -> Path:
    """rules/ beside the package in a checkout or editable install, else shipped data."""
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "rules", here / "_rules"):
        if cand.is_dir():
            return cand
    raise UsageError("cannot find the rules/ directory; set rules_dir in the config")


def find_config(explicit: str | None) -> Path | None:
    """-c/--config, then $XBORDER_CONFIG, then ./xborder.yaml; None when none exists."""
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise UsageError(f"config file not found: {explicit}")
        return p
    env = os.environ.get(CONFIG_ENV)
    if env:
        p = Path(env)
        if not p.is_file():
            raise UsageError(f"config file not found: {env} (from ${CONFIG_ENV})")
        return p
    p = Path(DEFAULT_CONFIG)
    return p if p.is_file() else None


def load_config(explicit: str | None = None, *, required: bool = False) -> Config:
    path = find_config(explicit)
    if path is None:
        if required:
            raise UsageError("no config: pass -c FILE, set $XBORDER_CONFIG, or run `xborder init DIR`")
        return Config(Settings(), None, Path.cwd())
    src = yamlsrc.load(path)
    # name clashes and references are checked on the raw data, so they are reported together
    # with every schema problem, not only once those are fixed
    from monitor.policy.lint import reference_errors

    raw = yamlsrc.duplicates(src, "systems", "name", "system") + yamlsrc.duplicates(src, "vendors", "name", "vendor")
    raw += reference_errors(src.data, src)
    try:
        settings = yamlsrc.validate(src, Settings)
    except ConfigError as exc:
        raise ConfigError(exc.problems + raw) from exc
    if raw:
        raise ConfigError(raw)
    return Config(settings, path, path.resolve().parent, src)
