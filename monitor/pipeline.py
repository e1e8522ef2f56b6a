"""Wires the stages: collect → resolve → attribute → evaluate → record, one transaction per batch."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
from sqlalchemy.orm import Session, sessionmaker

from monitor import started
from monitor.alert.lockout import LockoutTracker
from monitor.alert.outbox import DeliveryReport, deliver_pending, register_channels
from monitor.attribute import Inventory
from monitor.batch import process_batch
from monitor.collect import make_collector
from monitor.collect.follow import read_batches
from monitor.collect.prefetch import BATCH_BYTES, Prefetch, ReadAhead
from monitor.policy.evaluator import evaluate
from monitor.policy.rulepack import RulePack, load_pack
from monitor.policy.vendors import RegisterIndex
from monitor.records import Checkpoint, Destination, ObservationBatch, System, Verdict
from monitor.resolve.build import build_resolver
from monitor.resolve.jurisdiction import Resolver
from monitor.settings import Config
from monitor.store.session import open_store
from monitor.store.writer import BatchRecord, commit_batch, load_checkpoint

log = logging.getLogger("xborder.pipeline")


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
    lockouts: LockoutTracker = field(default_factory=LockoutTracker)  # a window's failures across batches

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

    @cached_property  # asked for by every batch; the catalog does not change while the process runs
    def ai_providers(self) -> frozenset[str]:
        """Names of the catalog's AI/LLM API providers (kind ai-api): whose lockouts are alerted."""
        catalog = self.resolver.catalog
        return frozenset(p.name for p in catalog.providers if p.kind == "ai-api") if catalog else frozenset()

    def close(self) -> None:
        self.resolver.close()
        self.store.kw["bind"].dispose()


def build_runtime(config: Config, store: sessionmaker[Session] | None = None) -> Runtime:
    s = config.settings
    pack = load_pack(config.rules_dir)
    resolver = build_resolver(config, pack)
    # "review": an unknown source's data is unknown, so its third-country transfers go to review;
    # "personal": assume personal data, so they are judged (and alerted) like any other
    categories = ("unknown",) if s.unattributed == "review" else ("personal",)
    rt = Runtime(
        config=config,
        pack=pack,
        resolver=resolver,
        inventory=Inventory(s.systems, categories),
        register=RegisterIndex(config.register, config.source),
        store=store if store is not None else open_store(config.store_url),
    )
    started()  # what is loaded once is loaded: batches make garbage, collected as usual
    return rt


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


def _ts_bound(batch: ObservationBatch, which: str) -> dt.datetime | None:
    if batch.table.num_rows == 0:
        return None
    v = pc.min_max(batch.table["ts"])[which].as_py()
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
                rows=len(batch),
                blank=batch.blank_lines,
                no_destination=no_dest,
                evidence=evidence,
                quarantined=batch.quarantined,
                checkpoint=batch.checkpoint,
                resumed_from=resumed_from,
                alerts=alerts,
                first_ts=_ts_bound(batch, "min"),
                last_ts=_ts_bound(batch, "max"),
                suppress_minutes=rt.config.settings.alerts.suppress_minutes,
            ),
        )
        resumed_from = batch.checkpoint
        _warn_on_burst(batch)
        summary.batches += 1
        summary.lines_read += batch.lines_read
        summary.rows += len(batch)
        summary.quarantined += len(batch.quarantined)
        summary.blank += batch.blank_lines
        summary.no_destination += no_dest
        summary.evidence_rows += res.evidence_rows
        summary.new_alerts += res.new_alerts
        summary.chain_head = res.hash
        if batch.checkpoint is not None:
            summary.end_offset = batch.checkpoint.offset


def _warn_on_burst(batch: ObservationBatch) -> None:
    """A wrong format configured quarantines nearly everything: say so loudly, with examples."""
    q = batch.quarantined
    if len(q) >= 20 and len(q) > batch.lines_read // 2:
        examples = "; ".join(f"line {x.line}: {x.reason}" for x in q[:3])
        log.warning(
            "%s: %d of %d lines quarantined in one batch — is the collector or its format right? first: %s",
            batch.source, len(q), batch.lines_read, examples,
        )  # fmt: skip


