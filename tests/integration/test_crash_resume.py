"""A kill -9 at any moment loses and duplicates nothing: resume from the committed checkpoint."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.demo import write_demo_inputs
from monitor.pipeline import ingest_files
from monitor.settings import load_config
from monitor.store.queries import TransferFilter, source_stats, transfers
from monitor.store.session import read_session


def _batches(db: Path) -> int:
    try:
        con = sqlite3.connect(db, timeout=1)
        try:
            return int(con.execute("select count(*) from batches").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_kill_during_ingest_then_resume(tmp_path: Path) -> None:
    # ~3 batches of 8 MiB, so the kill lands after the first commit and before the last
    inputs = write_demo_inputs(tmp_path / "d", lines=200_000)
    db = inputs.config_path.parent / "xborder.db"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor",
            "-c",
            str(inputs.config_path),
            "ingest",
            "--final",
            "squid",
            str(inputs.log_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while _batches(db) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "ingest finished before it could be killed"
    committed = _batches(db)
    assert committed >= 1

    cfg = load_config(str(inputs.config_path))
    ingest_files(cfg, "squid", [inputs.log_path], deliver=False, final=True)
    with read_session(cfg.store_url) as s:
        st = source_stats(s)
        rows = transfers(s, TransferFilter())
    assert len(st) == 1
    assert st[0]["lines_read"] == inputs.lines_written == 200_000
    assert st[0]["quarantined"] == inputs.garbage_lines
    assert st[0]["rows"] + st[0]["quarantined"] + st[0]["blank"] == 200_000
    assert sum(r["requests"] for r in rows) == st[0]["rows"] - st[0]["no_destination"]

    # and a fresh ingest of the same file into a new store gives identical totals
    fresh = tmp_path / "fresh.yaml"
    fresh.write_text(inputs.config_path.read_text().replace("sqlite:///xborder.db", f"sqlite:///{tmp_path}/f.db"))
    ingest_files(load_config(str(fresh)), "squid", [inputs.log_path], deliver=False, final=True)
    with read_session(f"sqlite:///{tmp_path}/f.db") as s:
        again = {(r["system"], r["dest_host"], r["dest_ip"], r["outcome"]): r["requests"] for r in transfers(s)}
    assert again == {(r["system"], r["dest_host"], r["dest_ip"], r["outcome"]): r["requests"] for r in rows}


@pytest.mark.postgres
def test_pipeline_on_postgres(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = write_demo_inputs(tmp_path / "d", lines=5_000)
    monkeypatch.setenv("XBORDER_DB_URL", pg_url)
    cfg = load_config(str(inputs.config_path))
    assert cfg.store_url == pg_url
    first = ingest_files(cfg, "squid", [inputs.log_path], deliver=False, final=True)
    second = ingest_files(cfg, "squid", [inputs.log_path], deliver=False, final=True)
    assert first.lines_read == 5_000 and second.lines_read == 0
    with read_session(pg_url) as s:
        st = source_stats(s)
        unauthorized = transfers(s, TransferFilter(outcome="unauthorized"))
    assert st[0]["lines_read"] == 5_000
    assert {r["dest_host"] for r in unauthorized} >= {"api.deepseek.com"}
