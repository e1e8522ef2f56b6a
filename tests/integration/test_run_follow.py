"""`xborder run` follows live logs: new lines within a second, rotation and late files, SIGTERM, nothing twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

LINE = "{ts:.3f} 9 10.1.1.{n} TCP_TUNNEL/200 9 CONNECT h{n}.example:443 - HIER_DIRECT/175.16.199.1 -\n"


def lines(start: int, count: int, t0: float = 1763300000.0) -> str:
    return "".join(LINE.format(ts=t0 + i, n=i % 250) for i in range(start, start + count))


def totals(db: Path) -> tuple[int, int]:
    try:
        con = sqlite3.connect(db, timeout=5)
        try:
            row = con.execute("select coalesce(sum(lines_read),0), coalesce(sum(rows),0) from batches").fetchone()
            return int(row[0]), int(row[1])
        finally:
            con.close()
    except sqlite3.Error:
        return (0, 0)


def wait_for(db: Path, want: int, timeout: float = 20.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if totals(db)[0] >= want:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"only {totals(db)[0]} of {want} lines committed after {timeout}s")


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    logs = tmp_path / "logs"
    logs.mkdir()
    cfg = tmp_path / "xborder.yaml"
    cfg.write_text(
        "store: {url: 'sqlite:///x.db'}\nalerts: {jsonl: null, stderr: false}\nrun: {poll_seconds: 0.1}\n"
        "systems: [{name: lan, sources: [10.0.0.0/8], data_categories: [none]}]\n"
        f"sources: [{{collector: squid, paths: ['{logs}/*.log']}}]\n",
        encoding="utf-8",
    )
    return cfg, logs, tmp_path / "x.db"


def test_follow_new_lines_rotation_late_files_and_sigterm(setup: tuple[Path, Path, Path]) -> None:
    cfg, logs, db = setup
    live = logs / "access.log"
    live.write_text(lines(0, 100), encoding="utf-8")  # backfilled on start
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "-c", str(cfg), "run"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_for(db, 100)
        with open(live, "a", encoding="utf-8") as fh:
            fh.write(lines(100, 50))
        assert wait_for(db, 150) < 1.5  # picked up within a second (plus commit)
        # logrotate: rename + create; lines written just before the rename must not be lost
        with open(live, "a", encoding="utf-8") as fh:
            fh.write(lines(150, 20))
        os.rename(live, logs / "access.log.1")
        live.write_text(lines(170, 30), encoding="utf-8")
        wait_for(db, 200)
        # copytruncate: the file is truncated in place and written again from the start
        (logs / "other.log").write_text(lines(1000, 40), encoding="utf-8")  # a file that appears later
        wait_for(db, 240)
        with open(live, "r+", encoding="utf-8") as fh:
            fh.truncate(0)
        with open(live, "a", encoding="utf-8") as fh:
            fh.write(lines(2000, 10))
        wait_for(db, 250)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "run:" in out
    time.sleep(0.2)
    assert totals(db) == (250, 250)  # every line exactly once


def test_run_without_sources_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli.main import run

    cfg = tmp_path / "xborder.yaml"
    cfg.write_text("store: {url: 'sqlite:///x.db'}\n", encoding="utf-8")
    assert run(["-c", str(cfg), "run", "--once"]) == 2
    assert "no sources" in capsys.readouterr().err


def test_run_once_reads_and_exits(setup: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli.main import run

    cfg, logs, db = setup
    (logs / "a.log").write_text(lines(0, 30), encoding="utf-8")
    assert run(["-c", str(cfg), "run", "--once"]) == 0
    assert run(["-c", str(cfg), "run", "--once"]) == 0
    assert totals(db) == (30, 30)


def test_stats_show_position_and_lag_and_a_burst_is_warned(
    setup: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    import json

    from monitor.cli.main import run

    cfg, logs, db = setup
    log = logs / "a.log"
    log.write_text(lines(0, 10) + "not squid at all\n" * 30, encoding="utf-8")
    assert run(["-c", str(cfg), "run", "--once"]) == 0
    assert "30 of 40 lines quarantined" in caplog.text and "line 11:" in caplog.text
    half = "1763300000.000 9 10.1.1.1 TCP_TUNNEL/200 9 CONNECT x.example:443"  # squid mid-way through a line
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(half)
    capsys.readouterr()
    assert run(["-c", str(cfg), "stats", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert row["current_file"] == str(log) and row["bytes"] == row["offset"] == len(lines(0, 10)) + 17 * 30
    assert row["lag_bytes"] == len(half) and row["lines_read"] == 40 and row["quarantined"] == 30


def test_a_glob_that_matches_rotated_copies_reads_them_as_generations_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`paths: [access.log*]` matches access.log.1 and .2.gz too: as sources of their own they would be
    read again after every rotation renamed them; as generations of access.log they are read once."""
    import gzip

    from monitor.cli.main import run

    logs = tmp_path / "logs"
    logs.mkdir()
    cfg = tmp_path / "xborder.yaml"
    cfg.write_text(
        "store: {url: 'sqlite:///x.db'}\nalerts: {jsonl: null, stderr: false}\n"
        "systems: [{name: lan, sources: [10.0.0.0/8], data_categories: [none]}]\n"
        f"sources: [{{collector: squid, paths: ['{logs}/access.log*']}}]\n",
        encoding="utf-8",
    )
    db = tmp_path / "x.db"
    with gzip.open(logs / "access.log.2.gz", "wt", encoding="utf-8") as fh:
        fh.write(lines(0, 10))
    (logs / "access.log.1").write_text(lines(10, 10), encoding="utf-8")
    (logs / "access.log").write_text(lines(20, 10), encoding="utf-8")
    old = time.time() - 7200
    os.utime(logs / "access.log.2.gz", (old, old))
    os.utime(logs / "access.log.1", (old + 3600, old + 3600))
    assert run(["-c", str(cfg), "run", "--once"]) == 0
    assert totals(db) == (30, 30)  # backfilled: both generations and the live file
    # logrotate shifts them all: .1 -> .2 (compressed), live -> .1, a new live file
    (logs / "access.log.2.gz").unlink()
    with gzip.open(logs / "access.log.2.gz", "wt", encoding="utf-8") as fh:
        fh.write((logs / "access.log.1").read_text(encoding="utf-8"))
    os.rename(logs / "access.log", logs / "access.log.1")
    (logs / "access.log").write_text(lines(30, 5), encoding="utf-8")
    assert run(["-c", str(cfg), "run", "--once"]) == 0
    assert totals(db) == (35, 35)
    capsys.readouterr()
    assert run(["-c", str(cfg), "stats", "--format", "json"]) == 0
    import json

    (row,) = json.loads(capsys.readouterr().out)["rows"]  # one source: the live file
    assert row["source"].endswith("/access.log")
