"""Builds the Resolver from the config: GeoIP databases, provider catalog, cloud IP ranges, overrides."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from monitor.policy.rulepack import RulePack
from monitor.resolve.geoip import GeoIP
from monitor.resolve.jurisdiction import Resolver
from monitor.resolve.overrides import Overrides
from monitor.settings import Config

log = logging.getLogger("xborder.resolve")


def catalog_dir(config: Config) -> Path:
    return config.rules_dir / "catalog"


def build_resolver(config: Config, pack: RulePack, mmdb: list[Path] | None = None) -> Resolver:
    """`mmdb` replaces the configured databases (for `xborder resolve --mmdb`)."""
    from monitor.resolve.cloudranges import CloudRanges

    s = config.settings
    paths = mmdb if mmdb is not None else [config.resolve_path(p) for p in s.geoip.databases]
    geoip = GeoIP(paths, s.geoip.mode, s.geoip.reload_check_seconds) if paths else None
    try:
        if geoip is not None:
            for warning in geoip.stale(s.geoip.max_age_days, dt.datetime.now(dt.UTC)):
                log.warning("stale GeoIP database: %s", warning)
        catalog = None
        if catalog_dir(config).is_dir():
            from monitor.resolve.catalog import load_catalog

            catalog = load_catalog(catalog_dir(config))
        ranges = (
            CloudRanges([(r.provider, config.resolve_path(r.path)) for r in s.cloud_ranges]) if s.cloud_ranges else None
        )
    except Exception:
        if geoip is not None:
            geoip.close()
        raise
    return Resolver(
        in_eea=pack.in_eea,
        geoip=geoip,
        catalog=catalog,
        ranges=ranges,
        overrides=Overrides(s.overrides, config.source),
        internal_networks=s.internal_networks,
    )
