"""CLI: `xborder alerts deliver|list|test` — the outbox and each alert's delivery state per channel."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click
from sqlalchemy import select

from monitor.cli.context import EXIT_FINDINGS, EXIT_OK, Ctx, pass_ctx
from monitor.cli.output import emit, format_option
from monitor.errors import UsageError
from monitor.store.session import open_store, read_session


@click.group()
def alerts() -> None:
    """The alert outbox and its deliveries."""


@alerts.command("deliver", epilog="Example: xborder alerts deliver")
@pass_ctx
def alerts_deliver(ctx: Ctx) -> int:
    """Send every delivery that is due (new alerts, and retries whose backoff has passed)."""
    from monitor.alert.build import make_channels
    from monitor.alert.outbox import deliver_pending, register_channels

    cfg = ctx.config()
    factory = open_store(cfg.store_url)
    channels = make_channels(cfg)
    try:
        register_channels(factory, list(channels.alerters))
        rep = deliver_pending(factory, channels)
    finally:
        channels.close()
        factory.kw["bind"].dispose()
    click.echo(f"queued {rep.queued}, delivered {rep.delivered}, failed {rep.failed}")
    for e in rep.errors:
        click.echo(f"  {e}", err=True)
    return EXIT_OK if rep.failed == 0 else EXIT_FINDINGS


@alerts.command("list", epilog="Example: xborder alerts list --pending")
@click.option("--pending", is_flag=True, help="Only alerts with a delivery still pending.")
@click.option("--limit", type=int, default=50, show_default=True)
@format_option
@pass_ctx
def alerts_list(ctx: Ctx, pending: bool, limit: int, fmt: str) -> int:
    """Alerts, newest first, with each channel's state: sent, or pending (attempts, next try, last error)."""
    from monitor.store.models import AlertDelivery, AlertOutbox

    with read_session(ctx.config().store_url) as s:
        q = select(AlertOutbox).order_by(AlertOutbox.id.desc()).limit(limit)
        if pending:
            q = q.where(AlertOutbox.id.in_(select(AlertDelivery.alert_id).where(AlertDelivery.state == "pending")))
        alerts_ = s.scalars(q).all()
        ids = [a.id for a in alerts_]
        by_alert: dict[int, list[AlertDelivery]] = {}
        q_deliveries = select(AlertDelivery).where(AlertDelivery.alert_id.in_(ids)).order_by(AlertDelivery.channel)
        for d in s.scalars(q_deliveries):
            by_alert.setdefault(d.alert_id, []).append(d)
    rows = [_row(a, by_alert.get(a.id, [])) for a in alerts_]
    emit(rows, fmt, ["id", "created", "severity", "summary", "deliveries"], title="alerts")
    return EXIT_OK


def _row(a: Any, deliveries: list[Any]) -> dict[str, Any]:
    from monitor.alert.outbox import message

    def state(d: Any) -> str:
        if d.state == "sent":
            return f"{d.channel}: sent ({d.attempts} attempt{'s' if d.attempts != 1 else ''})"
        if d.state == "folded":
            return f"{d.channel}: in a rate-limit summary"
        nxt = _iso(d.next_attempt_at)
        err = f", last error: {d.last_error}" if d.last_error else ""
        return f"{d.channel}: pending ({d.attempts} attempts, next {nxt}{err})"

    return {
        "id": a.id,
        "created": _iso(a.created_at),
        "severity": a.severity,
        "summary": a.summary,
        "idempotency_key": message(a).idempotency_key,
        "deliveries": "; ".join(state(d) for d in deliveries) or "not queued (no channel takes it)",
    }


def _iso(t: dt.datetime | None) -> str:
    if t is None:
        return "-"
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).isoformat(timespec="seconds")


@alerts.command("test", epilog="Example: xborder alerts test soc-syslog")
@click.argument("channel")
@pass_ctx
def alerts_test(ctx: Ctx, channel: str) -> int:
    """Send a test alert to CHANNEL now (not through the outbox); exit 1 if it does not go through."""
    from monitor.alert.base import AlertMessage, DeliveryError
    from monitor.alert.build import make_channels

    cfg = ctx.config()
    channels = make_channels(cfg)
    try:
        alerter = channels.alerters.get(channel)
        if alerter is None:
            raise UsageError(f"no alert channel '{channel}'; configured: {', '.join(sorted(channels.alerters))}")
        now = dt.datetime.now(dt.UTC)
        msg = AlertMessage(
            id=0,
            dedup_key=f"test|{channel}|{now.isoformat()}",
            created_at=now.isoformat(),
            severity="info",
            summary=f"xborder test alert to channel {channel}: delivery works",
            payload={
                "kind": "test",
                "outcome": "test",
                "channel": channel,
                "runbook_url": cfg.settings.alerts.runbook_url,
            },
        )
        try:
            alerter.send(msg)
        except DeliveryError as exc:
            click.echo(f"FAILED: {exc}", err=True)
            return EXIT_FINDINGS
    finally:
        channels.close()
    click.echo(f"sent a test alert to {channel} (idempotency key {msg.idempotency_key})")
    return EXIT_OK
