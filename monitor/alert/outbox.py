"""Alert stage: queues each new outbox alert for every channel whose route accepts it, then sends what is due.

At-least-once: a delivery is marked sent in its own transaction after the channel accepted it,
so a crash between the two sends it again, with the same idempotency key. A channel that fails
is retried with exponential backoff and jitter, across restarts (the schedule is in the store);
while it is down one due delivery per pass probes it, and once one goes through, the rest of
that channel's queue is sent at once instead of waiting out each backoff.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from monitor.alert.base import Alerter, AlertMessage, DeliveryError
from monitor.alert.channels import SEVERITIES, RetrySettings, Route
from monitor.alert.incidents import IncidentPolicy, open_incidents, remind
from monitor.store.models import AlertAttempt, AlertChannel, AlertDelivery, AlertOutbox

log = logging.getLogger("xborder.alert")
QUEUE_BATCH = 1000  # alerts queued per channel per pass


@dataclass
class Channels:
    """The configured channels, built: name -> alerter and name -> route, and the retry policy."""

    alerters: dict[str, Alerter]
    routes: dict[str, Route]
    retry: RetrySettings = field(default_factory=RetrySettings)
    incidents: IncidentPolicy | None = None  # None: no incidents opened (tests of delivery alone)
    limits: dict[str, int] = field(default_factory=dict)  # channel -> alerts per minute (max_per_minute)

    def close(self) -> None:
        for a in self.alerters.values():
            a.close()


@dataclass
class DeliveryReport:
    queued: int = 0
    delivered: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    summaries: list[str] = field(default_factory=list)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)  # SQLite gives naive datetimes back


def message(row: AlertOutbox) -> AlertMessage:
    created = _aware(row.created_at)
    # the evidence behind the alert: its batch, a link of the hash chain (`xborder evidence verify`)
    payload = {**row.payload, "evidence_batch": row.batch_seq}
    return AlertMessage(row.id, row.dedup_key, created.isoformat(), row.severity, row.summary, payload)


def register_channels(factory: sessionmaker[Session], names: list[str]) -> None:
    """Give each channel not seen before its starting point: the alerts created from now on.

    Alerts still undelivered from before (a store from before per-channel delivery) are
    included, so upgrading loses none. Call before any alert of this process is committed.
    """
    with factory() as s:
        known = set(s.scalars(select(AlertChannel.name)))
        new = [n for n in names if n not in known]
        if not new:
            return
        oldest_pending = s.scalar(select(func.min(AlertOutbox.id)).where(AlertOutbox.delivered_at.is_(None)))
        top = s.scalar(select(func.max(AlertOutbox.id))) or 0
        cursor = top if oldest_pending is None else oldest_pending - 1
        for n in new:
            s.add(AlertChannel(name=n, cursor=cursor, first_seen=_now()))
        s.commit()


def backoff(attempts: int, retry: RetrySettings, rng: random.Random) -> float:
    """Seconds until the next try after `attempts` failed ones."""
    base = min(retry.max_s, retry.initial_s * 2.0 ** max(0, attempts - 1))
    return float(base * (1 + rng.uniform(-retry.jitter, retry.jitter)))


def _route_fields(row: AlertOutbox) -> tuple[str, str | None, str | None]:
    p: dict[str, Any] = row.payload or {}
    kind = str(p.get("kind", ""))
    outcome = p.get("outcome") or ("unauthorized" if kind == "unauthorized_transfer" else kind or None)
    return row.severity, p.get("system"), outcome


def _summarise(s: Session, now: dt.datetime) -> None:
    """For each alert whose suppression window has ended with repeats counted: one summary alert,
    delivered like any other (its dedup key is its own, so it is never suppressed)."""
    done = s.scalars(
        select(AlertOutbox)
        .where(AlertOutbox.window_end <= now, AlertOutbox.repeats > 0, AlertOutbox.summarised_at.is_(None))
        .order_by(AlertOutbox.id)
    ).all()
    for a in done:
        opened = _aware(a.created_at).isoformat(timespec="seconds")
        last = _aware(a.last_repeat_at or a.created_at).isoformat(timespec="seconds")
        s.add(
            AlertOutbox(
                dedup_key=f"{a.dedup_key}|summary|{a.id}",
                batch_seq=a.batch_seq,
                created_at=now,
                severity=a.severity,
                summary=f"{a.repeats} repeat(s) of alert #{a.id} from {opened} to {last}: {a.summary}",
                payload={
                    **{k: v for k, v in (a.payload or {}).items() if k in _SUMMARY_KEEP},
                    "kind": "repeat_summary",
                    "of_alert": a.id,
                    "repeats": a.repeats,
                    "repeat_requests": a.repeat_requests,
                    "window_start": opened,
                    "last_repeat": last,
                },
                attempts=0,
                window_end=now,
                repeats=0,
                repeat_requests=0,
            )
        )
        a.summarised_at = now
    if done:
        s.commit()


_SUMMARY_KEEP = ("system", "outcome", "article", "dest_host", "dest_ip", "country", "provider", "rule_id", "severity")


def _queue(s: Session, channels: Channels, now: dt.datetime) -> int:
    """Deliveries for the alerts past each channel's cursor that its route accepts."""
    queued = 0
    for ch in s.scalars(select(AlertChannel).where(AlertChannel.name.in_(list(channels.alerters)))):  # not ~incidents
        rows = s.scalars(
            select(AlertOutbox).where(AlertOutbox.id > ch.cursor).order_by(AlertOutbox.id).limit(QUEUE_BATCH)
        ).all()
        route = channels.routes.get(ch.name, Route())
        for row in rows:
            if (row.payload or {}).get("kind") == "rate_summary":
                continue  # for its own channel only, queued when it was made
            if route.accepts(*_route_fields(row)):
                s.add(AlertDelivery(alert_id=row.id, channel=ch.name, state="pending", attempts=0, next_attempt_at=now))
                queued += 1
        if rows:
            ch.cursor = rows[-1].id
    s.commit()
    return queued


