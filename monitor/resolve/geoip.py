"""GeoIP over the configured MaxMind databases (geoip2): location, registration, ASN per IP; reloads changed files."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geoip2.database
import geoip2.errors
import maxminddb

from monitor.errors import DataSourceError

log = logging.getLogger("xborder.geoip")

COUNTRY_TYPES = ("City", "Country", "Enterprise")
ASN_TYPES = ("ASN", "ISP")
MODES = {
    "auto": maxminddb.MODE_AUTO,
    "mmap_ext": maxminddb.MODE_MMAP_EXT,  # the C extension
    "mmap": maxminddb.MODE_MMAP,  # pure Python, memory-mapped
    "file": maxminddb.MODE_FILE,
    "memory": maxminddb.MODE_MEMORY,
}


@dataclass(frozen=True)
class GeoFacts:
    located_country: str | None = None
    registered_country: str | None = None
    represented_country: str | None = None
    subdivision: str | None = None
    city: str | None = None
    asn: int | None = None
    as_org: str | None = None
    anycast: bool = False  # MaxMind traits.is_anycast: the location is one of many edges


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class GeoDatabase:
    """One opened mmdb file; its kind decides which lookups it answers."""

    def __init__(self, path: Path, mode: str = "auto") -> None:
        self.path = path
        self.mode = mode
        try:
            self.stamp = _stamp(path)
            self.reader = geoip2.database.Reader(str(path), mode=MODES[mode])
            meta = self.reader.metadata()
        except FileNotFoundError as exc:
            raise DataSourceError("GeoIP database not found", str(path)) from exc
        # The bad-data fixtures raise InvalidDatabaseError, UnicodeDecodeError, ValueError...:
        # any failure to open is a corrupt file as far as the operator is concerned.
        except Exception as exc:  # noqa: BLE001
            raise DataSourceError(f"not a valid MaxMind DB ({type(exc).__name__}: {exc})", str(path)) from exc
        self.database_type: str = meta.database_type
        self.build_epoch: int = int(meta.build_epoch)
        self.ip_version: int = int(meta.ip_version)
        if any(t in self.database_type for t in ASN_TYPES):
            self.kind = "asn"
        elif any(t in self.database_type for t in COUNTRY_TYPES):
            self.kind = "country"
        else:
            self.reader.close()
            raise DataSourceError(
                f"database type '{self.database_type}' is neither a City/Country nor an ASN/ISP database", str(path)
            )
        self._probe()

    def _probe(self) -> None:
        # Some corrupt files open fine and fail only on lookup: walk a spread of addresses now
        # so the error is reported at start-up, naming the file, not mid-ingest.
        probes = ["1.1.1.1", "8.8.8.8", "81.2.69.142", "175.16.199.1", "216.160.83.56", "89.160.20.112"]
        if self.ip_version == 6:
            probes += ["2001:db8::1", "2001:218::1", "2a02:cf40::1", "::1"]
        for ip in probes:
            try:
                self.lookup(ip)
            except DataSourceError:
                self.reader.close()
                raise

    @property
    def build(self) -> str:
        return f"{self.database_type}@{self.build_epoch}"

    def built_on(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.build_epoch, dt.UTC)

    def changed(self) -> bool:
        try:
            return _stamp(self.path) != self.stamp
        except OSError:
            return False  # mid-replacement (renamed away): keep the open one until it is back

    def lookup(self, ip: str) -> GeoFacts:
        try:
            if self.kind == "asn":
                rec: Any = self.reader.isp(ip) if "ISP" in self.database_type else self.reader.asn(ip)
                return GeoFacts(asn=rec.autonomous_system_number, as_org=rec.autonomous_system_organization)
            if "City" in self.database_type or "Enterprise" in self.database_type:
                rec = self.reader.city(ip) if "City" in self.database_type else self.reader.enterprise(ip)
                sub = rec.subdivisions.most_specific.iso_code if rec.subdivisions else None
                city = rec.city.name
            else:
                rec, sub, city = self.reader.country(ip), None, None
            return GeoFacts(
                located_country=rec.country.iso_code,
                registered_country=rec.registered_country.iso_code,
                represented_country=rec.represented_country.iso_code,
                subdivision=sub,
                city=city,
                anycast=bool(getattr(rec.traits, "is_anycast", False)),
            )
        except (geoip2.errors.AddressNotFoundError, ValueError):
            return GeoFacts()
        except Exception as exc:  # noqa: BLE001 - corrupt data surfaces as many exception types
            raise DataSourceError(f"lookup of {ip} failed: {type(exc).__name__}: {exc}", str(self.path)) from exc

    def close(self) -> None:
        self.reader.close()


class GeoIP:
    """All configured databases; merges their answers for one IP and reloads files that change."""

    def __init__(self, paths: list[Path], mode: str = "auto", check_every: float = 30.0) -> None:
        self.mode = mode
        self.check_every = check_every
        self._checked = time.monotonic()
        self.databases: list[GeoDatabase] = []
        try:
            for p in paths:
                self.databases.append(GeoDatabase(p, mode))
        except DataSourceError:
            self.close()
            raise

    @property
    def build(self) -> str | None:
        return ",".join(d.build for d in self.databases) or None

    def reload_changed(self, force: bool = False) -> bool:
        """Reopen databases whose file changed (at most every `check_every` s); True if any did.

        A replacement that fails to open is logged and the old database stays in use, so a
        half-copied download never stops ingest.
        """
        now = time.monotonic()
        if not force and now - self._checked < self.check_every:
            return False
        self._checked = now
        changed = False
        for i, d in enumerate(self.databases):
            if not d.changed():
                continue
            try:
                fresh = GeoDatabase(d.path, self.mode)
            except DataSourceError as exc:
                log.error("GeoIP reload refused, keeping build %s: %s", d.build, exc)
                d.stamp = _stamp(d.path) if d.path.exists() else d.stamp  # do not retry until it changes again
                continue
            log.warning("GeoIP database %s reloaded: %s -> %s", d.path, d.build, fresh.build)
            d.close()
            self.databases[i] = fresh
            changed = True
        return changed

    def stale(self, max_age_days: int, now: dt.datetime) -> list[str]:
        out = []
        for d in self.databases:
            age = (now - d.built_on()).days
            if age > max_age_days:
                out.append(f"{d.path}: built {d.built_on():%Y-%m-%d}, {age} days old (limit {max_age_days})")
        return out

    def lookup(self, ip: str) -> tuple[GeoFacts, list[tuple[str, str]]]:
        located = registered = represented = org = sub = city = None
        asn = None
        anycast = False
        sources: list[tuple[str, str]] = []
        for d in self.databases:
            f = d.lookup(ip)
            label = f"geoip:{d.path.name}@{d.build_epoch}"
            if f.located_country and not located:
                located, sub, city = f.located_country, f.subdivision, f.city
                sources.append(("located_country", label))
            if f.registered_country and not registered:
                registered = f.registered_country
                sources.append(("registered_country", label))
            if f.represented_country and not represented:
                represented = f.represented_country
                sources.append(("represented_country", label))
            if f.anycast and not anycast:
                anycast = True
                sources.append(("anycast", label))
            if f.asn is not None and asn is None:
                asn, org = f.asn, f.as_org
                sources.append(("asn", label))
        return GeoFacts(located, registered, represented, sub, city, asn, org, anycast), sources

    def close(self) -> None:
        for d in self.databases:
            d.close()
