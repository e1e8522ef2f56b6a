"""CLI: `xborder report weekly` — the DPO's weekly PDF."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from monitor.cli.context import EXIT_OK, Ctx, pass_ctx
from monitor.settings import Config


def geoip_warnings(cfg: Config, now: dt.datetime) -> list[str]:
    """What a DPO must know about the location data behind the report."""
    from monitor.resolve.geoip import GeoIP

    paths = [cfg.resolve_path(p) for p in cfg.settings.geoip.databases]
    if not paths:
        return [
            "No GeoIP database configured: countries are the RIR registration country of each "
            "address (offline fallback), not the server location; confidence is low."
        ]
    geo = GeoIP(paths)
    try:
        return geo.stale(cfg.settings.geoip.max_age_days, now)
    finally:
        geo.close()


def write_weekly(cfg: Config, week: str | None, out: Path | None, now: dt.datetime) -> tuple[Path, str]:
    from monitor.report.data import weekly_report_data
    from monitor.report.model import previous_week
    from monitor.report.render import render_weekly_pdf
    from monitor.store.session import read_session

    week = week or previous_week(now.date())
    with read_session(cfg.store_url) as session:
        data = weekly_report_data(
            session,
            week,
            organisation=cfg.settings.organisation.name,
            generated_at=now,
            mmdb_warnings=geoip_warnings(cfg, now),
        )
    target = out or cfg.resolve_path(cfg.settings.reports_dir) / f"xborder-weekly-{week}.pdf"
    target.parent.mkdir(parents=True, exist_ok=True)
    render_weekly_pdf(data, target)
    return target, week


@click.group()
def report() -> None:
    """Audit reports."""


@report.command("weekly", epilog="Example: xborder report weekly --week 2026-W47 -o /srv/dpo/2026-W47.pdf")
@click.option("--week", help="ISO week YYYY-Www (default: the last complete week).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="PDF file to write.")
@pass_ctx
def weekly(ctx: Ctx, week: str | None, output: Path | None) -> int:
    """Render the weekly PDF audit report for DPOs."""
    path, wk = write_weekly(ctx.config(), week, output, dt.datetime.now(dt.UTC))
    click.echo(f"wrote {path} ({wk})")
    return EXIT_OK
