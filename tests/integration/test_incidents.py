"""Incidents: opened by unauthorized transfers of personal data, GDPR/NIS2 clocks, reminders, decisions."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.alert.incidents import IncidentPolicy, add_month, record
from monitor.alert.jsonl import JsonlAlerter
from monitor.alert.outbox import Channels, deliver_pending, register_channels
from monitor.cli.main import run
from monitor.store.models import Incident, IncidentClock, IncidentEvent
from tests.support.alerts import alert, commit_alerts

H = dt.timedelta(hours=1)
POLICY = IncidentPolicy(nis2_entity=True, nis2_systems=frozenset({"checkout"}))


def personal(key: str, system: str, categories: list[str]) -> dict[str, object]:
    a = alert(key, system=system)
    a["payload"] = {**a["payload"], "data_categories": categories}  # type: ignore[dict-item]
    return a


def clocks(store: sessionmaker[Session], incident: int) -> dict[str, IncidentClock]:
    with store() as s:
        return {c.clock: c for c in s.scalars(select(IncidentClock).where(IncidentClock.incident_id == incident))}


def aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def test_clocks_start_at_awareness_and_reminders_go_out_once_each(store: sessionmaker[Session], tmp_path: Path) -> None:
    out = tmp_path / "soc.jsonl"
    chans = Channels({"soc": JsonlAlerter(out)}, {}, incidents=POLICY)
    register_channels(store, ["soc"])
    commit_alerts(store, [personal("k-checkout", "checkout", ["customer-personal"]),
                          personal("k-search", "search", ["customer-behavioural"]),
                          personal("k-none", "build", ["none"])])  # fmt: skip
    deliver_pending(store, chans)
    with store() as s:
        incs = {i.system: i for i in s.scalars(select(Incident))}
    assert set(incs) == {"checkout", "search"}  # no personal data, no breach clock
    t0 = aware(incs["checkout"].aware_at)
    c = clocks(store, incs["checkout"].id)
    assert {k: aware(v.due_at) - t0 for k, v in c.items() if k != "nis2_final_report"} == {
        "gdpr_art33_notify": 72 * H, "nis2_early_warning": 24 * H, "nis2_notification": 72 * H}  # fmt: skip
    assert aware(c["nis2_final_report"].due_at) == add_month(t0 + 72 * H)
    assert set(clocks(store, incs["search"].id)) == {"gdpr_art33_notify"}  # not a NIS2-relevant system

    def reminders() -> list[dict[str, object]]:
        return [a for a in map(json.loads, out.read_text().splitlines()) if a["kind"] == "reminder"]

    deliver_pending(store, chans, now=t0 + 13 * H)  # the 24 h clock is 11 h away: the 12 h reminder
    assert [(r["incident"], r["clock"], r["reminder"]) for r in reminders()] == [
        (incs["checkout"].id, "nis2_early_warning", "12h")]  # fmt: skip
    deliver_pending(store, chans, now=t0 + 13.5 * H)
    assert len(reminders()) == 1  # once
    deliver_pending(store, chans, now=t0 + 24 * H + dt.timedelta(minutes=1))
    last = reminders()[-1]
    assert (last["clock"], last["reminder"], last["severity"]) == ("nis2_early_warning", "overdue", "critical")

    # the early warning was filed (late); the notification too: the final report is due a month after it
    with store() as s:
        record(s, incs["checkout"].id, "CISO", "file", "BSI ref 42", t0 + 30 * H, "nis2_early_warning")
        record(s, incs["checkout"].id, "CISO", "file", "BSI ref 43", t0 + 60 * H, "nis2_notification")
    assert aware(clocks(store, incs["checkout"].id)["nis2_final_report"].due_at) == add_month(t0 + 60 * H)
    n = len(reminders())
    deliver_pending(store, chans, now=t0 + 71 * H)  # 72 h: only GDPR Art. 33 is still open
    assert {(r["clock"], r["reminder"]) for r in reminders()[n:]} == {("gdpr_art33_notify", "2h")}
    with store() as s:
        record(s, incs["checkout"].id, "DPO", "close", "not a breach: pseudonymised test data", t0 + 71.5 * H)
        record(s, incs["search"].id, "DPO", "close", "vendor under SCCs, register updated", t0 + 71.5 * H)
    n = len(reminders())
    deliver_pending(store, chans, now=t0 + 100 * H)
    assert len(reminders()) == n  # closed: the clocks stop
    with store() as s:
        ev = [(e.actor, e.action) for e in s.scalars(select(IncidentEvent).where(
            IncidentEvent.incident_id == incs["checkout"].id).order_by(IncidentEvent.id))]  # fmt: skip
    decisions = [e for e in ev if e[1] != "reminded"]
    assert decisions == [("xborder", "opened"), ("CISO", "file"), ("CISO", "file"), ("DPO", "close")]
    assert ev.count(("xborder", "reminded")) == 3  # 12h and overdue (early warning), 2h (GDPR Art. 33)


def test_a_repeat_of_an_open_incident_is_recorded_not_opened_again(store: sessionmaker[Session]) -> None:
    chans = Channels({}, {}, incidents=POLICY)
    commit_alerts(store, [personal("same", "checkout", ["customer-personal"])])
    deliver_pending(store, chans)
    # the next alert of the key (after its suppression window): the incident is still open
    with store() as s:
        from monitor.store.models import AlertOutbox

        s.query(AlertOutbox).update({AlertOutbox.window_end: dt.datetime(2000, 1, 1, tzinfo=dt.UTC)})
        s.commit()
    commit_alerts(store, [personal("same", "checkout", ["customer-personal"])])
    deliver_pending(store, chans)
    with store() as s:
        assert len(s.scalars(select(Incident)).all()) == 1
        assert [e.action for e in s.scalars(select(IncidentEvent).order_by(IncidentEvent.id))] == ["opened", "alert"]
        record(s, 1, "DPO", "close", "done", dt.datetime.now(dt.UTC))
        with pytest.raises(ValueError, match="closed"):
            record(s, 1, "DPO", "ack", None, dt.datetime.now(dt.UTC))


def test_incident_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "xborder.yaml"
    cfg.write_text(f"""
