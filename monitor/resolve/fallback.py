"""Offline fallback when no mmdb is configured: the registered country from RIR data (iptocc)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import iptocc


def data_version() -> str:
    try:
        return f"iptocc@{version('iptocc')}"
    except PackageNotFoundError:  # pragma: no cover
        return "iptocc@unknown"


def registered_countries(ips: list[str]) -> list[str | None]:
    """RIR-registered country per address, in order; None where unknown or not an address."""
    if not ips:
        return []
    try:
        out: list[str | None] = iptocc.country_code(ips)
        return out
    except (ValueError, TypeError):
        # one bad address fails the whole call: fall back to one at a time
        res: list[str | None] = []
        for ip in ips:
            try:
                res.append(iptocc.country_code(ip))
            except (ValueError, TypeError):
                res.append(None)
        return res