def deliver_pending(
    factory: sessionmaker[Session],
    channels: Channels,
    *,
    now: dt.datetime | None = None,
    limit: int = 1000,
    rng: random.Random | None = None,
) -> DeliveryReport:
    """One pass: queue new alerts, then send every due delivery (oldest alert first)."""
    rep = DeliveryReport()
    rng = rng or random.Random()
    now = now or _now()
    t0 = time.monotonic()

    def clock() -> dt.datetime:  # the pass's time, running on (a given `now` makes tests exact)
        return now + dt.timedelta(seconds=time.monotonic() - t0)

    with factory() as s:
        if channels.incidents is not None:
            open_incidents(s, channels.incidents, now)
            remind(s, channels.incidents, now)
        _summarise(s, now)
        rep.queued = _queue(s, channels, now)
        due = s.scalars(
            select(AlertDelivery)
            .where(AlertDelivery.state == "pending", AlertDelivery.next_attempt_at <= now)
            .where(AlertDelivery.channel.in_(list(channels.alerters)))
            .order_by(AlertDelivery.alert_id, AlertDelivery.id)
            .limit(limit)
        ).all()
        down: set[str] = set()
        up: set[str] = set()
        gate = _RateGate(s, channels.limits, now)
        for d in due:
            if d.channel in down:
                continue  # one failure per pass is enough to know it is down
            if not gate.admit(s, d):
                continue  # folded into the channel's rate-limit summary
            (up if _attempt(s, d, channels, rep, rng, clock) else down).add(d.channel)
        gate.summarise(s, now)
        # a channel that took a delivery is back: send what waited out a backoff now
        for name in sorted(up - down):
            waiting = s.scalars(
                select(AlertDelivery)
                .where(AlertDelivery.state == "pending", AlertDelivery.channel == name)
                .where(AlertDelivery.next_attempt_at > now)
                .order_by(AlertDelivery.alert_id)
                .limit(limit)
            ).all()
            for d in waiting:
                if not gate.admit(s, d):
                    continue
                if not _attempt(s, d, channels, rep, rng, clock):
                    break
        gate.summarise(s, now)
        _mark_done(s)
    return rep


