"""The first file's read begun before the store opens: used only where reading afresh starts; its process may die."""

from __future__ import annotations

import gc
import os
import signal
from pathlib import Path
from typing import Any

import pytest

import monitor
from monitor.collect import make_collector, prefetch
from monitor.collect.base import Parsed
from monitor.collect.follow import read_batches
from monitor.collect.prefetch import _forked, read_ahead
from monitor.pipeline import ingest_files, open_path
from monitor.settings import load_config
from monitor.store.session import open_store

LINE = b"1700000000.%03d 5 10.0.0.1 TCP_MISS/200 100 GET http://example.com/%d - HIER_DIRECT/93.184.216.34 text/html\n"


def setup(tmp_path: Path, lines: int) -> tuple[Path, Path]:
    cfg = tmp_path / "xborder.yaml"
    cfg.write_text("store: {url: 'sqlite:///x.db'}\nalerts: {stderr: false}\n", encoding="utf-8")
    log = tmp_path / "access.log"
    log.write_bytes(b"".join(LINE % (i % 1000, i) for i in range(lines)))
    return cfg, log


def test_without_a_checkpoint_the_read_ahead_is_the_reading(tmp_path: Path) -> None:
    cfg, log = setup(tmp_path, 50)
    parser = make_collector("squid")
    ahead = read_ahead(parser, log, final=True)
    store = open_store(load_config(str(cfg)).store_url)
    try:
        reading = open_path(store, parser, log, final=True, ahead=ahead)
        assert reading.batches is ahead.batches
        assert sum(b.lines_read for b in reading.batches) == 50
    finally:
        store.kw["bind"].dispose()


def test_with_a_checkpoint_it_is_dropped_and_only_new_lines_are_read(tmp_path: Path) -> None:
    cfg, log = setup(tmp_path, 50)
    first = ingest_files(load_config(str(cfg)), "squid", [log], deliver=False)
    assert first.lines_read == 50
    with open(log, "ab") as fh:
        fh.write(b"".join(LINE % (i, i) for i in range(50, 80)))
    ahead = read_ahead(make_collector("squid"), log, final=False)
    second = ingest_files(load_config(str(cfg)), "squid", [log], deliver=False, ahead=ahead)
    assert second.lines_read == 30 and second.rows == 30  # not 80: the read from the start was dropped
    assert not ahead.batches._thread.is_alive()


def test_a_read_ahead_made_otherwise_is_not_used(tmp_path: Path) -> None:
    cfg, log = setup(tmp_path, 20)
    parser = make_collector("squid")
    store = open_store(load_config(str(cfg)).store_url)
    try:
        for ahead in (read_ahead(parser, log, final=False), read_ahead(make_collector("squid"), log, final=True)):
            reading = open_path(store, parser, log, final=True, ahead=ahead)  # other final flag; other parser
            assert reading.batches is not ahead.batches
            assert sum(b.lines_read for b in reading.batches) == 20
    finally:
        store.kw["bind"].dispose()


class DiesInChild:
    """The squid collector, except that in a forked child it dies on its second chunk."""

    def __init__(self) -> None:
        self.inner = make_collector("squid")
        self.name, self.stateless = self.inner.name, self.inner.stateless
        self.parent, self.chunks = os.getpid(), 0

    def parse_chunk(self, chunk: bytes, **kw: Any) -> Parsed:
        self.chunks += 1
        if os.getpid() != self.parent and self.chunks == 2:
            os._exit(3)
        return self.inner.parse_chunk(chunk, **kw)


def test_when_the_read_ahead_process_dies_reading_goes_on_exactly_once(tmp_path: Path) -> None:
    _, log = setup(tmp_path, 40)
    batches = list(_forked(DiesInChild(), log, True, 400))  # ~3 lines a chunk
    lines = [n for b in batches for n in b.table["line"].to_pylist()]
    assert sorted(lines) == list(range(1, 41))  # every line once, none twice
    assert batches[-1].checkpoint is not None and batches[-1].checkpoint.offset == log.stat().st_size


def test_stopping_early_kills_and_reaps_the_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, log = setup(tmp_path, 40)
    pids: list[int] = []
    fork = os.fork

    def recording_fork() -> int:
        pid = fork()
        if pid:
            pids.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", recording_fork)
    gen = _forked(make_collector("squid"), log, True, 400)
    next(gen)
    gen.close()
    with pytest.raises(ChildProcessError):  # reaped already: no zombie left
        os.waitpid(pids[0], os.WNOHANG)


def test_a_child_forked_after_the_parse_pool_ran_parses_with_a_pool_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, log = setup(tmp_path, 40)
    parser = make_collector("squid")
    list(read_batches(parser, log, None, max_bytes=400, final=True))  # the pool now exists here
    here, resumed = os.getpid(), []

    def recording(collector: Any, path: Path, cp: Any, **kw: Any) -> Any:
        if os.getpid() == here:  # the parent's own reading, after the child's stream ended
            resumed.append(cp)
        return read_batches(collector, path, cp, **kw)

    monkeypatch.setattr(prefetch, "read_batches", recording)

    def too_long(*_: object) -> None:
        raise TimeoutError("the forked read-ahead hangs")

    # an inherited pool has no threads in the child: it would wait forever (the child is killed
    # when the generator is left by the exception)
    before = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(60)
    try:
        batches = list(_forked(parser, log, True, 400))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, before)
    assert sum(b.lines_read for b in batches) == 40
    # the child read it all: the parent resumed at the end, not from the start (its fallback)
    assert [cp.offset if cp else None for cp in resumed] == [log.stat().st_size]


class NeedsUsualGc:
    """The squid collector; in a forked child it dies unless garbage is collected as usual there."""

    def __init__(self) -> None:
        self.inner = make_collector("squid")
        self.name, self.stateless = self.inner.name, self.inner.stateless
        self.parent, self.usual = os.getpid(), gc.get_threshold()

    def parse_chunk(self, chunk: bytes, **kw: Any) -> Parsed:
        if os.getpid() != self.parent and gc.get_threshold() != self.usual:
            os._exit(4)  # each chunk's reference cycles would pile up in the child
        return self.inner.parse_chunk(chunk, **kw)


def test_the_child_collects_garbage_as_usual_though_forked_in_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, log = setup(tmp_path, 40)
    here, resumed = os.getpid(), []

    def recording(collector: Any, path: Path, cp: Any, **kw: Any) -> Any:
        if os.getpid() == here:
            resumed.append(cp)
        return read_batches(collector, path, cp, **kw)

    monkeypatch.setattr(prefetch, "read_batches", recording)
    parser = NeedsUsualGc()
    monitor.starting_up()
    try:
        batches = list(_forked(parser, log, True, 400))
    finally:
        monitor.started()
    assert sum(b.lines_read for b in batches) == 40
    assert [cp.offset if cp else None for cp in resumed] == [log.stat().st_size]  # the child read it all
