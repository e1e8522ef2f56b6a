"""The demo path as a user sees it: the PDF's numbers agree with `xborder transfers`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pypdf import PdfReader

from monitor.cli.main import run
from monitor.demo import write_demo_inputs


def test_report_numbers_agree_with_transfers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = write_demo_inputs(tmp_path / "d", lines=20_000)
    cfg = str(inputs.config_path)
    assert run(["-c", cfg, "ingest", "squid", str(inputs.log_path)]) == 0
    capsys.readouterr()
    assert run(["-c", cfg, "transfers", "--week", inputs.week, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_outcome: dict[str, int] = {}
    for r in rows:
        by_outcome[r["outcome"]] = by_outcome.get(r["outcome"], 0) + r["requests"]
    unauthorized_hosts = {r["dest_host"] for r in rows if r["outcome"] == "unauthorized"}
    assert unauthorized_hosts >= {"api.deepseek.com", "api.anthropic.com", "api.fraudsignal.example"}

    pdf = tmp_path / "w.pdf"
    assert run(["-c", cfg, "report", "weekly", "--week", inputs.week, "-o", str(pdf)]) == 0
    text = " ".join((p.extract_text() or "") for p in PdfReader(pdf).pages)
    flat = " ".join(text.split())
    total = sum(by_outcome.values())
    assert f"{total:,}" in flat  # total requests
    assert f"{by_outcome['unauthorized']:,} requests to {len(unauthorized_hosts)} destinations" in flat
    for host in unauthorized_hosts:
        assert host in flat.replace(" ", "") or host in flat
    assert "PASSED" in flat

    # the ingest section counts the batches whose data lies in the week, whenever ingested
    import datetime as dt

    from monitor.report.data import weekly_report_data
    from monitor.settings import load_config
    from monitor.store.session import read_session

    with read_session(load_config(cfg).store_url) as s:
        data = weekly_report_data(s, inputs.week, organisation="x", generated_at=dt.datetime.now(dt.UTC))
        next_week = weekly_report_data(s, "2026-W49", organisation="x", generated_at=dt.datetime.now(dt.UTC))
    assert data.quarantine.lines_read == inputs.lines_written
    assert data.quarantine.count == inputs.garbage_lines > 0
    assert next_week.quarantine.lines_read == 0 and next_week.totals.requests == 0
    assert f"Quarantined lines {inputs.garbage_lines}" in flat


@pytest.mark.slow
def test_xborder_demo_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert run(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "evidence chain: PASSED" in printed.out
    assert "ALERT #" in printed.err
    pdf = next((out / "reports").glob("xborder-weekly-*.pdf"))
    assert pdf.read_bytes().startswith(b"%PDF")
    alerts = (out / "alerts.jsonl").read_text().splitlines()
    assert alerts and all(json.loads(a)["kind"] == "unauthorized_transfer" for a in alerts)