organisation: {{name: Shop GmbH, country: DE, nis2: important}}
store: {{url: "sqlite:///{tmp_path / 'x.db'}"}}
systems:
  - {{name: checkout, sources: [10.20.1.0/24], data_categories: [customer-personal], criticality: critical}}
alerts: {{jsonl: alerts.jsonl, stderr: false}}
""")
    log = tmp_path / "access.log"
    line = "{:.3f}    120 10.20.1.5 TCP_TUNNEL/200 5000 CONNECT 8.8.0.1:443 - HIER_DIRECT/8.8.0.1 -\n"
    log.write_text(line.format(time.time()))
    assert run(["--config", str(cfg), "ingest", "squid", str(log)]) == 0
    capsys.readouterr()
    assert run(["--config", str(cfg), "incidents", "list", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["status"] == "open" and row["next_deadline"].startswith("nis2_early_warning ")
    assert run(["--config", str(cfg), "incidents", "ack", "1", "--by", "SOC on call"]) == 0
    assert run(["--config", str(cfg), "incidents", "file", "1", "nis2_early_warning", "--by", "CISO",
                "--note", "early warning filed at BSI portal", "--at", "2026-12-03T15:00+01:00"]) == 0  # fmt: skip
    assert run(["--config", str(cfg), "incidents", "file", "1", "nis2_typo", "--by", "CISO"]) == 2
    assert run(["--config", str(cfg), "incidents", "close", "1", "--by", "DPO", "--note", "not significant"]) == 0
    capsys.readouterr()
    assert run(["--config", str(cfg), "incidents", "show", "1", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "closed"
    filed = {c["clock"]: c for c in shown["clocks"]}["nis2_early_warning"]
    assert filed["done_by"] == "CISO" and filed["done_at"].startswith("2026-12-03T14:00")
    assert [(e["actor"], e["action"]) for e in shown["events"]] == [
        ("xborder", "opened"), ("SOC on call", "ack"), ("CISO", "file"), ("DPO", "close")]  # fmt: skip
    assert shown["events"][2]["note"] == "nis2_early_warning: early warning filed at BSI portal"
