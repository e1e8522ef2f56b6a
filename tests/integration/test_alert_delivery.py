"""Alert delivery through the outbox: per-channel state, backoff across restarts, probing, recovery, routes, crashes."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.alert.base import Alerter, AlertMessage, DeliveryError
from monitor.alert.channels import RetrySettings, Route, WebhookChannel
from monitor.alert.jsonl import JsonlAlerter
from monitor.alert.outbox import Channels, backoff, deliver_pending, register_channels
from monitor.alert.webhook import WebhookAlerter
from monitor.store.models import AlertAttempt, AlertDelivery, AlertOutbox
from tests.support.alerts import alert, commit_alerts, message
from tests.support.webhookd import WebhookReceiver

SECRET = b"s3cret-for-tests"
NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver(SECRET)
    yield r
    r.close()


def webhook(r: WebhookReceiver, secret: bytes | None = SECRET, timeout: float = 2.0) -> WebhookAlerter:
    return WebhookAlerter(WebhookChannel(name="soc-hook", type="webhook", url=r.url, timeout_s=timeout), secret)


def channels(*pairs: tuple[str, Alerter], routes: dict[str, Route] | None = None) -> Channels:
    return Channels(dict(pairs), routes or {}, RetrySettings(initial_s=10, max_s=600, jitter=0.2))


def deliveries(store: sessionmaker[Session], channel: str) -> list[AlertDelivery]:
    with store() as s:
        return list(s.scalars(select(AlertDelivery).where(AlertDelivery.channel == channel).order_by(AlertDelivery.id)))


def test_webhook_is_signed_and_carries_the_idempotency_key(hook: WebhookReceiver) -> None:
    msg = message(7)
    webhook(hook).send(msg)
    (got,) = hook.received
    assert got["signature_ok"] and got["key"] == msg.idempotency_key
    assert got["body"]["idempotency_key"] == msg.idempotency_key and got["body"]["dest_host"] == "api7.example"
    # the receiver's check is real: a sender with another secret fails it
    webhook(hook, secret=b"wrong").send(message(8))
    assert hook.received[1]["signature_ok"] is False


def test_webhook_errors_are_delivery_errors(hook: WebhookReceiver) -> None:
    hook.status = 503
    with pytest.raises(DeliveryError, match="HTTP 503"):
        webhook(hook).send(message())
    hook.status, hook.delay_s = 200, 1.5
    with pytest.raises(DeliveryError, match="soc-hook"):
        webhook(hook, timeout=0.3).send(message())
    hook.down()
    with pytest.raises(DeliveryError, match="refused"):
        webhook(hook).send(message())


def test_state_is_per_channel_and_a_down_channel_is_retried_later(
    store: sessionmaker[Session], hook: WebhookReceiver, tmp_path: Path
) -> None:
    chans = channels(("file", JsonlAlerter(tmp_path / "a.jsonl")), ("soc-hook", webhook(hook)))
    register_channels(store, list(chans.alerters))
    commit_alerts(store, [alert(f"k{i}") for i in range(5)])
    hook.down()
    rep = deliver_pending(store, chans, now=NOW, rng=random.Random(1))
    assert rep.queued == 10 and rep.delivered == 5 and rep.failed == 1  # the hook is probed once, not 5 times
    assert [d.state for d in deliveries(store, "file")] == ["sent"] * 5
    pending = deliveries(store, "soc-hook")
    assert [d.attempts for d in pending] == [1, 0, 0, 0, 0] and {d.state for d in pending} == {"pending"}
    first_retry = pending[0].next_attempt_at.replace(tzinfo=dt.UTC)
    assert NOW + dt.timedelta(seconds=8) <= first_retry <= NOW + dt.timedelta(seconds=12)
    with store() as s:
        assert s.scalar(select(func.count()).select_from(AlertOutbox).where(AlertOutbox.delivered_at.is_(None))) == 5

    # a later pass (as after a restart: new channels, new factory) probes with the next due one
    rep = deliver_pending(store, chans, now=NOW + dt.timedelta(seconds=1))
    assert (rep.delivered, rep.failed) == (0, 1)
    # the receiver is back: one pass sends all five, the backed-off ones too, each once
    hook.up()
    rep = deliver_pending(store, chans, now=NOW + dt.timedelta(seconds=2))
    assert rep.delivered == 5
    assert len(hook.keys()) == 5 == len(set(hook.keys())) and all(e["signature_ok"] for e in hook.received)
    assert {d.state for d in deliveries(store, "soc-hook")} == {"sent"}
    with store() as s:
        assert s.scalar(select(func.count()).select_from(AlertOutbox).where(AlertOutbox.delivered_at.is_(None))) == 0
        assert s.scalar(select(func.count()).select_from(AlertAttempt).where(AlertAttempt.ok.is_(False))) == 2


def test_backoff_doubles_to_its_cap_with_jitter() -> None:
    retry = RetrySettings(initial_s=5, max_s=600, jitter=0.2)
    rng = random.Random(3)
    waits = [backoff(n, retry, rng) for n in range(1, 12)]
    for n, w in enumerate(waits, start=1):
        base = min(600, 5 * 2 ** (n - 1))
        assert 0.8 * base <= w <= 1.2 * base
    assert len({round(w, 6) for w in waits}) == len(waits)  # jittered: no two alike


def test_routes_pick_alerts_by_severity_system_and_outcome(store: sessionmaker[Session], tmp_path: Path) -> None:
    route = Route(min_severity="high", systems=["checkout"], outcomes=["unauthorized"])
    chans = channels(("file", JsonlAlerter(tmp_path / "a.jsonl")), routes={"file": route})
    register_channels(store, ["file"])
    commit_alerts(
        store,
        [
            alert("ok", "critical"),
            alert("low", "medium"),
            alert("other-system", "high", system="search"),
            alert("lockout", "high", kind="lockout"),
        ],
    )
    deliver_pending(store, chans, now=NOW)
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    assert len(lines) == 1 and '"dedup_key": "ok"' in lines[0]


def test_a_channel_added_later_gets_new_alerts_only(store: sessionmaker[Session], tmp_path: Path) -> None:
    old = channels(("file", JsonlAlerter(tmp_path / "a.jsonl")))
    register_channels(store, ["file"])
    commit_alerts(store, [alert("before")])
    deliver_pending(store, old, now=NOW)
    register_channels(store, ["file", "later"])
    commit_alerts(store, [alert("after")])
    both = channels(("file", JsonlAlerter(tmp_path / "a.jsonl")), ("later", JsonlAlerter(tmp_path / "b.jsonl")))
    deliver_pending(store, both, now=NOW)
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 2
    (only,) = (tmp_path / "b.jsonl").read_text().splitlines()
    assert '"dedup_key": "after"' in only


def test_undelivered_alerts_from_before_per_channel_delivery_are_not_lost(
    store: sessionmaker[Session], tmp_path: Path
) -> None:
    commit_alerts(store, [alert("old-pending")])  # no channel registered yet: as in a store from 0004
    register_channels(store, ["file"])
    deliver_pending(store, channels(("file", JsonlAlerter(tmp_path / "a.jsonl"))), now=NOW)
    assert "old-pending" in (tmp_path / "a.jsonl").read_text()


class CrashAfterSend(Alerter):
    """Sends for real, then dies before the deliverer can record it (a kill between send and commit)."""

    name = "crash"

    def __init__(self, inner: Alerter) -> None:
        self.inner, self.armed = inner, True

    def send(self, alert: AlertMessage) -> None:
        self.inner.send(alert)
        if self.armed:
            self.armed = False
            raise SystemExit("killed")


def test_a_crash_between_send_and_record_resends_with_the_same_key(
    store: sessionmaker[Session], hook: WebhookReceiver
) -> None:
    crashing = CrashAfterSend(webhook(hook))
    register_channels(store, ["soc-hook"])
    commit_alerts(store, [alert("once")])
    with pytest.raises(SystemExit):
        deliver_pending(store, channels(("soc-hook", crashing)), now=NOW)
    rep = deliver_pending(store, channels(("soc-hook", webhook(hook))), now=NOW)
    assert rep.delivered == 1
    keys = hook.keys()
    assert len(keys) == 2 and keys[0] == keys[1]  # at least once; the repeat is recognisable
