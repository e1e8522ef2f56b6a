"""Wires the stages: collect → resolve → attribute → evaluate → record, one transaction per batch."""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.orm import Session, sessionmaker

from monitor.alert.outbox import DeliveryReport, deliver_pending, make_alerters
from monitor.attribute import Inventory
from monitor.collect import COLLECTORS
from monitor.collect.follow import read_batches
from monitor.errors import UsageError
from monitor.policy.evaluator import evaluate
from monitor.policy.rulepack import RulePack, load_pack
from monitor.policy.vendors import RegisterIndex
from monitor.records import Destination, ObservationBatch, Outcome, System, Verdict
from monitor.resolve.build import build_resolver
from monitor.resolve.jurisdiction import Resolver
from monitor.settings import Config
from monitor.store.session import open_store
from monitor.store.writer import BatchRecord, commit_batch, load_checkpoint

log = logging.getLogger("xborder.pipeline")
SEP = "\x00"
# Bytes of log per batch (= per transaction). Measured on the 1M-line bench log: 8 MiB gave
# ~400 MiB peak RSS and the best speed; 32 MiB ~730 MiB peak and no faster.
BATCH_BYTES = 8 * 2**20


@dataclass
class Runtime:
    """Everything loaded once per process: rules, register, resolver, store."""

    config: Config
    pack: RulePack
    resolver: Resolver
    inventory: Inventory
    register: RegisterIndex
    store: sessionmaker[Session]
    _verdicts: dict[tuple[System, Destination, dt.date, int | None], Verdict] = field(default_factory=dict)

    def verdict(self, system: System, dest: Destination, day: dt.date, volume: int | None = None) -> Verdict:
        """`volume` (requests that day so far) matters only for derogations with an occasional limit."""
        vendor = self.register.vendor(dest)
        if not self.register.has_derogation_limit(vendor):
            volume = None
        key = (system, dest, day, volume)  # the whole System: URL-borne personal data changes its categories
        v = self._verdicts.get(key)
        if v is None:
            v = evaluate(self.pack, system, dest, day, vendor, self.register.extras(system.name, dest, vendor, volume))
            if len(self._verdicts) > 100_000:  # bound memory on long runs (~2 KiB per cached verdict)
                self._verdicts.clear()
            self._verdicts[key] = v
        return v

    def close(self) -> None:
        self.resolver.close()
        self.store.kw["bind"].dispose()


def build_runtime(config: Config) -> Runtime:
    s = config.settings
    pack = load_pack(config.rules_dir)
    resolver = build_resolver(config, pack)
    # "review": an unknown source's data is unknown, so its third-country transfers go to review;
    # "personal": assume personal data, so they are judged (and alerted) like any other
    categories = ("unknown",) if s.unattributed == "review" else ("personal",)
    return Runtime(
        config=config,
        pack=pack,
        resolver=resolver,
        inventory=Inventory(s.systems, categories),
        register=RegisterIndex(config.register, config.source),
        store=open_store(config.store_url),
    )


@dataclass
class FileSummary:
    path: str
    source: str
    batches: int = 0
    lines_read: int = 0
    rows: int = 0
    quarantined: int = 0
    blank: int = 0
    no_destination: int = 0
    evidence_rows: int = 0
    new_alerts: int = 0
    chain_head: str | None = None
    end_offset: int = 0  # committed position after this run
    pending_bytes: int = 0  # an unterminated last line left for the next run


@dataclass
class IngestSummary:
    files: list[FileSummary]
    seconds: float
    delivery: DeliveryReport | None = None

    @property
    def lines_read(self) -> int:
        return sum(f.lines_read for f in self.files)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def quarantined(self) -> int:
        return sum(f.quarantined for f in self.files)

    @property
    def new_alerts(self) -> int:
        return sum(f.new_alerts for f in self.files)


def _encode(col: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, list[Any]]:
    enc = pc.dictionary_encode(col)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks() if enc.num_chunks != 1 else enc.chunk(0)
    return enc.indices, enc.dictionary.to_pylist()


def _key(a: pa.ChunkedArray, b: pa.ChunkedArray) -> Any:
    return pc.binary_join_element_wise(pc.fill_null(a, ""), pc.fill_null(b, ""), SEP)


def _split(k: str) -> tuple[str | None, str | None]:
    a, _, b = k.partition(SEP)
    return (a or None, b or None)


