"""Benchmark: `xborder run` keeping up with a live log — lag from write to commit at a steady rate.

    .venv/bin/python bench/follow.py                  # 20,000 lines/s for 20 s
    .venv/bin/python bench/follow.py --rate 5000 --seconds 5

The traffic: 200 clients of one system calling 300 destinations (a busy shop's egress; an alert
storm of thousands of distinct violations per second is the alerting issue's storm test). A
writer appends Squid lines at a fixed rate (in 50 ms slices) while `xborder run` follows the
file in a subprocess; the writer records when each slice was written, and a watcher polls the
store for committed line counts. Lag of a slice = time its last line became committed minus the
time it was written. Prints p50/p99/max lag and whether the follower kept up. Not a unit test.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

LINE = "{ts:.3f} 12 10.20.{a}.{b} TCP_TUNNEL/200 5321 CONNECT h{h}.example:443 - HIER_DIRECT/175.16.199.{c} -\n"


def committed(db: Path) -> int:
    try:
        con = sqlite3.connect(db, timeout=1)
        try:
            return int(con.execute("select coalesce(sum(lines_read),0) from batches").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def store_rows(db: Path) -> tuple[int, int]:
    """(batches, evidence rows) committed: follow mode's commits are small, and each one writes a row
    per (window, system, destination) it saw, so evidence grows with the commit rate too."""
    con = sqlite3.connect(db, timeout=5)
    try:
        return (int(con.execute("select count(*) from batches").fetchone()[0]),
                int(con.execute("select count(*) from evidence").fetchone()[0]))  # fmt: skip
    finally:
        con.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rate", type=int, default=20_000, help="lines per second")
    ap.add_argument("--seconds", type=float, default=20.0)
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="xborder-follow-"))
    log, db = work / "access.log", work / "x.db"
    log.touch()
    (work / "xborder.yaml").write_text(
        "store: {url: 'sqlite:///x.db'}\nalerts: {jsonl: null, stderr: false}\nrun: {poll_seconds: 0.1}\n"
        "systems: [{name: lan, sources: [10.0.0.0/8], data_categories: [customer-personal]}]\n"
        "overrides: [{cidr: 175.16.199.0/24, country: DE, provider: Bench GmbH}]\n"
        f"sources: [{{collector: squid, paths: ['{log}']}}]\n",
        encoding="utf-8",
    )
    follower = subprocess.Popen([sys.executable, "-m", "monitor", "-c", str(work / "xborder.yaml"), "run"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    # start writing once the follower is up: it has created the store and made its first pass
    log.write_text(LINE.format(ts=time.time(), a=0, b=1, h=0, c=1), encoding="utf-8")
    up_by = time.monotonic() + 60
    while committed(db) < 1 and time.monotonic() < up_by:
        time.sleep(0.05)
    slice_s, per_slice = 0.05, max(1, int(a.rate * 0.05))
    marks: list[tuple[int, float]] = []  # (cumulative lines, time written), appended by the writer
    lags: list[float] = []
    done = threading.Event()

    def watch() -> None:
        # polls the store while the writer runs: a slice's lag ends when its last line is committed
        k = 0
        while True:
            c, now = committed(db), time.monotonic()
            while k < len(marks) and marks[k][0] <= c:
                lags.append(now - marks[k][1])
                k += 1
            if done.is_set() and k == len(marks):
                return
            if done.is_set() and now > finish_by:
                return
            time.sleep(0.02)

    finish_by = float("inf")
    watcher = threading.Thread(target=watch)
    watcher.start()
    written, n, t_end = 1, 0, time.monotonic() + a.seconds
    with open(log, "a", encoding="utf-8") as fh:
        next_at = time.monotonic()
        while time.monotonic() < t_end:
            now = time.time()
            fh.write("".join(LINE.format(ts=now, a=i % 200, b=i % 250, h=i % 300, c=i % 200)
                             for i in range(n, n + per_slice)))  # fmt: skip
            fh.flush()
            n += per_slice
            written += per_slice
            marks.append((written, time.monotonic()))
            next_at += slice_s
            time.sleep(max(0.0, next_at - time.monotonic()))
    finish_by = time.monotonic() + 60
    done.set()
    watcher.join()
    pending = len(marks) - len(lags)
    follower.terminate()
    follower.wait(timeout=30)
    # the watcher polls every 20 ms: lags are upper bounds by up to that much
    lags.sort()
    if not lags:
        print("no slice was committed")
        return 1
    p = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))]  # noqa: E731
    res = {"rate": a.rate, "seconds": a.seconds, "lines": written, "committed": committed(db),
           "lag_p50": p(0.5), "lag_p99": p(0.99), "lag_max": lags[-1], "kept_up": pending == 0}  # fmt: skip
    res["batches"], res["evidence_rows"] = store_rows(db)
    print(f"{written:,} lines at {a.rate:,}/s for {a.seconds:.0f} s: committed {res['committed']:,}; "
          f"lag p50 {res['lag_p50']:.2f} s, p99 {res['lag_p99']:.2f} s, max {res['lag_max']:.2f} s; "
          f"{'kept up' if res['kept_up'] else 'FELL BEHIND'}; {res['batches']:,} commits, "
          f"{res['evidence_rows']:,} evidence rows ({1000 * res['evidence_rows'] / max(1, written):.0f} "
          "per 1,000 lines)")  # fmt: skip
    out = Path(__file__).resolve().parent / "out"
    out.mkdir(exist_ok=True)
    (out / "follow-results.json").write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
