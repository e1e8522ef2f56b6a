"""Evaluate and record, for one batch: resolve and judge once per unique key, aggregate evidence rows and alerts."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from monitor.collect.arrowtext import unique_rows
from monitor.records import Destination, ObservationBatch, Outcome, System, Verdict

if TYPE_CHECKING:
    from monitor.pipeline import Runtime

Pair = tuple[str | None, str | None]


def _pairs(a: pa.ChunkedArray, b: pa.ChunkedArray) -> tuple[np.ndarray[Any, Any], list[Pair]]:
    """Each row's index into the distinct (a, b) pairs, in order of first appearance; "" is null."""
    inv, first = unique_rows([a, b])
    pick = pa.array(first)
    # "" and null are one key (a collector may give either for "none"): fold them together
    canon: dict[Pair, int] = {}
    remap = np.array(
        [
            canon.setdefault((x or None, y or None), len(canon))
            for x, y in zip(a.take(pick).to_pylist(), b.take(pick).to_pylist(), strict=True)
        ],
        dtype=np.int32,
    )
    return remap[inv], list(canon)


def process_batch(rt: Runtime, batch: ObservationBatch) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Evidence rows and alerts for one batch; resolve and evaluate once per unique key."""
    t = batch.table
    if t.num_rows == 0:
        return [], [], 0
    d_idx, d_keys = _pairs(t["dest_host"], t["dest_ip"])
    # Rows without any destination are counted, not judged: their groups are dropped after the
    # aggregation (cheaper than filtering every column of the batch first).
    none = d_keys.index((None, None)) if (None, None) in d_keys else -1
    no_destination = int(np.count_nonzero(d_idx == none)) if none >= 0 else 0
    if no_destination == t.num_rows:
        return [], [], no_destination
    dests = rt.resolver.resolve_many([k for k in d_keys if k != (None, None)])
    if none >= 0:
        dests.insert(none, None)  # type: ignore[arg-type]  # never used: its groups are dropped
    s_idx, s_keys = _pairs(t["source_ip"], t["source_user"])
    # Evidence is per system, not per client address: many sources of one system must make one
    # row per (window, system, destination), or a shop's 200 checkout pods make 200 alike rows.
    systems, of_source = _systems(rt, s_keys)

    minutes = rt.config.settings.evidence.window_minutes
    # the window start by integer division of the microseconds: floor_temporal on a UTC
    # timestamp consults the time zone database per row and was a tenth of this function
    step = minutes * 60_000_000
    us = t["ts"].cast(pa.int64())
    window = pc.multiply(pc.divide(us, step), step).cast(pa.timestamp("us", tz="UTC"))
    g = pa.table(
        {
            "window": window,
            "sys": pc.take(of_source, pa.array(s_idx)),
            "dest": pa.array(d_idx),
            "weight": pc.cast(t["sample_rate"], pa.int64()),
            "egress_w": pc.if_else(t["egress"], pc.cast(t["sample_rate"], pa.int64()), 0),
            "bytes_in": t["bytes_in"],
            "bytes_out": t["bytes_out"],
            "ts": t["ts"],
            "line": t["line"],
            # kinds of personal data seen in URLs: part of the key, since they change the verdict
            # (dictionary-encoded: grouping on the codes is about half the time of the text)
            "pii": pc.dictionary_encode(pc.fill_null(t["pii"], "").combine_chunks()),
            **_status_signals(t["status"], t["sample_rate"]),
        }
    )
    agg = g.group_by(["window", "sys", "dest", "pii"]).aggregate(
        [
            *((name, "sum") for name in SIGNALS),
            ("weight", "sum"),
            ("egress_w", "sum"),
            ("bytes_in", "sum"),
            ("bytes_out", "sum", pc.ScalarAggregateOptions(min_count=1)),
            ("ts", "min"),
            ("ts", "max"),
            ("line", "min"),
            ("line", "max"),
        ]
    )
    evidence: list[dict[str, Any]] = []
    alerts: dict[str, dict[str, Any]] = {}
    span = dt.timedelta(minutes=minutes)
    if none >= 0:
        agg = agg.filter(pc.not_equal(agg["dest"], none))
    groups = agg.to_pylist()
    sources = _Sources(np.asarray(of_source)[s_idx], d_idx, s_idx, s_keys)
    volumes = _day_volumes(rt, groups, systems, dests)
    # by identity (hashing a Verdict walks all its steps); each entry keeps its objects alive, so
    # no id is reused while the batch is processed
    shared: dict[tuple[int, int, int], tuple[dict[str, Any], object]] = {}
    for n, r in enumerate(groups):
        system, dest = systems[r["sys"]], dests[r["dest"]]
        if r["pii"]:
            # personal data in the URL makes the request personal whatever the system declares
            system = replace(system, data_categories=(*system.data_categories, URL_PERSONAL))
        wstart: dt.datetime = r["window"]
        v = rt.verdict(system, dest, wstart.date(), volumes.get(n))
        key = (id(system), id(dest), id(v))
        if key not in shared:
            shared[key] = (_facts(batch, system, dest, v), (system, dest, v))
        row = _evidence_row(batch, shared[key][0], r, wstart, span)
        evidence.append(row)
        if v.outcome is Outcome.UNAUTHORIZED and row["egress_requests"] > 0:
            who = sources.of(r["sys"], r["dest"])
            _add_alert(alerts, row, v, who, rt.config.settings.alerts.runbook_url)
    lockouts = rt.lockouts.alerts(evidence, {x.name: x.criticality for x in systems}, rt.ai_providers)
    return evidence, [*alerts.values(), *lockouts], no_destination


def _systems(rt: Runtime, source_keys: list[Pair]) -> tuple[list[System], pa.Array]:
    """The distinct systems of a batch's sources, and for each source its system's index."""
    index: dict[System, int] = {}
    of_source = [index.setdefault(rt.inventory.system_for(*k), len(index)) for k in source_keys]
    return list(index), pa.array(of_source, pa.int32())


URL_PERSONAL = "url-personal"
# lockout signals per destination and window, for the alerting stage: proxy/provider refusals
# (403 forbidden, 451 unavailable for legal reasons: region blocks), rate limits, server errors,
# and requests that never got an answer (status 0 from the proxy, 504/408 timeouts)
SIGNALS = ("status_blocked", "status_rate_limited", "status_5xx", "status_timeout")


def _status_signals(status: Any, weight: Any) -> dict[str, Any]:
    w = pc.cast(weight, pa.int64())
    # null: no status applies (a Zeek conn row); 0: the request got no answer
    s = pc.fill_null(status, -1)

    def count(mask: Any) -> Any:
        return pc.if_else(mask, w, 0)

    return {
        "status_blocked": count(pc.is_in(s, pa.array([403, 451], pa.int32()))),
        "status_rate_limited": count(pc.equal(s, 429)),
        "status_5xx": count(pc.and_(pc.greater_equal(s, 500), pc.not_equal(s, 504))),
        "status_timeout": count(pc.is_in(s, pa.array([0, 408, 504], pa.int32()))),
    }


def _day_volumes(
    rt: Runtime, groups: list[dict[str, Any]], systems: list[System], dests: list[Destination]
) -> dict[int, int]:
    """For groups whose vendor has a derogation with an occasional-volume limit: the requests that
    system sent to that vendor that day up to and including the group's window (what is stored
    from earlier batches, then this batch's windows in time order), keyed by the group's index.

    Counting per vendor (not per address) and in window order makes the verdict independent of
    DNS round robin and of where batch boundaries fall."""
    limited = []
    for n, r in enumerate(groups):
        vendor = rt.register.vendor(dests[r["dest"]])
        if vendor is not None and rt.register.has_derogation_limit(vendor):
            limited.append((r["window"], n, systems[r["sys"]].name, vendor.vendor.name))
    if not limited:
        return {}
    from monitor.store.queries import day_requests

    running: dict[tuple[str, str, dt.date], int] = {}
    out: dict[int, int] = {}
    with rt.store() as session:
        for window, n, system, vendor_name in sorted(limited):
            key = (system, vendor_name, window.date())
            if key not in running:
                running[key] = day_requests(session, system, vendor_name, window.date())
            running[key] += groups[n]["weight_sum"]
            out[n] = running[key]
    return out


def _facts(batch: ObservationBatch, system: System, dest: Destination, v: Verdict) -> dict[str, Any]:
    """The columns of an evidence row that only depend on who, where and the verdict: built once per
    (system, destination, verdict) in a batch, not once per window (the same objects in every row)."""
    return {
        "collector": batch.collector,
        "system": system.name,
        "data_categories": ",".join(sorted(system.data_categories)),
        "dest_host": dest.host,
        "dest_ip": dest.ip,
        "located_country": dest.located_country,
        "registered_country": dest.registered_country,
        "country": dest.country,
        "eea": dest.eea,
        "asn": dest.asn,
        "as_org": dest.as_org,
        "provider": dest.provider,
        "provider_seat": dest.provider_seat,
        "legal_entity": dest.legal_entity,
        "region": dest.region,
        "region_country": dest.region_country,
        "edge": dest.edge,
        "confidence": dest.confidence,
        "outcome": v.outcome.value,
        "article": v.article,
        "basis": v.basis,
        "rule_id": v.rule_id,
        "rule_location": v.rule_location,
        "pack_hash": v.pack_hash,
        "severity": v.severity.value,
        "vendor": v.vendor,
        "mmdb_build": dest.mmdb_build,
        "catalog_version": dest.catalog_version,
    }


def _evidence_row(
    batch: ObservationBatch, facts: dict[str, Any], r: dict[str, Any], wstart: dt.datetime, span: dt.timedelta
) -> dict[str, Any]:
    origins = sorted({f"{batch.source}:{r['line_min']}", f"{batch.source}:{r['line_max']}"})
    return {
        **facts,
        "window_start": wstart,
        "window_end": wstart + span,
        "requests": r["weight_sum"],
        "egress_requests": r["egress_w_sum"],
        "bytes_out": r["bytes_out_sum"],
        "bytes_in": r["bytes_in_sum"] or 0,
        "first_seen": r["ts_min"],
        "last_seen": r["ts_max"],
        "sample_origins": origins,
        "pii_kinds": r["pii"] or None,
        **{name: r[f"{name}_sum"] for name in SIGNALS},
    }


SAMPLE_SOURCES = 5  # client addresses/users named in an alert; the evidence keeps the counts


class _Sources:
    """Who sent a (system, destination) group's requests: a sample of its sources, found only for
    groups that raise an alert. The batch's distinct (system, destination, source) codes are
    found once, when the first alerting group asks (a scan of every row per group cost a tenth of
    this module's time on the bench, with some 20 alerting groups per batch)."""

    def __init__(self, sys_of_row: Any, dest_of_row: Any, src_of_row: Any, src_keys: list[Pair]) -> None:
        self.sys, self.dest, self.src, self.keys = sys_of_row, dest_of_row, src_of_row, src_keys
        self._by: dict[int, np.ndarray[Any, Any]] | None = None
        self._n_dest = int(dest_of_row.max()) + 1 if len(dest_of_row) else 1

    def _index(self) -> dict[int, np.ndarray[Any, Any]]:
        """Sorted distinct source codes per (system, destination) code."""
        n_src = max(len(self.keys), 1)
        pair = np.asarray(self.sys, np.int64) * self._n_dest + np.asarray(self.dest, np.int64)
        triples = np.unique(pair * n_src + np.asarray(self.src, np.int64))
        if not len(triples):
            return {}
        pairs, srcs = np.divmod(triples, n_src)
        cuts = np.flatnonzero(np.diff(pairs)) + 1
        starts = np.concatenate(([0], cuts))
        return {int(pairs[a]): part for a, part in zip(starts.tolist(), np.split(srcs, cuts), strict=True)}

    def of(self, sys_i: int, dest_i: int) -> tuple[list[str], list[str], int]:
        """(source IPs, users, how many distinct sources) of the group, IPs and users up to SAMPLE_SOURCES."""
        if self._by is None:
            self._by = self._index()
        none = np.zeros(0, np.int64)
        codes = self._by.get(sys_i * self._n_dest + dest_i, none) if 0 <= dest_i < self._n_dest else none
        pairs = [self.keys[c] for c in codes.tolist()]
        ips = sorted({ip for ip, _ in pairs if ip})[:SAMPLE_SOURCES]
        users = sorted({u for _, u in pairs if u})[:SAMPLE_SOURCES]
        return ips, users, len(pairs)


def _add_alert(
    alerts: dict[str, dict[str, Any]],
    row: dict[str, Any],
    v: Verdict,
    who: tuple[list[str], list[str], int],
    runbook_url: str | None,
) -> None:
    dest = row["dest_host"] or row["dest_ip"]
    day = row["window_start"].date().isoformat()
    # the dedup key: outcome, system, provider (the destination when no provider is known) and
    # country; its repeats are counted into the open alert (monitor/store/writer.py)
    key = f"unauthorized|{row['system']}|{row['provider'] or dest}|{row['country'] or '??'}"
    a = alerts.get(key)
    if a is not None:  # several windows in one batch: one alert, widest span
        p = a["payload"]
        p["requests"] += row["egress_requests"]
        p["bytes_in"] += row["bytes_in"] or 0
        if p["bytes_out"] is not None:  # unknown (null) as soon as one window does not log it
            p["bytes_out"] = None if row["bytes_out"] is None else p["bytes_out"] + row["bytes_out"]
        p["first_seen"] = min(p["first_seen"], row["first_seen"].isoformat())
        p["last_seen"] = max(p["last_seen"], row["last_seen"].isoformat())
        p["source_ips"] = sorted({*p["source_ips"], *who[0]})[:SAMPLE_SOURCES]
        p["source_users"] = sorted({*p["source_users"], *who[1]})[:SAMPLE_SOURCES]
        p["source_count"] = max(p["source_count"], who[2])
        return
    payload = {
        "kind": "unauthorized_transfer",
        "system": row["system"],
        "data_categories": row["data_categories"].split(","),
        "dest_host": row["dest_host"],
        "dest_ip": row["dest_ip"],
        "country": row["country"],
        "article": v.article,
        "basis": v.basis,
        "rule_id": v.rule_id,
        "rule_location": v.rule_location,
        "pack_hash": v.pack_hash,
        "severity": v.severity.value,
        "day": day,
        "outcome": "unauthorized",
        # who
        "source_ips": who[0],
        "source_users": who[1],
        "source_count": who[2],
        # where
        "located_country": row["located_country"],
        "registered_country": row["registered_country"],
        "provider": row["provider"],
        "provider_seat": row["provider_seat"],
        "legal_entity": row["legal_entity"],
        # how much
        "requests": row["egress_requests"],
        "bytes_in": row["bytes_in"] or 0,
        "bytes_out": row["bytes_out"],
        "first_seen": row["first_seen"].isoformat(),
        "last_seen": row["last_seen"].isoformat(),
        # what next, and the evidence behind it
        "explain": f"xborder explain --system {row['system']} --dest {dest} --date {day}",
        "evidence_query": f"xborder transfers --system {row['system']} --dest {dest} --since {day}",
        "runbook_url": runbook_url,
        "sample_origin": row["sample_origins"][0],
    }
    summary = (
        f"UNAUTHORIZED transfer [{v.severity.value}]: {row['system']} ({row['data_categories']}) -> "
        f"{dest} [{row['country'] or '??'}], GDPR Art. {v.article}; rule {v.rule_id} ({v.rule_location})"
    )
    alerts[key] = {"dedup_key": key, "severity": v.severity.value, "summary": summary, "payload": payload}
