"""CLI: `xborder demo` — a week of a fictional webshop's traffic through the whole path."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import click

from monitor.cli.context import EXIT_OK
from monitor.cli.output import emit


@click.command(epilog="Example: xborder demo --out demo-out")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-out"),
    show_default=True,
    help="Directory for the log, config, store, alerts and PDF (recreated).",
)
def demo(out: Path) -> int:
    """Generate a realistic week of Squid traffic, ingest it, alert, verify and write the PDF."""
    from monitor.cli.report_cmd import write_weekly
    from monitor.demo import write_demo_inputs
    from monitor.pipeline import ingest_files
    from monitor.settings import load_config
    from monitor.store.chain import verify_chain
    from monitor.store.queries import TransferFilter, transfers
    from monitor.store.session import read_session

    if out.exists():
        shutil.rmtree(out)
    inputs = write_demo_inputs(out)
    click.echo(f"demo: {inputs.lines_written} Squid lines for {inputs.week} in {inputs.log_path}")
    click.echo(f"demo: config {inputs.config_path}")
    cfg = load_config(str(inputs.config_path))
    summary = ingest_files(cfg, "squid", [inputs.log_path], final=True)
    f = summary.files[0]
    click.echo(
        f"ingested {f.lines_read} lines in {summary.seconds:.1f}s: {f.rows} rows, {f.quarantined} quarantined, "
        f"{f.blank} blank, {f.no_destination} without destination; {f.evidence_rows} evidence rows"
    )
    with read_session(cfg.store_url) as session:
        rows = transfers(session, TransferFilter())
        chain = verify_chain(session)
    emit(
        rows,
        "table",
        ["system", "dest_host", "country", "outcome", "article", "rule_id", "requests"],
        title=f"transfers {inputs.week}",
    )
    click.echo(f"alerts: {summary.new_alerts} new, written to {cfg.resolve_path(cfg.settings.alerts.jsonl or '-')}")
    click.echo(f"evidence chain: {'PASSED' if chain.ok else 'FAILED'}, {chain.batches} batches, head {chain.head_hash}")
    pdf, _ = write_weekly(cfg, inputs.week, None, dt.datetime.now(dt.UTC))
    click.echo(f"report: {pdf}")
    click.echo(f"next: xborder -c {inputs.config_path} transfers --outcome unauthorized")
    return EXIT_OK
