"""Provider lockouts: 403/451, 429, 5xx or timeouts from an AI provider on a critical system, and the failover."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from monitor.cli.main import run

CONFIG = """
organisation: {{name: Shop GmbH, country: DE, nis2: important}}
store: {{url: "sqlite:///{db}"}}
systems:
  - {{name: support-chat, sources: [10.20.2.0/24], data_categories: [customer-personal], criticality: critical}}
  - {{name: search, sources: [10.20.4.0/24], data_categories: [none], criticality: normal}}
alerts: {{jsonl: alerts.jsonl, stderr: false}}
vendors:
  - {{name: Mistral AI, domains: [mistral.ai], legal_entity: Mistral AI SAS, seat: FR}}
approved_suppliers:
  - {{vendor: Mistral AI, approved_on: 2026-01-15, approved_by: CISO}}
"""


def lines(src: str, url: str, status: int, n: int) -> str:
    now = time.time()
    row = "{:.3f}    300 {} TCP_MISS/{} 512 POST {} - HIER_DIRECT/- application/json\n"
    return "".join(row.format(now + i / 1000, src, status, url) for i in range(n))


def alerts(cfg: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in (cfg.parent / "alerts.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("failover_to,permitted", [("api.eu.mistral.ai", True), ("api.deepseek.com", False)])
def test_a_lockout_alerts_with_its_failover_and_opens_an_incident(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], failover_to: str, permitted: bool
) -> None:
    cfg = tmp_path / "xborder.yaml"
    cfg.write_text(CONFIG.format(db=tmp_path / "x.db"))
    log = tmp_path / "access.log"
    log.write_text(
        lines("10.20.2.7", "https://api.openai.com/v1/chat/completions", 403, 25)  # region block
        + lines("10.20.2.7", "https://api.openai.com/v1/chat/completions", 429, 10)
        + lines("10.20.2.7", "https://api.openai.com/v1/chat/completions", 200, 5)
        + lines("10.20.2.7", f"https://{failover_to}/v1/chat/completions", 200, 30)
        + lines("10.20.4.9", "https://api.anthropic.com/v1/messages", 503, 40)  # not a critical system
    )
    assert run(["--config", str(cfg), "ingest", "squid", str(log)]) == 0
    (lockout,) = [a for a in alerts(cfg) if a["kind"] == "lockout"]
    assert lockout["system"] == "support-chat" and lockout["provider"] == "OpenAI" and lockout["severity"] == "critical"
    assert (lockout["requests"], lockout["403/451"], lockout["429"], lockout["failed"]) == (40, 25, 10, 35)
    (f,) = lockout["failover"]  # type: ignore[misc]
    assert f["dest"] == failover_to and f["requests"] == 30
    assert lockout["failover_not_permitted"] is (not permitted)
    assert ("NON-APPROVED" in str(lockout["summary"])) is (not permitted)
    capsys.readouterr()
    assert run(["--config", str(cfg), "incidents", "list", "--format", "json"]) == 0
    kinds = {r["title"].split(":")[0]: r for r in json.loads(capsys.readouterr().out)}
    assert "LOCKOUT [critical]" in kinds
    assert kinds["LOCKOUT [critical]"]["next_deadline"].startswith("nis2_early_warning")  # NIS2: may be significant


def test_a_few_errors_are_not_a_lockout(tmp_path: Path) -> None:
    cfg = tmp_path / "xborder.yaml"
    cfg.write_text(CONFIG.format(db=tmp_path / "x.db"))
    log = tmp_path / "access.log"
    log.write_text(lines("10.20.2.7", "https://api.openai.com/v1/chat/completions", 429, 8)
                   + lines("10.20.2.7", "https://api.openai.com/v1/chat/completions", 200, 30))  # fmt: skip
    assert run(["--config", str(cfg), "ingest", "squid", str(log)]) == 0
    assert [a for a in alerts(cfg) if a["kind"] == "lockout"] == []


def test_a_lockout_spread_over_many_small_batches_is_still_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `xborder run` commits: batches of a few lines each, none reaching the threshold alone."""
    import monitor.pipeline

    monkeypatch.setattr(monitor.pipeline, "BATCH_BYTES", 1500)  # about 12 lines a batch
    cfg = tmp_path / "xborder.yaml"
    cfg.write_text(CONFIG.format(db=tmp_path / "x.db"))
    log = tmp_path / "access.log"
    log.write_text(lines("10.20.2.7", "https://api.openai.com/v1/chat/completions", 503, 40))
    assert run(["--config", str(cfg), "ingest", "squid", str(log)]) == 0
    (lockout,) = [a for a in alerts(cfg) if a["kind"] == "lockout"]  # one alert: the rest are repeats
    assert lockout["5xx"] >= 20 and lockout["requests"] >= 20