def process_batch(rt: Runtime, batch: ObservationBatch) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """Evidence rows and alerts for one batch; resolve and evaluate once per unique key."""
    tbl = pa.Table.from_pandas(batch.frame, preserve_index=False)
    has_dest = pc.or_kleene(pc.is_valid(tbl["dest_host"]), pc.is_valid(tbl["dest_ip"]))
    t = tbl.filter(has_dest)
    no_destination = tbl.num_rows - t.num_rows
    if t.num_rows == 0:
        return [], [], no_destination

    d_idx, d_keys = _encode(_key(t["dest_host"], t["dest_ip"]))
    dests = rt.resolver.resolve_many([_split(k) for k in d_keys])
    s_idx, s_keys = _encode(_key(t["source_ip"], t["source_user"]))
    systems = [rt.inventory.system_for(*_split(k)) for k in s_keys]

    minutes = rt.config.settings.evidence.window_minutes
    window = pc.floor_temporal(t["ts"], multiple=minutes, unit="minute")
    g = pa.table(
        {
            "window": window,
            "sys": s_idx,
            "dest": d_idx,
            "weight": pc.cast(t["sample_rate"], pa.int64()),
            "egress_w": pc.if_else(t["egress"], pc.cast(t["sample_rate"], pa.int64()), 0),
            "bytes_in": t["bytes_in"],
            "bytes_out": t["bytes_out"],
            "ts": t["ts"],
            "line": t["line"],
            # kinds of personal data seen in URLs: part of the key, since they change the verdict
            "pii": pc.fill_null(t["pii"], ""),
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
    groups = agg.to_pylist()
    volumes = _day_volumes(rt, groups, systems, dests)
    for n, r in enumerate(groups):
        system, dest = systems[r["sys"]], dests[r["dest"]]
        if r["pii"]:
            # personal data in the URL makes the request personal whatever the system declares
            system = replace(system, data_categories=(*system.data_categories, URL_PERSONAL))
        wstart: dt.datetime = r["window"]
        v = rt.verdict(system, dest, wstart.date(), volumes.get(n))
        row = _evidence_row(batch, rt, system, dest, v, r, wstart, span)
        evidence.append(row)
        if v.outcome is Outcome.UNAUTHORIZED and row["egress_requests"] > 0:
            _add_alert(alerts, row, v)
    return evidence, list(alerts.values()), no_destination


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


def _evidence_row(
    batch: ObservationBatch,
    rt: Runtime,
    system: System,
    dest: Destination,
    v: Verdict,
    r: dict[str, Any],
    wstart: dt.datetime,
    span: dt.timedelta,
) -> dict[str, Any]:
    origins = sorted({f"{batch.source}:{r['line_min']}", f"{batch.source}:{r['line_max']}"})
    return {
        "window_start": wstart,
        "window_end": wstart + span,
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


def _add_alert(alerts: dict[str, dict[str, Any]], row: dict[str, Any], v: Verdict) -> None:
    dest = row["dest_host"] or row["dest_ip"]
    day = row["window_start"].date().isoformat()
    key = f"unauthorized|{row['system']}|{dest}|{day}"
    a = alerts.get(key)
    if a is not None:  # several windows in one batch: one alert, widest span
        p = a["payload"]
        p["requests"] += row["egress_requests"]
        p["first_seen"] = min(p["first_seen"], row["first_seen"].isoformat())
        p["last_seen"] = max(p["last_seen"], row["last_seen"].isoformat())
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
        "requests": row["egress_requests"],
        "first_seen": row["first_seen"].isoformat(),
        "last_seen": row["last_seen"].isoformat(),
        "sample_origin": row["sample_origins"][0],
    }
    summary = (
        f"UNAUTHORIZED transfer [{v.severity.value}]: {row['system']} ({row['data_categories']}) -> "
        f"{dest} [{row['country'] or '??'}], GDPR Art. {v.article}; rule {v.rule_id} ({v.rule_location})"
    )
    alerts[key] = {"dedup_key": key, "severity": v.severity.value, "summary": summary, "payload": payload}


def _ts_bound(batch: ObservationBatch, which: str) -> dt.datetime | None:
    if batch.frame.empty:
        return None
    v = pc.min_max(pa.array(batch.frame["ts"]))[which].as_py()
    return v if isinstance(v, dt.datetime) else None


def ingest_batches(rt: Runtime, batches: Iterable[ObservationBatch], summary: FileSummary, resumed_from: Any) -> None:
    for batch in batches:
        evidence, alerts, no_dest = process_batch(rt, batch)
        res = commit_batch(
            rt.store,
            BatchRecord(
                collector=batch.collector,
                source=batch.source,
                lines_read=batch.lines_read,
                rows=len(batch.frame),
                blank=batch.blank_lines,
                no_destination=no_dest,
                evidence=evidence,
                quarantined=batch.quarantined,
                checkpoint=batch.checkpoint,
                resumed_from=resumed_from,
                alerts=alerts,
                first_ts=_ts_bound(batch, "min"),
                last_ts=_ts_bound(batch, "max"),
            ),
        )
        resumed_from = batch.checkpoint
        _warn_on_burst(batch)
        summary.batches += 1
        summary.lines_read += batch.lines_read
        summary.rows += len(batch.frame)
        summary.quarantined += len(batch.quarantined)
        summary.blank += batch.blank_lines
        summary.no_destination += no_dest
        summary.evidence_rows += res.evidence_rows
        summary.new_alerts += res.new_alerts
        summary.chain_head = res.hash
        if batch.checkpoint is not None:
            summary.end_offset = batch.checkpoint.offset


def prefetch(batches: Iterable[ObservationBatch], depth: int = 2) -> Iterator[ObservationBatch]:
    """Read and parse the next batches in a thread while this one is resolved and committed.

    pyarrow's compute kernels and SQLite release the GIL, so on two cores parsing overlaps with
    the rest. Batches still commit one by one in file order: a crash loses nothing committed.
    """
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for b in batches:
                while not stop.is_set():
                    try:
                        q.put(("batch", b), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("done", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            q.put(("error", exc))

    t = threading.Thread(target=work, name="xborder-parse", daemon=True)
    t.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "done":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        t.join(timeout=5)


def _warn_on_burst(batch: ObservationBatch) -> None:
    """A wrong format configured quarantines nearly everything: say so loudly, with examples."""
    q = batch.quarantined
    if len(q) >= 20 and len(q) > batch.lines_read // 2:
        examples = "; ".join(f"line {x.line}: {x.reason}" for x in q[:3])
        log.warning(
            "%s: %d of %d lines quarantined in one batch — is the collector or its format right? first: %s",
            batch.source, len(q), batch.lines_read, examples,
        )  # fmt: skip


def make_collector(name: str, options: dict[str, Any] | None = None) -> Any:
    """The registered collector `name`, built with its options (a bad option is a UsageError)."""
    if name not in COLLECTORS:
        raise UsageError(f"unknown collector '{name}'; known: {', '.join(sorted(COLLECTORS))}")
    try:
        return COLLECTORS[name](**(options or {}))
    except TypeError as exc:  # an option the collector does not take
        raise UsageError(f"collector '{name}': {exc}") from exc


def ingest_files(
    config: Config,
    collector: str,
    paths: list[Path],
    *,
    deliver: bool = True,
    final: bool = False,
    options: dict[str, Any] | None = None,
) -> IngestSummary:
    """Ingest files, each resuming from its committed checkpoint.

    Without `final`, an unterminated last line is left unread (the writer may be mid-line) and
    counted in `pending_bytes`; with it, the file is taken as complete and that line is read too.
    """
    parser = make_collector(collector, options)
    started = time.perf_counter()
    rt = build_runtime(config)
    try:
        files = [ingest_path(rt, parser, path, final=final) for path in paths]
        report = deliver_pending(rt.store, make_alerters(config)) if deliver else None
        return IngestSummary(files, time.perf_counter() - started, report)
    finally:
        rt.close()


def ingest_path(rt: Runtime, parser: Any, path: Path, *, final: bool = False) -> FileSummary:
    """Read what is new in one file since its committed checkpoint; one transaction per batch."""
    source = f"{parser.name}:{path.absolute()}"  # the same id read_batches gives its batches
    cp = load_checkpoint(rt.store, source)
    fs = FileSummary(str(path), source)
    fs.end_offset = cp.offset if cp is not None and cp.path == str(path.absolute()) else 0
    ingest_batches(rt, prefetch(read_batches(parser, path, cp, max_bytes=BATCH_BYTES, final=final)), fs, cp)
    # a live log may end mid-line: that line is read on the next run (or with final=True)
    try:
        # a .gz is complete by definition (and its offsets count decompressed bytes)
        fs.pending_bytes = 0 if path.suffix == ".gz" else max(0, path.stat().st_size - fs.end_offset)
    except OSError:
        fs.pending_bytes = 0  # rotated away while we read it
    return fs
