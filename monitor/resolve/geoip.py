"""GeoIP over the configured MaxMind databases (geoip2): country, registered country, ASN per IP."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geoip2.database
import geoip2.errors

from monitor.errors import DataSourceError

COUNTRY_TYPES = ("City", "Country", "Enterprise")
ASN_TYPES = ("ASN", "ISP")


@dataclass(frozen=True)
class GeoFacts:
    located_country: str | None = None
    registered_country: str | None = None
    represented_country: str | None = None
    asn: int | None = None
    as_org: str | None = None


class GeoDatabase:
    """One opened mmdb file; its kind decides which lookups it answers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.reader = geoip2.database.Reader(str(path))
            meta = self.reader.metadata()
        except FileNotFoundError as exc:
            raise DataSourceError("GeoIP database not found", str(path)) from exc
        # The bad-data fixtures raise InvalidDatabaseError, UnicodeDecodeError, ValueError...:
        # any failure to open is a corrupt file as far as the operator is concerned.
        except Exception as exc:  # noqa: BLE001
            raise DataSourceError(f"not a valid MaxMind DB ({type(exc).__name__}: {exc})", str(path)) from exc
        self.database_type: str = meta.database_type
        self.build_epoch: int = int(meta.build_epoch)
        if any(t in self.database_type for t in ASN_TYPES):
            self.kind = "asn"
        elif any(t in self.database_type for t in COUNTRY_TYPES):
            self.kind = "country"
        else:
            self.reader.close()
            raise DataSourceError(
                f"database type '{self.database_type}' is neither a City/Country nor an ASN/ISP database",
                str(path),
            )
        self._probe()

    def _probe(self) -> None:
        # Some corrupt files open fine and fail only on lookup: try one of each family now so
        # the error is reported at start-up, naming the file, not mid-ingest.
        for ip in ("1.1.1.1", "2001:db8::1", "81.2.69.142"):
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

    def lookup(self, ip: str) -> GeoFacts:
        try:
            if self.kind == "asn":
                rec: Any = self.reader.isp(ip) if "ISP" in self.database_type else self.reader.asn(ip)
                return GeoFacts(asn=rec.autonomous_system_number, as_org=rec.autonomous_system_organization)
            rec = self.reader.city(ip) if "City" in self.database_type else self.reader.country(ip)
            return GeoFacts(
                located_country=rec.country.iso_code,
                registered_country=rec.registered_country.iso_code,
                represented_country=rec.represented_country.iso_code,
            )
        except (geoip2.errors.AddressNotFoundError, ValueError):
            return GeoFacts()
        except Exception as exc:  # noqa: BLE001 - corrupt data surfaces as many exception types
            raise DataSourceError(f"lookup of {ip} failed: {type(exc).__name__}: {exc}", str(self.path)) from exc

    def close(self) -> None:
        self.reader.close()


class GeoIP:
    """All configured databases; merges their answers for one IP."""

    def __init__(self, paths: list[Path]) -> None:
        self.databases: list[GeoDatabase] = []
        try:
            for p in paths:
                self.databases.append(GeoDatabase(p))
        except DataSourceError:
            self.close()
            raise

    @property
    def build(self) -> str | None:
        return ",".join(d.build for d in self.databases) or None

    def stale(self, max_age_days: int, now: dt.datetime) -> list[str]:
        out = []
        for d in self.databases:
            age = (now - d.built_on()).days
            if age > max_age_days:
                out.append(f"{d.path}: built {d.built_on():%Y-%m-%d}, {age} days old (limit {max_age_days})")
        return out

    def lookup(self, ip: str) -> tuple[GeoFacts, list[tuple[str, str]]]:
        located = registered = represented = org = None
        asn = None
        sources: list[tuple[str, str]] = []
        for d in self.databases:
            f = d.lookup(ip)
            if f.located_country and not located:
                located = f.located_country
                sources.append(("located_country", f"geoip:{d.path.name}"))
            if f.registered_country and not registered:
                registered = f.registered_country
                sources.append(("registered_country", f"geoip:{d.path.name}"))
            represented = represented or f.represented_country
            if f.asn is not None and asn is None:
                asn, org = f.asn, f.as_org
                sources.append(("asn", f"geoip:{d.path.name}"))
        return GeoFacts(located, registered, represented, asn, org), sources

    def close(self) -> None:
        for d in self.databases:
            d.close()


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
