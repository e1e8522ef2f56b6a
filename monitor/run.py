"""Follow mode (`xborder run`): tails every configured source, committing each batch as it comes."""

from __future__ import annotations

import glob
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from monitor.alert.build import make_channels
from monitor.alert.outbox import DeliveryThread, deliver_pending, register_channels
from monitor.collect import make_collector
from monitor.collect.rotation import is_rotated_name
from monitor.errors import InputError, UsageError
from monitor.pipeline import FileSummary, Runtime, build_runtime, ingest_path
from monitor.settings import Config

log = logging.getLogger("xborder.run")


@dataclass
class RunTotals:
    passes: int = 0
    batches: int = 0
    lines_read: int = 0
    rows: int = 0
    quarantined: int = 0
    new_alerts: int = 0
    delivered: int = 0
    files: set[str] = field(default_factory=set)

    def add(self, fs: FileSummary) -> None:
        self.batches += fs.batches
        self.lines_read += fs.lines_read
        self.rows += fs.rows
        self.quarantined += fs.quarantined
        self.new_alerts += fs.new_alerts
        self.files.add(fs.path)


def _expand(config: Config, patterns: list[str]) -> list[Path]:
    """The live files the patterns name. A glob that also matches rotated copies of a matched file
    (`access.log*`) does not make them sources of their own: they are read as its generations,
    once; as sources they would be read again under every name rotation gives them."""
    out: list[Path] = []
    for pat in patterns:
        full = str(config.resolve_path(pat))
        matches = sorted(glob.glob(full)) if glob.has_magic(full) else [full]
        out += [Path(m) for m in matches if Path(m).is_file()]
    files = list(dict.fromkeys(out))
    return [p for p in files if not any(q.parent == p.parent and is_rotated_name(q, p.name) for q in files)]


class Follower:
    """One pass reads every source's new whole lines; `run` repeats passes until stopped.

    Files matching a glob later are picked up on the next pass; a rotated file is read to its
    end through its checkpoint (monitor/collect/follow.py), then the new file from its start.
    """

    def __init__(self, config: Config) -> None:
        if not config.settings.sources:
            raise UsageError("no sources: add `sources:` to the config (collector, paths) to use `xborder run`")
        self.config = config
        self.collectors = [
            (make_collector(s.collector, s.options), s.paths, s.backfill == "rotated") for s in config.settings.sources
        ]
        self.rt: Runtime = build_runtime(config)
        self.channels = make_channels(config)
        register_channels(self.rt.store, list(self.channels.alerters))
        self.deliverer: DeliveryThread | None = None
        self.totals = RunTotals()
        self._stop = threading.Event()

    def stop(self, *_: Any) -> None:
        self._stop.set()

    def one_pass(self) -> int:
        """Read all sources once; returns the number of batches committed."""
        committed = 0
        for parser, patterns, backfill in self.collectors:
            for path in _expand(self.config, patterns):
                try:
                    fs = ingest_path(self.rt, parser, path, backfill=backfill)
                except InputError as exc:  # vanished between glob and open: next pass sees the rest
                    log.warning("%s", exc)
                    continue
                committed += fs.batches
                if fs.batches:
                    self.totals.add(fs)
        if committed and self.deliverer is not None:
            self.deliverer.wake()
        elif committed:  # one pass without run(): deliver in line, as before
            self.totals.delivered += deliver_pending(self.rt.store, self.channels).delivered
        self.totals.passes += 1
        return committed

    def run(self, *, once: bool = False, max_seconds: float | None = None,
            on_pass: Callable[[RunTotals], None] | None = None) -> RunTotals:  # fmt: skip
        poll = self.config.settings.run.poll_seconds
        deadline = time.monotonic() + max_seconds if max_seconds else None
        # alerts go out from their own thread: a channel waiting out its timeout delays alerts,
        # never ingest; it also retries failed deliveries while no new lines come
        self.deliverer = DeliveryThread(self.rt.store, self.channels)
        try:
            while not self._stop.is_set():
                busy = self.one_pass()
                if on_pass:
                    on_pass(self.totals)
                if once or (deadline and time.monotonic() > deadline):
                    break
                if not busy:  # caught up: wait for new lines (or a stop signal)
                    self._stop.wait(poll)
        finally:
            self.deliverer.stop()
            self.totals.delivered += self.deliverer.totals.delivered
            self.channels.close()
            self.rt.close()
        return self.totals


def install_signal_handlers(follower: Follower) -> None:
    """SIGTERM/SIGINT finish the batch in hand (its transaction commits or not at all), then stop."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.warning("signal %d: stopping after the current batch", signum)
        follower.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
