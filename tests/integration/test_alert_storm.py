"""Storm: 100,000 repeats of one violation give one alert and summaries; a higher severity mid-storm alerts at once."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.alert.jsonl import JsonlAlerter
from monitor.alert.outbox import Channels, deliver_pending, register_channels
from monitor.store.models import AlertOutbox
from tests.support.alerts import alert, commit_alerts

REPEATS = 100_000
PER_BATCH = 1_000


def sent(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_a_storm_is_one_alert_and_summaries_and_a_higher_severity_still_alerts(
    store: sessionmaker[Session], tmp_path: Path
) -> None:
    out = tmp_path / "soc.jsonl"
    chans = Channels({"soc": JsonlAlerter(out)}, {})
    register_channels(store, ["soc"])
    storm = alert("unauthorized|search|api.example|US", "high", system="search")
    for n in range(REPEATS // PER_BATCH):
        batch = [storm] * PER_BATCH
        if n == 50:  # mid-storm: the same violation turns critical, and an unrelated one appears
            batch += [dict(storm, severity="critical"), alert("unauthorized|checkout|pay.example|US", "high")]
        commit_alerts(store, batch)
        if n == 50:
            deliver_pending(store, chans)  # the deliverer runs while the storm goes on
            got = sent(out)
            assert [g["severity"] for g in got] == ["high", "critical", "high"]
            assert got[1]["escalated_from"] == "high" and got[1]["dedup_key"] == got[0]["dedup_key"]
    deliver_pending(store, chans)
    assert len(sent(out)) == 3  # inside the window: counted, not sent

    with store() as s:
        ends = s.scalars(select(AlertOutbox.window_end)).all()
        counted = s.scalar(select(func.sum(AlertOutbox.repeats)))
        same_key = select(func.count()).select_from(AlertOutbox).where(AlertOutbox.dedup_key == storm["dedup_key"])
        opened = s.scalar(same_key)
    assert opened == 2 and counted + opened == REPEATS + 1  # every occurrence: opened or counted, once
    after = max(e if e.tzinfo else e.replace(tzinfo=dt.UTC) for e in ends) + dt.timedelta(seconds=1)
    deliver_pending(store, chans, now=after)
    summaries = [g for g in sent(out) if g["kind"] == "repeat_summary"]
    assert len(sent(out)) == 5 and len(summaries) == 2
    assert sum(int(str(g["repeats"])) for g in summaries) == counted
    assert {g["of_alert"] for g in summaries} == {sent(out)[0]["id"], sent(out)[1]["id"]}
    deliver_pending(store, chans, now=after + dt.timedelta(hours=2))
    assert len(sent(out)) == 5  # a summary is sent once


def test_a_channel_rate_limit_turns_a_storm_into_one_summary(store: sessionmaker[Session], tmp_path: Path) -> None:
    limited, free = tmp_path / "pager.jsonl", tmp_path / "archive.jsonl"
    chans = Channels({"pager": JsonlAlerter(limited), "archive": JsonlAlerter(free)}, {}, limits={"pager": 10})
    register_channels(store, ["pager", "archive"])
    storm = [alert(f"distinct-{i}", "high") for i in range(50)]
    storm.insert(30, alert("the-critical-one", "critical"))
    commit_alerts(store, storm)
    deliver_pending(store, chans)
    deliver_pending(store, chans)  # the summary queued by the first pass goes out
    got = sent(limited)
    assert len(sent(free)) == 51  # the limit is the pager's alone
    keys = [g["dedup_key"] for g in got]
    assert keys[:10] == [f"distinct-{i}" for i in range(10)] and "the-critical-one" in keys
    (summary,) = [g for g in got if g["kind"] == "rate_summary"]
    assert len(got) == 12 and len(summary["alerts"]) == 40  # type: ignore[arg-type]
    assert summary["dedup_keys"] == sorted(f"distinct-{i}" for i in range(10, 50))
