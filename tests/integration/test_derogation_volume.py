"""Art. 49 derogations with an occasional-volume limit, through the real pipeline and SQLite store.

The volume a verdict sees is the requests of (system, destination, day) in the batch plus those
already stored (monitor.batch._day_volumes), so a limit holds across ingest runs and resets
each UTC day.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from monitor.pipeline import ingest_files
from monitor.settings import CONFIG_ENV, load_config

CONFIG = """\
store: {url: 'sqlite:///x.db'}
alerts: {jsonl: null, stderr: false}
overrides:
  - {host: rare.vendor.example, country: IN}
  - {host: plain.example, country: IN}
systems:
  - {name: crm, sources: [10.1.0.0/16], data_categories: [customer-personal]}
  - {name: web, sources: [10.2.0.0/16], data_categories: [customer-personal]}
vendors:
  - name: Rare Vendor
    domains: [vendor.example]
    mechanisms:
      - type: derogation
        point: b
        justification: "performance of a contract with the data subject"
        occasional_limit_per_day: 5
"""
DEROGATION_AT = "13:9"  # line:column of the derogation mechanism in CONFIG
T0 = 1763300000  # 2025-11-16 13:33:20 UTC
DAY = dt.date(2025, 11, 16)
HOUR = 3600


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.delenv("XBORDER_DB_URL", raising=False)


def squid(ts: int, host: str = "rare.vendor.example", client: str = "10.1.1.1", ip: str = "175.16.199.1") -> str:
    return f"{ts}.000 10 {client} TCP_TUNNEL/200 100 CONNECT {host}:443 - HIER_DIRECT/{ip} -\n"


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.cfg_path = tmp_path / "xborder.yaml"
        self.cfg_path.write_text(CONFIG, encoding="utf-8")
        assert CONFIG.splitlines()[int(DEROGATION_AT.split(":")[0]) - 1].strip() == "- type: derogation"
        self.log = tmp_path / "access.log"
        self.log.write_text("", encoding="utf-8")
        self.db = tmp_path / "x.db"

    def append_and_ingest(self, lines: list[str]) -> int:
        with self.log.open("a", encoding="utf-8") as fh:
            fh.write("".join(lines))
        summary = ingest_files(load_config(str(self.cfg_path)), "squid", [self.log], deliver=False)
        assert summary.quarantined == 0
        assert summary.rows == len(lines)
        return summary.files[0].evidence_rows

    def evidence(self) -> list[dict[str, Any]]:
        con = sqlite3.connect(self.db)
        con.row_factory = sqlite3.Row
        rows = [
            dict(r)
            for r in con.execute(
                "select id, system, dest_host, dest_ip, window_start, requests, outcome, article, rule_id, basis "
                "from evidence order by id"
            )
        ]
        con.close()
        return rows


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def test_stored_requests_count_toward_the_daily_limit(setup: Setup) -> None:
    # first run: 3 requests in one hour, within the limit of 5
    assert setup.append_and_ingest([squid(T0 + i * 60) for i in range(3)]) == 1
    (first,) = setup.evidence()
    assert (first["requests"], first["outcome"], first["article"]) == (3, "permitted", "49(1)(b)")
    assert first["rule_id"] == "gdpr.art49.derogation"
    assert "3 of at most 5 requests that day" in first["basis"]
    assert f"xborder.yaml:{DEROGATION_AT}" in first["basis"]

    # second run, same day, a later hour: 4 more; 3 stored + 4 new = 7 > 5
    assert setup.append_and_ingest([squid(T0 + HOUR + i * 60) for i in range(4)]) == 1
    first_again, second = setup.evidence()
    assert first_again == first  # evidence already written is never rejudged
    assert (second["requests"], second["outcome"], second["article"]) == (4, "review", "49(1)")
    assert second["rule_id"] == "gdpr.art49.beyond-limits"
    assert f"7 requests that day, the derogation at {setup.cfg_path}:{DEROGATION_AT} allows 5" in second["basis"]

    # the next UTC day starts again at 0
    assert setup.append_and_ingest([squid(T0 + 24 * HOUR + i * 60) for i in range(2)]) == 1
    third = setup.evidence()[-1]
    assert dt.date.fromisoformat(third["window_start"][:10]) == DAY + dt.timedelta(days=1)
    assert (third["requests"], third["outcome"], third["article"]) == (2, "permitted", "49(1)(b)")
    assert "2 of at most 5 requests that day" in third["basis"]


def test_the_limit_itself_is_still_occasional(setup: Setup) -> None:
    setup.append_and_ingest([squid(T0 + i) for i in range(3)])
    setup.append_and_ingest([squid(T0 + HOUR + i) for i in range(2)])  # 5 of 5
    setup.append_and_ingest([squid(T0 + 2 * HOUR)])  # 6 of 5
    rows = setup.evidence()
    assert [(r["requests"], r["outcome"]) for r in rows] == [(3, "permitted"), (2, "permitted"), (1, "review")]
    assert "5 of at most 5 requests that day" in rows[1]["basis"]
    assert "6 requests that day" in rows[2]["basis"]


def test_one_batch_over_the_limit_is_review(setup: Setup) -> None:
    setup.append_and_ingest([squid(T0 + i) for i in range(6)])
    (row,) = setup.evidence()
    assert (row["requests"], row["outcome"], row["rule_id"]) == (6, "review", "gdpr.art49.beyond-limits")


def test_each_system_has_its_own_count(setup: Setup) -> None:
    setup.append_and_ingest([squid(T0 + i) for i in range(4)])
    setup.append_and_ingest([squid(T0 + HOUR + i, client="10.2.0.9") for i in range(4)])
    rows = setup.evidence()
    got = [(r["system"], r["requests"], r["outcome"]) for r in rows]
    assert got == [("crm", 4, "permitted"), ("web", 4, "permitted")]


def test_a_destination_without_a_limit_is_not_counted(setup: Setup) -> None:
    setup.append_and_ingest([squid(T0 + i, host="plain.example") for i in range(10)])
    (row,) = setup.evidence()
    # no vendor, no mechanism: Art. 44 whatever the volume
    assert (row["requests"], row["outcome"], row["article"]) == (10, "unauthorized", "44")


def test_the_limit_counts_the_vendor_not_each_address(setup: Setup) -> None:
    setup.append_and_ingest([squid(T0 + i, ip="175.16.199.1") for i in range(3)])
    setup.append_and_ingest([squid(T0 + HOUR + i, ip="175.16.199.2") for i in range(4)])  # 7 requests that day
    rows = setup.evidence()
    assert [r["outcome"] for r in rows] == ["permitted", "review"]


def test_verdicts_do_not_depend_on_batch_boundaries(tmp_path: Path) -> None:
    lines = [squid(T0 + i * 60) for i in range(3)] + [squid(T0 + HOUR + i * 60) for i in range(4)]
    two_runs = Setup(tmp_path / "a")
    two_runs.append_and_ingest(lines[:3])
    two_runs.append_and_ingest(lines[3:])
    one_run = Setup(tmp_path / "b")
    one_run.append_and_ingest(lines)

    def outcomes(s: Setup) -> list[tuple[str, int, str]]:
        return [(r["window_start"], r["requests"], r["outcome"]) for r in s.evidence()]

    assert [o for _, _, o in outcomes(two_runs)] == ["permitted", "review"]
    assert outcomes(one_run) == outcomes(two_runs)
