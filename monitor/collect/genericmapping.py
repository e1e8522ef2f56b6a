"""Collect stage, JSON/CSV exports: the field mapping and the other options, checked before any line is read."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from monitor.errors import UsageError

# BATCH_SCHEMA fields an export can fill, in the order of xborder's own CSV layout (the default).
FIELDS = ("ts", "source_ip", "source_user", "dest_host", "dest_ip", "dest_port", "method", "status", "bytes_out",
          "bytes_in", "url")  # fmt: skip
DESTINATION = ("dest_host", "dest_ip", "url")  # a row needs one of these
TS_FORMATS = ("auto", "epoch", "epoch_ms", "epoch_us", "iso8601")
BLOCKED = ("block", "blocked", "deny", "denied", "drop", "dropped", "reject", "rejected")


def mapping_options(mapping: Mapping[str, str] | str | None, ts_format: str) -> tuple[dict[str, str], str]:
    """Field -> export name (a mapping, or a JSON object or FIELD=NAME,... from -o) and the time format, checked."""
    ts_format = str(ts_format)
    if isinstance(mapping, str):  # from `-o mapping=...`: JSON object or "ts=time,dest_host=host"
        try:
            mapping = json.loads(mapping) if mapping.strip().startswith("{") else dict(
                p.split("=", 1) for p in mapping.split(",") if p.strip())  # fmt: skip
        except (ValueError, TypeError) as err:
            raise UsageError(f"option 'mapping': expected a JSON object or FIELD=NAME,..., got {mapping!r}") from err
    if mapping is not None and not isinstance(mapping, Mapping):
        raise UsageError(f"option 'mapping': expected FIELD: NAME pairs, got {mapping!r}")
    m = {str(k).strip(): str(v).strip() for k, v in (mapping or {f: f for f in FIELDS}).items()}
    for key, value in m.items():
        if key not in FIELDS:
            raise UsageError(f"option 'mapping': unknown field '{key}'; known: {', '.join(FIELDS)}")
        if not value:
            raise UsageError(f"option 'mapping': field '{key}' maps to an empty name")
    if "ts" not in m or not any(f in m for f in DESTINATION):
        raise UsageError("option 'mapping' must map 'ts' and at least one of dest_host, dest_ip, url")
    if ts_format not in TS_FORMATS and "%" not in ts_format:
        known = ", ".join(TS_FORMATS)
        raise UsageError(f"option 'ts_format': expected one of {known} or a strptime format, got {ts_format!r}")
    return m, ts_format


def name_list(value: Sequence[str] | str | None, option: str) -> tuple[str, ...] | None:
    """A list of names (a sequence or "a,b,c" from -o); None when not given."""
    if value is None:
        return None
    names = tuple(v.strip() for v in (value.split(",") if isinstance(value, str) else value))
    if not names or not all(names):
        raise UsageError(f"option '{option}': expected a list of names, got {value!r}")
    return names
