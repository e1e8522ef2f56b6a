"""Outage: the webhook receiver is down for two minutes while 1,000 distinct unauthorized transfers arrive and
`xborder run` is killed (SIGKILL) and restarted once; afterwards every alert has arrived, repeats with the same key."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from monitor.store.models import AlertDelivery, AlertOutbox
from monitor.store.session import open_store
from tests.support.webhookd import WebhookReceiver

SECRET = "outage-test-secret"
TRANSFERS = 1000
WRITE_SECONDS = 60.0  # the transfers arrive over the first minute of the outage
OUTAGE_SECONDS = 120.0
KILL_AT = 30.0


def config(tmp: Path, url: str) -> Path:
    cfg = tmp / "xborder.yaml"
    cfg.write_text(
        f"""
organisation: {{name: Test GmbH, country: DE}}
store: {{url: "sqlite:///xborder.db"}}
systems:
  - name: checkout
    sources: [10.20.1.0/24]
    data_categories: [customer-personal]
    criticality: critical
sources:
  - collector: squid
    paths: [{tmp / "access.log"}]
run: {{poll_seconds: 0.2}}
alerts:
  jsonl: null
  stderr: false
  channels:
    - {{name: soc-hook, type: webhook, url: "{url}", secret_env: XB_HOOK_SECRET, timeout_s: 2}}
  retry: {{initial_s: 1, max_s: 8, jitter: 0.2}}
""",
        encoding="utf-8",
    )
    return cfg


def line(i: int) -> str:
    # one destination address per transfer (8.8.0.0/16 is registered in the US): 1,000 distinct alerts
    ip = f"8.8.{i // 250}.{i % 250 + 1}"
    return f"{time.time():.3f}    120 10.20.1.5 TCP_TUNNEL/200 5000 CONNECT {ip}:443 - HIER_DIRECT/{ip} -\n"


def start(cfg: Path, tmp: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, XB_HOOK_SECRET=SECRET)
    with (tmp / "run.log").open("ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "monitor", "--config", str(cfg), "run"],
                                cwd=tmp, env=env, stdout=log, stderr=log)  # fmt: skip


@pytest.mark.slow
def test_every_alert_arrives_after_a_two_minute_outage_and_a_kill(tmp_path: Path) -> None:
    hook = WebhookReceiver(SECRET.encode())
    hook.down()  # the outage starts before the first transfer
    cfg = config(tmp_path, hook.url)
    (tmp_path / "access.log").write_text("")
    t0 = time.monotonic()

    def write() -> None:
        with (tmp_path / "access.log").open("a") as fh:
            for i in range(TRANSFERS):
                fh.write(line(i))
                fh.flush()
                time.sleep(max(0.0, t0 + (i + 1) * WRITE_SECONDS / TRANSFERS - time.monotonic()))

    writer = threading.Thread(target=write)
    proc = start(cfg, tmp_path)
    writer.start()
    try:
        time.sleep(max(0.0, t0 + KILL_AT - time.monotonic()))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc = start(cfg, tmp_path)
        writer.join()
        time.sleep(max(0.0, t0 + OUTAGE_SECONDS - time.monotonic()))
        assert hook.received == []
        hook.up()
        deadline = time.monotonic() + 90
        while len(set(hook.keys())) < TRANSFERS and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)  # anything still in flight
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        hook.close()

    keys = hook.keys()
    assert len(set(keys)) == TRANSFERS, (len(set(keys)), (tmp_path / "run.log").read_text()[-2000:])
    assert all(e["signature_ok"] for e in hook.received)
    bodies: dict[str, str] = {}
    for e in hook.received:  # a repeat is the same alert under the same key
        body = json.dumps(e["body"], sort_keys=True)
        assert bodies.setdefault(str(e["key"]), body) == body
    assert len({json.loads(b)["dest_ip"] for b in bodies.values()}) == TRANSFERS
    store = open_store(f"sqlite:///{tmp_path / 'xborder.db'}")
    with store() as s:
        assert s.scalar(select(func.count()).select_from(AlertOutbox)) == TRANSFERS
        sent = select(func.count()).select_from(AlertDelivery).where(AlertDelivery.state == "sent")
        assert s.scalar(sent) == TRANSFERS
        assert s.scalar(select(func.max(AlertDelivery.attempts))) >= 2  # the outage was felt
    store.kw["bind"].dispose()
