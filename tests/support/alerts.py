"""Test helpers: alert outbox rows committed the way the pipeline commits them (one batch, with a checkpoint)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from monitor.alert.base import AlertMessage
from monitor.records import Checkpoint
from monitor.store.writer import BatchRecord, commit_batch, load_checkpoint

SOURCE = "test:/alerts"


def alert(
    key: str, severity: str = "high", system: str = "checkout", kind: str = "unauthorized_transfer"
) -> dict[str, Any]:
    payload = {"kind": kind, "system": system, "dest_host": f"{key}.example", "country": "US", "requests": 3}
    return {"dedup_key": key, "severity": severity, "summary": f"alert {key}", "payload": payload}


def commit_alerts(store: sessionmaker[Session], alerts: list[dict[str, Any]]) -> int:
    """Commit `alerts` in one batch; returns how many were new."""
    before = load_checkpoint(store, SOURCE)
    offset = (before.offset if before else 0) + 1
    cp = Checkpoint(SOURCE, "/alerts", 1, 1, offset, offset, "f" * 64, 0, ())
    rec = BatchRecord("test", SOURCE, 1, 0, 0, 0, [], [], cp, before, alerts=alerts)
    return commit_batch(store, rec).new_alerts


def message(n: int = 1, severity: str = "high") -> AlertMessage:
    return AlertMessage(
        id=n,
        dedup_key=f"unauthorized|checkout|api{n}.example|2026-12-03",
        created_at="2026-12-03T10:00:00+00:00",
        severity=severity,
        summary=f"UNAUTHORIZED transfer [{severity}]: checkout -> api{n}.example [US]",
        payload={"kind": "unauthorized_transfer", "system": "checkout", "dest_host": f"api{n}.example", "requests": 3},
    )
