"""End to end through the CLI as a user runs it: init, ingest real Squid logs with garbage, stats, verify, tamper."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from monitor.cli.main import run

GARBAGE = [
    b"this is not a squid line\n",
    b"\x00\xff\xfe binary junk \x80\n",
    b"abc.123 5 10.0.0.1 TCP_MISS/200 100 GET http://example.com/ - HIER_DIRECT/93.184.216.34 text/html\n",
    b"1677971735.123 567 192.168.1.100 TCP_MISS/200\n",
]


def write_config(d: Path, extra: str = "") -> Path:
    cfg = d / "xborder.yaml"
    cfg.write_text(
        "store: {url: 'sqlite:///x.db'}\n"
        "alerts: {jsonl: alerts.jsonl, stderr: false}\n"
        "systems:\n"
        "  - {name: lan, sources: [10.0.0.0/8, 192.168.0.0/16], data_categories: [customer-personal]}\n" + extra,
        encoding="utf-8",
    )
    return cfg


def mixed_log(fixtures_real: Path, tmp_path: Path) -> tuple[Path, list[int]]:
    """A real Squid log with garbage lines spliced in; returns the path and garbage line numbers."""
    real = (fixtures_real / "squid/elastic-beats/access1.log").read_bytes().splitlines(keepends=True)
    out, bad = [], []
    for i, line in enumerate(real):
        if i % 25 == 3:
            out.append(GARBAGE[len(bad) % len(GARBAGE)])
            bad.append(len(out))
        out.append(line)
    p = tmp_path / "access.log"
    p.write_bytes(b"".join(out))
    return p, bad


def json_out(capsys: pytest.CaptureFixture[str], argv: list[str]) -> object:
    capsys.readouterr()
    assert run(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_garbage_is_quarantined_and_counts_add_up(
    fixtures_real: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    log, bad = mixed_log(fixtures_real, tmp_path)
    total_lines = log.read_bytes().count(b"\n")
    assert run(["-c", str(cfg), "ingest", "squid", str(log)]) == 0
    stats = json_out(capsys, ["-c", str(cfg), "stats", "--format", "json"])
    assert isinstance(stats, dict)
    t = stats["totals"]
    assert t["lines_read"] == total_lines == 100 + len(bad)
    assert t["rows"] == 100 and t["quarantined"] == len(bad)
    assert t["rows"] + t["quarantined"] + t["blank"] == t["lines_read"]
    q = json_out(capsys, ["-c", str(cfg), "quarantine", "list", "--format", "json"])
    assert isinstance(q, list)
    assert sorted(r["line"] for r in q) == bad
    assert all(r["reason"] for r in q)
    shown = json_out(capsys, ["-c", str(cfg), "quarantine", "show", str(q[1]["id"]), "--format", "json"])
    assert isinstance(shown, list) and shown[0]["raw_hex"] == GARBAGE[1].rstrip(b"\n").hex()

    # ingesting the same file again adds nothing
    assert run(["-c", str(cfg), "ingest", "squid", str(log)]) == 0
    again = json_out(capsys, ["-c", str(cfg), "stats", "--format", "json"])
    assert isinstance(again, dict) and again["totals"] == t


def test_appended_lines_are_read_once(fixtures_real: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    lines = (fixtures_real / "squid/elastic-beats/access1.log").read_bytes().splitlines(keepends=True)
    log = tmp_path / "access.log"
    log.write_bytes(b"".join(lines[:60]))
    assert run(["-c", str(cfg), "ingest", "squid", str(log)]) == 0
    with open(log, "ab") as fh:
        fh.write(b"".join(lines[60:]))
    assert run(["-c", str(cfg), "ingest", "squid", str(log)]) == 0
    stats = json_out(capsys, ["-c", str(cfg), "stats", "--format", "json"])
    assert isinstance(stats, dict)
    assert stats["totals"]["lines_read"] == 100 and stats["totals"]["rows"] == 100
    tr = json_out(capsys, ["-c", str(cfg), "transfers", "--format", "json"])
    assert isinstance(tr, list)
    # every request with a destination is accounted for exactly once
    assert sum(r["requests"] for r in tr) == 100 - stats["totals"]["no_destination"]


def test_evidence_verify_passes_then_names_the_tampered_row(
    fixtures_real: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    for name in ("access1.log", "access3.log"):
        shutil.copy(fixtures_real / "squid/elastic-beats" / name, tmp_path / name)
        assert run(["-c", str(cfg), "ingest", "squid", str(tmp_path / name)]) == 0
    ok = json_out(capsys, ["-c", str(cfg), "evidence", "verify", "--format", "json"])
    assert isinstance(ok, list) and ok[0]["ok"] is True and ok[0]["batches"] == 2
    con = sqlite3.connect(tmp_path / "x.db")
    (victim,) = con.execute("select id from evidence order by id limit 1 offset 5").fetchone()
    con.execute("update evidence set requests = requests + 1 where id = ?", (victim,))
    con.commit()
    con.close()
    capsys.readouterr()
    assert run(["-c", str(cfg), "evidence", "verify"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and f"evidence row id={victim}" in out


def test_real_logs_with_maxmind_test_databases(
    fixtures_real: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mm = fixtures_real / "mmdb"
    cfg = write_config(
        tmp_path, f"geoip: {{databases: ['{mm}/GeoIP2-City-Test.mmdb', '{mm}/GeoLite2-ASN-Test.mmdb']}}\n"
    )
    log = tmp_path / "a.log"
    # 81.2.69.142 is GB (adequate) and 89.160.20.112 SE (EEA) in the MaxMind test data
    log.write_text(
        "1763300000.000 10 10.1.1.1 TCP_TUNNEL/200 100 CONNECT a.example:443 - HIER_DIRECT/81.2.69.142 -\n"
        "1763300001.000 10 10.1.1.1 TCP_TUNNEL/200 100 CONNECT b.example:443 - HIER_DIRECT/89.160.20.112 -\n"
        "1763300002.000 10 10.1.1.1 TCP_TUNNEL/200 100 CONNECT c.example:443 - HIER_DIRECT/175.16.199.1 -\n",
        encoding="utf-8",
    )
    assert run(["-c", str(cfg), "ingest", "squid", str(log)]) == 0
    tr = json_out(capsys, ["-c", str(cfg), "transfers", "--format", "json"])
    assert isinstance(tr, list)
    by = {r["dest_host"]: r for r in tr}
    assert (by["a.example"]["country"], by["a.example"]["outcome"], by["a.example"]["article"]) == (
        "GB",
        "permitted",
        "45",
    )
    assert (by["b.example"]["country"], by["b.example"]["outcome"]) == ("SE", "permitted")
    assert (by["c.example"]["country"], by["c.example"]["outcome"], by["c.example"]["article"]) == (
        "CN",
        "unauthorized",
        "44",
    )
    alerts = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [a["dest_host"] for a in alerts] == ["c.example"]
    con = sqlite3.connect(tmp_path / "x.db")
    builds = {b for (b,) in con.execute("select distinct mmdb_build from evidence")}
    con.close()
    assert builds == {"GeoIP2-City@1770245369,GeoLite2-ASN@1770245369"}


@pytest.mark.parametrize(
    "name",
    [
        "GeoIP2-City-Test-Invalid-Node-Count.mmdb",
        "libmaxminddb-metadata-marker-only.mmdb",
        "metadata-is-an-uint128.mmdb",
        "bad-unicode-in-map-key.mmdb",
    ],
)
def test_corrupt_mmdb_is_a_clear_config_error(
    fixtures_real: Path, tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = fixtures_real / "mmdb/bad-data" / name
    cfg = write_config(tmp_path, f"geoip: {{databases: ['{bad}']}}\n")
    log = tmp_path / "a.log"
    log.write_text("", encoding="utf-8")
    capsys.readouterr()
    assert run(["-c", str(cfg), "ingest", "squid", str(log)]) == 2
    err = capsys.readouterr().err
    assert name in err and "Traceback" not in err


def test_config_errors_are_located_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "xborder.yaml"
    cfg.write_text("store:\n  ulr: x\nsystems:\n  - name: a\n    sources: [10.0.0.0/99]\n", encoding="utf-8")
    capsys.readouterr()
    assert run(["-c", str(cfg), "check"]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}:2:3: unknown key 'ulr'" in err and "did you mean 'url'" in err
    assert f"{cfg}:5" in err and "missing required key 'systems.0.data_categories'" in err


def test_init_writes_a_config_that_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["init", str(tmp_path / "etc")]) == 0
    cfg = tmp_path / "etc" / "xborder.yaml"
    assert run(["-c", str(cfg), "db", "upgrade"]) == 0
    capsys.readouterr()
    assert run(["-c", str(cfg), "check"]) == 0
    assert "[ok  ] store" in capsys.readouterr().out
    assert run(["init", str(tmp_path / "etc")]) == 2  # refuses to overwrite


def test_unterminated_last_line_waits_unless_final(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    log = tmp_path / "live.log"
    full = "1763300000.000 10 10.1.1.1 TCP_TUNNEL/200 100 CONNECT a.example:443 - HIER_DIRECT/81.2.69.142 -\n"
    log.write_text(full + full[:40], encoding="utf-8")  # squid is mid-way through line 2
    capsys.readouterr()
    assert run(["-c", str(cfg), "ingest", "squid", str(log)]) == 0
    assert "40 bytes after the last newline" in capsys.readouterr().err
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(full[40:])  # the writer finishes the line
    assert run(["-c", str(cfg), "ingest", "squid", str(log)]) == 0
    stats = json_out(capsys, ["-c", str(cfg), "stats", "--format", "json"])
    assert isinstance(stats, dict)
    assert (stats["totals"]["rows"], stats["totals"]["quarantined"]) == (2, 0)
    log2 = tmp_path / "done.log"
    log2.write_text(full + full.rstrip("\n"), encoding="utf-8")
    assert run(["-c", str(cfg), "ingest", "--final", "squid", str(log2)]) == 0
    stats = json_out(capsys, ["-c", str(cfg), "stats", "--format", "json"])
    assert isinstance(stats, dict) and stats["totals"]["rows"] == 4


def test_personal_data_in_urls_and_lockout_signals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "xborder.yaml"
    cfg.write_text(
        "store: {url: 'sqlite:///x.db'}\nalerts: {jsonl: alerts.jsonl, stderr: false}\n"
        "systems: [{name: build-farm, sources: [10.9.0.0/16], data_categories: [none]}]\n",
        encoding="utf-8",
    )
    log = tmp_path / "a.log"
    log.write_text(
        # a plugin on a "no personal data" system sends a customer's e-mail to an analytics endpoint
        "1763300000.000 9 10.9.1.1 TCP_MISS/200 9 GET http://stats.example/c?u=jane%40example.com - "
        "HIER_DIRECT/175.16.199.1 text/plain\n"
        "1763300001.000 9 10.9.1.1 TCP_MISS/200 9 GET http://stats.example/c?page=2 - HIER_DIRECT/175.16.199.1 -\n"
        "1763300002.000 9 10.9.1.1 TCP_MISS/451 9 GET http://stats.example/c?page=3 - HIER_DIRECT/175.16.199.1 -\n"
        "1763300003.000 9 10.9.1.1 TCP_MISS/429 9 GET http://stats.example/c?page=4 - HIER_DIRECT/175.16.199.1 -\n"
        "1763300004.000 9 10.9.1.1 TCP_MISS/503 9 GET http://stats.example/c?page=5 - HIER_DIRECT/175.16.199.1 -\n",
        encoding="utf-8",
    )
    assert run(["-c", str(cfg), "ingest", "squid", str(log)]) == 0
    con = sqlite3.connect(tmp_path / "x.db")
    rows = con.execute(
        "select pii_kinds, outcome, severity, requests, status_blocked, status_rate_limited, status_5xx "
        "from evidence order by pii_kinds"
    ).fetchall()
    con.close()
    assert rows == [(None, "out_of_scope", "info", 4, 1, 1, 1), ("email", "unauthorized", "high", 1, 0, 0, 0)]
    alerts = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert len(alerts) == 1 and alerts[0]["dest_host"] == "stats.example"
    assert "jane" not in (tmp_path / "alerts.jsonl").read_text()  # the value is never stored
