"""Incident reporting clocks from the shipped pack: NIS2 Art. 23(4) and GDPR Art. 33(1) deadlines."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from monitor.policy.clocks import Deadline, add_months, deadlines
from monitor.policy.rulepack import RulePack, load_pack
from monitor.settings import default_rules_dir

UTC = dt.UTC
EARLY = "nis2.art23.4.a.early-warning"
NOTIFY = "nis2.art23.4.b.notification"
FINAL = "nis2.art23.4.d.final-report"
GDPR = "gdpr.art33.1.notification"
AWARE = dt.datetime(2025, 3, 10, 14, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def pack() -> RulePack:
    return load_pack(default_rules_dir())


def by_id(ds: list[Deadline]) -> dict[str, Deadline]:
    out = {d.clock_id: d for d in ds}
    assert len(out) == len(ds), "clock ids are unique"
    return out


def test_all_four_clocks_from_awareness(pack: RulePack) -> None:
    ds = deadlines(pack, AWARE)
    got = by_id(ds)
    assert set(got) == {EARLY, NOTIFY, FINAL, GDPR}
    assert got[EARLY].due == AWARE + dt.timedelta(hours=24)
    assert got[NOTIFY].due == AWARE + dt.timedelta(hours=72)
    assert got[GDPR].due == AWARE + dt.timedelta(hours=72)
    assert got[EARLY].instrument == "NIS2 Art. 23(4)(a)"
    assert got[GDPR].instrument == "GDPR Art. 33(1)"
    assert (got[EARLY].runs_from, got[FINAL].runs_from) == ("aware", "notified")
    assert all(d.what for d in ds)


def test_final_report_before_notification_has_no_due_date_and_sorts_last(pack: RulePack) -> None:
    ds = deadlines(pack, AWARE)
    assert ds[-1].clock_id == FINAL
    assert ds[-1].due is None
    assert ds[-1].remaining(AWARE) is None
    # the others soonest first: 24 h, then the two 72 h clocks
    assert ds[0].clock_id == EARLY
    assert {d.clock_id for d in ds[1:3]} == {NOTIFY, GDPR}
    assert [d.due for d in ds[:3]] == sorted(d.due for d in ds[:3] if d.due is not None)


def test_final_report_one_calendar_month_after_notification(pack: RulePack) -> None:
    notified = AWARE + dt.timedelta(hours=50)
    got = by_id(deadlines(pack, AWARE, notified_at=notified))
    assert got[FINAL].due == dt.datetime(2025, 4, 12, 16, 30, tzinfo=UTC)
    # clocks running from awareness do not move with the notification
    assert got[NOTIFY].due == AWARE + dt.timedelta(hours=72)
    assert got[FINAL].remaining(notified) == dt.timedelta(days=31)


@pytest.mark.parametrize(
    ("notified", "due"),
    [
        (dt.datetime(2025, 1, 31, 9, 0, tzinfo=UTC), dt.datetime(2025, 2, 28, 9, 0, tzinfo=UTC)),
        (dt.datetime(2024, 1, 31, 9, 0, tzinfo=UTC), dt.datetime(2024, 2, 29, 9, 0, tzinfo=UTC)),  # leap year
        (dt.datetime(2025, 3, 31, 9, 0, tzinfo=UTC), dt.datetime(2025, 4, 30, 9, 0, tzinfo=UTC)),
        (dt.datetime(2025, 12, 15, 9, 0, tzinfo=UTC), dt.datetime(2026, 1, 15, 9, 0, tzinfo=UTC)),  # year end
    ],
)
def test_final_report_month_is_clamped_to_the_months_end(
    pack: RulePack, notified: dt.datetime, due: dt.datetime
) -> None:
    aware = notified - dt.timedelta(hours=30)
    got = by_id(deadlines(pack, aware, notified_at=notified))
    assert got[FINAL].due == due
    assert add_months(notified, 1) == due


def test_timezone_is_kept(pack: RulePack) -> None:
    cet = dt.timezone(dt.timedelta(hours=1))
    aware = dt.datetime(2025, 1, 31, 23, 0, tzinfo=cet)
    got = by_id(deadlines(pack, aware, notified_at=aware))
    assert got[EARLY].due == dt.datetime(2025, 2, 1, 23, 0, tzinfo=cet)
    assert got[FINAL].due == dt.datetime(2025, 2, 28, 23, 0, tzinfo=cet)


def test_not_a_nis2_entity_drops_the_nis2_clocks(pack: RulePack) -> None:
    ds = deadlines(pack, AWARE, nis2_entity=False)
    assert [d.clock_id for d in ds] == [GDPR]
    assert all(d.instrument.startswith("GDPR") for d in ds)


def test_no_personal_data_drops_the_gdpr_clock(pack: RulePack) -> None:
    ds = deadlines(pack, AWARE, personal_data=False)
    assert [d.clock_id for d in ds] == [EARLY, NOTIFY, FINAL]
    assert all(d.instrument.startswith("NIS2") for d in ds)


def test_neither_leaves_no_clock(pack: RulePack) -> None:
    assert deadlines(pack, AWARE, nis2_entity=False, personal_data=False) == []


def test_naive_datetime_is_refused(pack: RulePack) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        deadlines(pack, dt.datetime(2025, 3, 10, 14, 30))


def test_each_deadline_points_at_its_id_line_in_the_pack(pack: RulePack) -> None:
    text = (default_rules_dir() / "nis2" / "nis2.yaml").read_text(encoding="utf-8").splitlines()
    ds = deadlines(pack, AWARE, notified_at=AWARE + dt.timedelta(hours=20))
    assert len(ds) == 4
    for d in ds:
        m = re.fullmatch(r"rules/nis2/nis2\.yaml:(\d+)", d.rule_location)
        assert m, d.rule_location
        line = text[int(m.group(1)) - 1]
        assert re.fullmatch(rf"\s*- id: {re.escape(d.clock_id)}\s*", line), (d.rule_location, line)


def test_hour_clocks_count_elapsed_hours_across_a_dst_change(pack: RulePack) -> None:
    import zoneinfo

    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    aware = dt.datetime(2025, 10, 25, 12, 0, tzinfo=berlin)  # clocks go back on 26 Oct 03:00
    got = by_id(deadlines(pack, aware))
    for cid, hours in ((EARLY, 24), (NOTIFY, 72), (GDPR, 72)):
        due = got[cid].due
        assert due is not None
        assert due.astimezone(UTC) - aware.astimezone(UTC) == dt.timedelta(hours=hours), cid