class _RateGate:
    """A channel's max_per_minute: past it, deliveries are folded (state "folded") into one summary
    alert for that channel. Critical alerts and summaries themselves always pass: a higher
    severity is never held back, and a summary is how a storm is still heard."""

    def __init__(self, s: Session, limits: dict[str, int], now: dt.datetime) -> None:
        self.limits, self.now = limits, now
        self.sent: dict[str, int] = {}
        self.folded: dict[str, list[AlertOutbox]] = {}
        since = now - dt.timedelta(minutes=1)
        for name in limits:
            q = select(func.count()).select_from(AlertDelivery).where(
                AlertDelivery.channel == name, AlertDelivery.state == "sent", AlertDelivery.sent_at > since)
            self.sent[name] = int(s.scalar(q) or 0)  # fmt: skip

    def admit(self, s: Session, d: AlertDelivery) -> bool:
        cap = self.limits.get(d.channel)
        if cap is None:
            return True
        row = s.get(AlertOutbox, d.alert_id)
        assert row is not None
        exempt = row.severity == "critical" or (row.payload or {}).get("kind") == "rate_summary"
        if not exempt and self.sent[d.channel] >= cap:
            d.state, d.last_error = "folded", f"rate limit {cap}/min: in a summary"
            self.folded.setdefault(d.channel, []).append(row)
            return False
        self.sent[d.channel] += 1
        return True

    def summarise(self, s: Session, now: dt.datetime) -> None:
        for name, rows in self.folded.items():
            keys = sorted({r.dedup_key for r in rows})
            worst = max((r.severity for r in rows), key=lambda v: SEVERITIES.index(v) if v in SEVERITIES else 0)
            summary = AlertOutbox(
                dedup_key=f"rate|{name}|{rows[0].id}-{rows[-1].id}", batch_seq=rows[-1].batch_seq, created_at=now,
                severity=worst, summary=f"{len(rows)} alert(s) held back on {name} by its rate limit: "
                + ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else ""),
                payload={"kind": "rate_summary", "outcome": "summary", "channel": name, "alerts": [r.id for r in rows],
                         "dedup_keys": keys},
                attempts=0, window_end=now, repeats=0, repeat_requests=0,
            )  # fmt: skip
            s.add(summary)
            s.flush()
            # for this channel only: the others got the alerts themselves
            s.add(AlertDelivery(alert_id=summary.id, channel=name, state="pending", attempts=0, next_attempt_at=now))
        if self.folded:
            s.commit()
            self.folded = {}


def _attempt(
    s: Session,
    d: AlertDelivery,
    channels: Channels,
    rep: DeliveryReport,
    rng: random.Random,
    clock: Callable[[], dt.datetime],
) -> bool:
    row = s.get(AlertOutbox, d.alert_id)
    assert row is not None  # a foreign key
    msg = message(row)
    started, t0 = clock(), time.perf_counter()
    error: str | None = None
    try:
        channels.alerters[d.channel].send(msg)
    except DeliveryError as exc:
        error = str(exc)
    seconds = time.perf_counter() - t0
    d.attempts += 1
    d.last_attempt_at = started
    row.attempts += 1
    if error is None:
        d.state, d.sent_at, d.last_error = "sent", clock(), None
        rep.delivered += 1
        rep.summaries.append(msg.summary)
    else:
        d.last_error = row.last_error = error
        d.next_attempt_at = started + dt.timedelta(seconds=backoff(d.attempts, channels.retry, rng))
        rep.failed += 1
        rep.errors.append(f"alert {row.id} → {d.channel}: {error}")
        log.warning("alert %d to %s failed (attempt %d, next at %s): %s", row.id, d.channel, d.attempts,
                    d.next_attempt_at.isoformat(timespec="seconds"), error)  # fmt: skip
    s.add(AlertAttempt(delivery_id=d.id, at=started, ok=error is None, error=error, seconds=seconds))
    s.commit()  # each delivery on its own: a crash after this re-sends nothing already marked
    return error is None


def _mark_done(s: Session) -> None:
    """An alert is delivered once none of its deliveries is pending."""
    pending = select(AlertDelivery.alert_id).where(AlertDelivery.state == "pending")
    has_any = select(AlertDelivery.alert_id)
    s.execute(
        update(AlertOutbox)
        .where(AlertOutbox.delivered_at.is_(None), AlertOutbox.id.in_(has_any), AlertOutbox.id.not_in(pending))
        .values(delivered_at=_now())
    )
    s.commit()


class DeliveryThread:
    """Delivers in the background: woken after each commit, and every `interval` seconds for retries.

    A channel that hangs until its timeout then delays alerts, never ingest.
    """

    def __init__(self, factory: sessionmaker[Session], channels: Channels, interval: float = 1.0) -> None:
        self.factory, self.channels, self.interval = factory, channels, interval
        self.totals = DeliveryReport()
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._loop, name="xborder-deliver", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                rep = deliver_pending(self.factory, self.channels)
            except Exception:  # noqa: BLE001 - a store hiccup must not end delivery; logged, retried next round
                log.exception("alert delivery pass failed")
                continue
            self.totals.delivered += rep.delivered
            self.totals.failed += rep.failed

    def stop(self, *, flush: bool = True) -> None:
        """Stop the thread; with `flush`, one last pass first so alerts just committed go out."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=60)
        if flush:
            rep = deliver_pending(self.factory, self.channels)
            self.totals.delivered += rep.delivered
            self.totals.failed += rep.failed