def ingest_files(
    config: Config,
    collector: str,
    paths: list[Path],
    *,
    deliver: bool = True,
    final: bool = False,
    options: dict[str, Any] | None = None,
    ahead: ReadAhead | None = None,
) -> IngestSummary:
    """Ingest files, each resuming from its committed checkpoint.

    Without `final`, an unterminated last line is left unread (the writer may be mid-line) and
    counted in `pending_bytes`; with it, the file is taken as complete and that line is read too.
    `ahead`: the first file's reading, begun by the caller before the store was open (used if the
    store has no checkpoint for it, else dropped); its parser is the one used for every file.
    """
    from monitor.alert.build import make_channels

    parser = ahead.parser if ahead is not None else make_collector(collector, options)
    started = time.perf_counter()
    store = open_store(config.store_url)
    channels = make_channels(config)
    register_channels(store, list(channels.alerters))  # before this run commits any alert
    # The first file is read and parsed (if the caller has not begun it already) while the rules
    # and the resolver load.
    first = open_path(store, parser, paths[0], final=final, ahead=ahead) if paths else None
    try:
        rt = build_runtime(config, store)
    except BaseException:
        if first is not None:
            first.batches.close()
        store.kw["bind"].dispose()
        raise
    try:
        files = [
            finish_path(rt, first if n == 0 and first else open_path(rt.store, parser, path, final=final))
            for n, path in enumerate(paths)
        ]
        report = deliver_pending(rt.store, channels) if deliver else None
        return IngestSummary(files, time.perf_counter() - started, report)
    finally:
        channels.close()
        rt.close()


@dataclass
class Reading:
    """One file being read from its committed checkpoint: the batches come from a Prefetch."""

    path: Path
    checkpoint: Checkpoint | None
    summary: FileSummary
    batches: Prefetch


def ingest_path(rt: Runtime, parser: Any, path: Path, *, final: bool = False, backfill: bool = False) -> FileSummary:
    """Read what is new in one file since its committed checkpoint; one transaction per batch.

    `backfill`: with no checkpoint yet, read the rotated generations beside the file first.
    """
    return finish_path(rt, open_path(rt.store, parser, path, final=final, backfill=backfill))


def open_path(
    store: sessionmaker[Session],
    parser: Any,
    path: Path,
    *,
    final: bool = False,
    backfill: bool = False,
    ahead: ReadAhead | None = None,
) -> Reading:
    """Start reading `path` from its checkpoint (reading and parsing begin at once, in a thread).

    `ahead` is this file already being read from its start: kept if that is where reading starts
    (no checkpoint, no rotated generations to read first), else stopped.
    """
    source = f"{parser.name}:{path.absolute()}"  # the same id read_batches gives its batches
    cp = load_checkpoint(store, source)
    fs = FileSummary(str(path), source)
    fs.end_offset = cp.offset if cp is not None and cp.path == str(path.absolute()) else 0
    if ahead is not None:
        if cp is None and not backfill and ahead.fits(parser, path, final=final, max_bytes=BATCH_BYTES):
            return Reading(path, cp, fs, ahead.batches)
        ahead.close()
    batches = read_batches(parser, path, cp, max_bytes=BATCH_BYTES, final=final, backfill=backfill)
    return Reading(path, cp, fs, Prefetch(batches))


def finish_path(rt: Runtime, reading: Reading) -> FileSummary:
    """Resolve, judge and commit every batch of a Reading, then say what is left for next time."""
    fs, path = reading.summary, reading.path
    ingest_batches(rt, reading.batches, fs, reading.checkpoint)
    # a live log may end mid-line: that line is read on the next run (or with final=True)
    try:
        # a .gz is complete by definition (and its offsets count decompressed bytes)
        fs.pending_bytes = 0 if path.suffix == ".gz" else max(0, path.stat().st_size - fs.end_offset)
    except OSError:
        fs.pending_bytes = 0  # rotated away while we read it
    return fs
