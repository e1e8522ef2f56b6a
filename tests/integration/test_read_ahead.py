"""The first file's read begun before the store opens is used only where reading it afresh would start."""

from __future__ import annotations

from pathlib import Path

from monitor.collect import make_collector
from monitor.collect.prefetch import read_ahead
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
