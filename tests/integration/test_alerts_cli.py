"""`xborder alerts list|test|deliver` on a real store, a real webhook receiver and a jsonl file."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.cli.main import run
from tests.support.webhookd import WebhookReceiver

SECRET = "cli-secret"


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver(SECRET.encode())
    yield r
    r.close()


@pytest.fixture
def cfg(tmp_path: Path, hook: WebhookReceiver, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XB_HOOK_SECRET", SECRET)
    path = tmp_path / "xborder.yaml"
    path.write_text(
        f"""
store: {{url: "sqlite:///{tmp_path / 'x.db'}"}}
systems:
  - {{name: checkout, sources: [10.20.1.0/24], data_categories: [customer-personal]}}
alerts:
  jsonl: alerts.jsonl
  stderr: false
  channels:
    - {{name: soc-hook, type: webhook, url: "{hook.url}", secret_env: XB_HOOK_SECRET, timeout_s: 2}}
""",
        encoding="utf-8",
    )
    log = tmp_path / "access.log"
    now = time.time()
    log.write_text("".join(
        f"{now:.3f}    120 10.20.1.5 TCP_TUNNEL/200 5000 CONNECT 8.8.0.{i}:443 - HIER_DIRECT/8.8.0.{i} -\n"
        for i in (1, 2, 3)
    ))  # fmt: skip
    return path


def test_list_shows_each_channel_state_and_deliver_catches_up(
    cfg: Path, hook: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    hook.down()
    assert run(["--config", str(cfg), "ingest", "squid", str(cfg.parent / "access.log")]) == 0
    capsys.readouterr()
    assert run(["--config", str(cfg), "alerts", "list", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3
    for r in rows:
        assert "jsonl: sent (1 attempt)" in r["deliveries"] and "soc-hook: pending" in r["deliveries"]
    assert any("Connection refused" in r["deliveries"] for r in rows)  # the probe's error is shown
    assert run(["--config", str(cfg), "alerts", "deliver"]) == 1  # still down: findings
    hook.up()
    assert run(["--config", str(cfg), "alerts", "deliver"]) == 0
    assert "delivered 3" in capsys.readouterr().out
    assert run(["--config", str(cfg), "alerts", "list", "--pending", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert sorted(e["body"]["dest_ip"] for e in hook.received) == ["8.8.0.1", "8.8.0.2", "8.8.0.3"]
    assert len((cfg.parent / "alerts.jsonl").read_text().splitlines()) == 3  # the file got each once


def test_alerts_test_sends_now_and_says_when_it_cannot(
    cfg: Path, hook: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--config", str(cfg), "alerts", "test", "soc-hook"]) == 0
    (got,) = hook.received
    assert got["signature_ok"] and got["body"]["kind"] == "test" and got["key"] in capsys.readouterr().out
    hook.down()
    assert run(["--config", str(cfg), "alerts", "test", "soc-hook"]) == 1
    assert "FAILED" in capsys.readouterr().err
    assert run(["--config", str(cfg), "alerts", "test", "nope"]) == 2
    assert "soc-hook" in capsys.readouterr().err  # names the channels there are


def test_an_alert_says_what_who_where_how_much_and_what_next(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = cfg.parent / "access.log"
    now = time.time()
    with log.open("a") as fh:  # a second client of the same system, and a user, to the same address
        fh.write(f"{now:.3f}     80 10.20.1.9 TCP_TUNNEL/200 700 CONNECT 8.8.0.1:443 bob HIER_DIRECT/8.8.0.1 -\n")
    assert run(["--config", str(cfg), "ingest", "squid", str(log)]) == 0
    alerts = {a["dest_ip"]: a for a in map(json.loads, (cfg.parent / "alerts.jsonl").read_text().splitlines())}
    a = alerts["8.8.0.1"]
    assert (a["outcome"], a["article"], a["system"], a["severity"]) == ("unauthorized", "44", "checkout", "high")
    assert a["source_ips"] == ["10.20.1.5", "10.20.1.9"] and a["source_users"] == ["bob"] and a["source_count"] == 2
    assert a["country"] == "US" and a["registered_country"] == "US"
    assert (a["requests"], a["bytes_in"]) == (2, 5700)
    assert a["explain"].startswith("xborder explain --system checkout --dest 8.8.0.1 --date ")
    assert a["evidence_batch"] == 1 and a["idempotency_key"].startswith(f"xborder-{a['id']}-")
    day = a["explain"].rsplit(" ", 1)[1]
    assert run(["--config", str(cfg), "explain", "--system", "checkout", "--dest", "8.8.0.1", "--date", day]) in (0, 1)
    assert "44" in capsys.readouterr().out  # the command it names works and tells why
