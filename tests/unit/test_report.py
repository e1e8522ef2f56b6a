"""Weekly report: data sums the right week from a real store; the PDF shows it; tampering shows."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import ReportError, UsageError
from monitor.records import Quarantined
from monitor.report.data import weekly_report_data
from monitor.report.model import WeeklyReport, current_week, parse_week, previous_week
from monitor.report.render import render_weekly_html, render_weekly_pdf
from monitor.store.models import Batch
from monitor.store.session import open_store
from monitor.store.writer import BatchRecord, commit_batch

ORG = "Acme & Söhne <Logistics> GmbH"
LONG_HOST = "uploads.eu-central-telemetry-ingest-primary.analytics-collector.example-cn-cloud.cn"
PACK = "9f2c" * 16
GENERATED = dt.datetime(2025, 3, 17, 6, 0, tzinfo=dt.UTC)


def ev(window_start: dt.datetime, **kw: Any) -> dict[str, Any]:
    """One evidence row (every Evidence column but id, batch_seq, row_hash)."""
    row: dict[str, Any] = {
        "window_start": window_start,
        "window_end": window_start + dt.timedelta(hours=1),
        "collector": "squid",
        "system": "crm",
        "data_categories": "customer-personal",
        "dest_host": None,
        "dest_ip": None,
        "located_country": None,
        "registered_country": None,
        "country": None,
        "eea": None,
        "asn": None,
        "as_org": None,
        "provider": None,
        "provider_seat": None,
        "confidence": "high",
        "outcome": "permitted",
        "article": None,
        "basis": "",
        "rule_id": "gdpr.chapter-v.default",
        "rule_location": "rules/gdpr/chapter_v.yaml:1",
        "pack_hash": PACK,
        "severity": "info",
        "vendor": None,
        "mmdb_build": "GeoLite2-City 2025-03-04",
        "catalog_version": "2025.03",
        "requests": 1,
        "egress_requests": 1,
        "bytes_out": 0,
        "bytes_in": 0,
        "first_seen": window_start + dt.timedelta(minutes=5),
        "last_seen": window_start + dt.timedelta(minutes=50),
        "sample_origins": ["squid:/var/log/squid/access.log:1"],
    }
    for k in kw:
        if k not in row:
            raise KeyError(k)
    row.update(kw)
    if row["country"] is None:
        row["country"] = row["located_country"]
    return row


def record(evidence: list[dict[str, Any]], quarantined: Sequence[Quarantined] = (),
           lines_read: int | None = None) -> BatchRecord:
    q = list(quarantined)
    rows = sum(e["requests"] for e in evidence)
    return BatchRecord(
        collector="squid",
        source="squid:/var/log/squid/access.log",
        lines_read=lines_read if lines_read is not None else rows + len(q),
        rows=rows,
        blank=0,
        no_destination=0,
        evidence=evidence,
        quarantined=q,
        checkpoint=None,
        resumed_from=None,
        first_ts=min((e["first_seen"] for e in evidence), default=None),
        last_ts=max((e["last_seen"] for e in evidence), default=None),
    )


# Requests/destinations per kind in the reported week (A); the week before (B) must not count.
US = dict(dest_host="api.salesforce.com", dest_ip="13.110.1.1", located_country="US",
          eea=False, provider="Salesforce", provider_seat="US", outcome="permitted",
          article="46(2)(c)", basis="Art. 46(2)(c) SCC module 2 signed 2024-03-01",
          rule_id="org.vendor.salesforce.scc", rule_location="config/vendors.yaml:12")
CN = dict(system="hr-portal", data_categories="hr", dest_host=LONG_HOST, dest_ip="47.100.1.2",
          located_country="CN", eea=False, provider="Example CN Cloud", outcome="unauthorized",
          article="44", basis="Art. 44: no adequacy decision, safeguard or derogation",
          rule_id="gdpr.44.no-basis", rule_location="rules/gdpr/chapter_v.yaml:88",
          severity="critical")
RU = dict(dest_host="tracker.example.ru", dest_ip="95.213.1.1", located_country="RU", eea=False,
          outcome="unauthorized", article="44",
          basis="Art. 44: no adequacy decision, safeguard or derogation",
          rule_id="gdpr.44.no-basis", rule_location="rules/gdpr/chapter_v.yaml:88",
          severity="high")
UNKNOWN = dict(system="payments", data_categories="payment", dest_ip="203.0.113.9",
               outcome="review", basis="country unknown: review", confidence="none",
               rule_id="gdpr.review.unknown-country", rule_location="rules/gdpr/chapter_v.yaml:40",
               severity="medium", mmdb_build=None)
DE = dict(system="intranet-sync", data_categories="none", dest_host="files.example.de",
          dest_ip="88.99.1.1", located_country="DE", eea=True, outcome="out_of_scope",
          basis="EEA destination: Chapter V does not apply", rule_id="gdpr.eea")
JP = dict(system="support-desk", data_categories="customer-personal",
          dest_host="api.example.jp", dest_ip="133.1.1.1", located_country="JP", eea=False,
          outcome="permitted", article="45", basis="Art. 45 adequacy JP 2019/419",
          rule_id="gdpr.45.jp")


@dataclass
class Demo:
    factory: sessionmaker[Session]
    week: str
    start: dt.datetime
    quarantined: int


def utc(t: dt.datetime) -> dt.datetime:
    # SQLite gives naive datetimes (stored as UTC), PostgreSQL aware ones in the session zone
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def build_demo(db: str) -> Demo:
    factory = open_store(db)
    # Quarantine is reported by the week its batch was committed: commit that batch first and
    # take the reported week from its commit time, so the test holds on any day it runs.
    commit_batch(factory, record([], [
        Quarantined("squid:/var/log/squid/access.log", 10, 900, "bad timestamp", b"x 1 2"),
        Quarantined("squid:/var/log/squid/access.log", 11, 950, "bad timestamp", b"y 1 2"),
        Quarantined("squid:/var/log/squid/access.log", 12, 990, "truncated line", b"\xff\x00"),
    ], lines_read=3))
    with factory() as s:
        committed = utc(s.scalars(select(Batch.committed_at)).one())
    week = current_week(committed.date())
    _, start, end = parse_week(week)
    mon, wed, sun = start + dt.timedelta(hours=9), start + dt.timedelta(days=2, hours=14), \
        end - dt.timedelta(hours=1)
    before, after = start - dt.timedelta(hours=1), end  # week B, and the next week's first hour

    commit_batch(factory, record([
        ev(mon, requests=60, egress_requests=60, bytes_out=6000, bytes_in=30000, **US),
        ev(mon, requests=5, egress_requests=4, bytes_out=500_000, bytes_in=100,
           first_seen=mon + dt.timedelta(minutes=7), last_seen=mon + dt.timedelta(minutes=8),
           **CN),
        ev(wed, requests=30, egress_requests=30, bytes_out=300, bytes_in=3000, **RU),
        ev(start, requests=200, egress_requests=200, bytes_out=20, bytes_in=2000, **DE),
        ev(before, requests=999, egress_requests=999, bytes_out=9, bytes_in=9,
           **{**CN, "dest_host": "old.example.cn"}),
    ]))
    commit_batch(factory, record([
        ev(wed, requests=40, egress_requests=38, bytes_out=4000, bytes_in=20000, **US),
        ev(sun, requests=2, egress_requests=2, bytes_out=200, bytes_in=50,
           first_seen=sun + dt.timedelta(minutes=1), last_seen=sun + dt.timedelta(minutes=59),
           **CN),
        ev(sun, requests=4, egress_requests=0, bytes_out=None, bytes_in=0, **UNKNOWN),
        ev(wed, requests=50, egress_requests=50, bytes_out=500, bytes_in=5000, **JP),
        ev(after, requests=777, egress_requests=777, bytes_out=7, bytes_in=7, **RU),
    ]))
    return Demo(factory, week, start, quarantined=3)


def _closing(demo: Demo) -> Iterator[Demo]:
    try:
        yield demo
    finally:  # close pooled connections before the test database is dropped
        demo.factory.kw["bind"].dispose()


@pytest.fixture
def demo(db_url: str) -> Iterator[Demo]:
    """The demo store on SQLite and on PostgreSQL: the data queries must agree on both."""
    yield from _closing(build_demo(db_url))


@pytest.fixture
def sqlite_demo(tmp_path: Path) -> Iterator[Demo]:
    yield from _closing(build_demo(f"sqlite:///{tmp_path}/x.db"))


def report_of(demo: Demo, week: str | None = None, **kw: Any) -> WeeklyReport:
    with demo.factory() as s:
        return weekly_report_data(s, demo.week if week is None else week, organisation=ORG,
                                  generated_at=GENERATED, **kw)


def pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() or "" for page in PdfReader(path).pages)


def squash(s: str) -> str:
    # Long values wrap (overflow-wrap: anywhere) and text extraction then puts breaks inside them.
    return re.sub(r"\s+", "", s)


# --------------------------------------------------------------------------- weeks


def test_week_helpers() -> None:
    assert current_week(dt.date(2025, 1, 1)) == "2025-W01"
    assert current_week(dt.date(2024, 12, 30)) == "2025-W01"
    assert previous_week(dt.date(2025, 1, 1)) == "2024-W52"
    week, start, end = parse_week("2026-w53")
    assert week == "2026-W53"
    assert start == dt.datetime(2026, 12, 28, tzinfo=dt.UTC)
    assert end == dt.datetime(2027, 1, 4, tzinfo=dt.UTC)


@pytest.mark.parametrize("bad", ["2025-W00", "2025-W53", "2025-13", "W07", "2025-W7", "", "x"])
def test_bad_week_is_a_usage_error(sqlite_demo: Demo, bad: str) -> None:
    with pytest.raises(UsageError, match="week"):
        report_of(sqlite_demo, bad)


# --------------------------------------------------------------------------- data


def test_totals_sum_the_week_only(demo: Demo) -> None:
    r = report_of(demo)
    assert r.week == demo.week and r.period_start == demo.start
    assert r.period_end - r.period_start == dt.timedelta(days=7)
    t = r.totals
    assert t.requests == 60 + 40 + 5 + 2 + 30 + 200 + 4 + 50
    assert t.egress_requests == 60 + 38 + 4 + 2 + 30 + 200 + 0 + 50
    assert t.bytes_out == 6000 + 4000 + 500_000 + 200 + 300 + 20 + 500
    assert t.bytes_in == 30000 + 20000 + 100 + 50 + 3000 + 2000 + 0 + 5000
    assert t.destinations == 6  # the IP-only destination counts by its IP
    assert t.systems == 5
    assert t.countries == 5  # the unknown country is not a country
    assert t.evidence_rows == 8
    assert (t.outcomes.permitted, t.outcomes.unauthorized, t.outcomes.review,
            t.outcomes.out_of_scope) == (150, 37, 4, 200)
    assert (t.unauthorized_destinations, t.review_destinations) == (2, 1)


def test_by_country_and_basis(demo: Demo) -> None:
    r = report_of(demo)
    got = [(c.country, c.eea, c.requests, c.destinations) for c in r.by_country]
    assert got == [
        ("DE", True, 200, 1),
        ("US", False, 100, 1),
        ("JP", False, 50, 1),
        ("RU", False, 30, 1),
        ("CN", False, 7, 1),
        ("unknown", None, 4, 1),
    ]
    cn = next(c for c in r.by_country if c.country == "CN")
    assert (cn.outcomes.unauthorized, cn.outcomes.permitted) == (7, 0)
    assert [(b.outcome, b.article, b.requests, b.destinations) for b in r.by_basis] == [
        ("unauthorized", "44", 37, 2),
        ("review", None, 4, 1),
        ("permitted", "46(2)(c)", 100, 1),
        ("permitted", "45", 50, 1),
        ("out_of_scope", None, 200, 1),
    ]


def test_unauthorized_rows_are_grouped_and_ordered(demo: Demo) -> None:
    r = report_of(demo)
    assert [(u.destination, u.severity, u.requests) for u in r.unauthorized] == [
        (LONG_HOST, "critical", 7),  # critical before high, although fewer requests
        ("tracker.example.ru", "high", 30),
    ]
    cn = r.unauthorized[0]
    _, start, end = parse_week(demo.week)
    assert (cn.system, cn.data_categories, cn.country, cn.provider) == (
        "hr-portal", "hr", "CN", "Example CN Cloud")
    assert cn.egress_requests == 6 and cn.bytes_out == 500_200
    assert cn.first_seen == start + dt.timedelta(hours=9, minutes=7)  # min over both batches
    assert cn.last_seen == end - dt.timedelta(minutes=1)  # max over both batches
    assert cn.first_seen.tzinfo is not None
    assert (cn.rule_id, cn.rule_location, cn.article) == (
        "gdpr.44.no-basis", "rules/gdpr/chapter_v.yaml:88", "44")
    assert [(v.destination, v.requests) for v in r.review] == [("203.0.113.9", 4)]
    assert r.review[0].bytes_out is None


def test_quarantine_chain_and_versions(demo: Demo) -> None:
    r = report_of(demo, mmdb_warnings=["GeoLite2-City.mmdb is 45 days old"])
    q = r.quarantine
    assert q.count == demo.quarantined
    assert q.top_reasons == (("bad timestamp", 2), ("truncated line", 1))
    with demo.factory() as s:
        batches = [b for b in s.scalars(select(Batch))
                   if (b.first_ts is None and r.period_start <= utc(b.committed_at) < r.period_end)
                   or (b.first_ts is not None and utc(b.first_ts) < r.period_end
                       and utc(b.last_ts) >= r.period_start)]
    assert q.batches == len(batches) and q.lines_read == sum(b.lines_read for b in batches)
    assert r.chain.ok and r.chain.batches == 3 and r.chain.head_seq == 3
    assert r.chain.head_hash is not None and len(r.chain.head_hash) == 64
    assert {(v.mmdb_build, v.pack_hash) for v in r.data_versions} == {
        ("GeoLite2-City 2025-03-04", PACK), (None, PACK)}
    assert r.mmdb_warnings == ("GeoLite2-City.mmdb is 45 days old",)


def test_other_week_and_empty_week(demo: Demo) -> None:
    before = report_of(demo, previous_week(demo.start.date()))
    assert before.totals.requests == 999
    assert [u.dest_host for u in before.unauthorized] == ["old.example.cn"]
    empty = report_of(demo, "2001-W01")
    assert empty.totals.requests == 0 and empty.by_country == () and empty.unauthorized == ()
    html = render_weekly_html(empty)
    assert "None. No transfer in this period was unauthorized" in html
    assert "No egress traffic was recorded" in html


# --------------------------------------------------------------------------- rendering


def test_html_escapes_organisation(sqlite_demo: Demo) -> None:
    html = render_weekly_html(report_of(sqlite_demo))
    assert "Acme &amp; Söhne &lt;Logistics&gt; GmbH" in html
    assert "<Logistics>" not in html


def test_pdf_shows_the_findings(sqlite_demo: Demo, tmp_path: Path) -> None:
    demo = sqlite_demo
    r = report_of(demo)
    out = render_weekly_pdf(r, tmp_path / "weekly.pdf")
    assert out == tmp_path / "weekly.pdf"
    assert out.read_bytes().startswith(b"%PDF")
    assert not list(tmp_path.glob(".weekly.pdf.*"))  # the temporary file is gone
    txt = pdf_text(out)
    flat = squash(txt)
    assert ORG in txt
    assert demo.week in txt
    for u in r.unauthorized:
        assert squash(u.destination) in flat
    assert "Quarantined lines 3" in txt
    assert r.chain.head_hash is not None and r.chain.head_hash in flat
    assert "PASSED" in txt and "FAILED" not in txt
    assert re.search(r"Page 1 of \d", txt)


def test_tampered_evidence_fails_the_chain(demo: Demo, tmp_path: Path) -> None:
    with demo.factory.begin() as s:
        victim = s.execute(text(
            "SELECT id FROM evidence WHERE dest_host = 'tracker.example.ru' ORDER BY id LIMIT 1"
        )).scalar_one()
        s.execute(text("UPDATE evidence SET requests = 3 WHERE id = :id"), {"id": victim})
    r = report_of(demo)
    assert not r.chain.ok and r.chain.bad_evidence_ids == (victim,)
    txt = pdf_text(render_weekly_pdf(r, tmp_path / "tampered.pdf"))
    assert "FAILED" in txt
    assert f"evidence row id={victim}" in txt


def test_unwritable_target_is_a_report_error(sqlite_demo: Demo, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="cannot write report"):
        render_weekly_pdf(report_of(sqlite_demo), tmp_path / "no-such-dir" / "weekly.pdf")
