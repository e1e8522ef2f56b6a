"""CLI commands over the store and config: init, check, run, transfers, stats, quarantine, evidence, db."""

from __future__ import annotations

import datetime as dt
from importlib.resources import files
from pathlib import Path

import click

from monitor.cli.context import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, Ctx, pass_ctx
from monitor.cli.output import emit, format_option
from monitor.errors import UsageError, XborderError
from monitor.store.chain import verify_chain
from monitor.store.queries import TransferFilter, quarantine_rows, source_stats, transfers
from monitor.store.session import (
    current_revision,
    head_revision,
    make_engine,
    read_session,
    redact,
    upgrade,
)


@click.command(epilog="Example: xborder init /etc/xborder")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing xborder.yaml.")
def init(directory: Path, force: bool) -> int:
    """Write a commented starter config to DIRECTORY/xborder.yaml."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "xborder.yaml"
    if target.exists() and not force:
        raise UsageError(f"{target} exists; use --force to overwrite")
    target.write_text(files("monitor").joinpath("starter_config.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    click.echo(f"wrote {target}\nnext: edit systems and vendors, then `xborder -c {target} check`")
    return EXIT_OK


@click.command(epilog="Example: xborder -c /etc/xborder/xborder.yaml check --format json")
@format_option
@pass_ctx
def check(ctx: Ctx, fmt: str) -> int:
    """Preflight: config, rule pack, store, GeoIP databases, alert paths (exit 2 if any fails)."""
    from monitor.policy.rulepack import load_pack
    from monitor.resolve.geoip import GeoIP

    results: list[dict[str, str]] = []

    def line(ok: bool | None, what: str, detail: str) -> None:
        status = {True: "ok", False: "fail", None: "warn"}[ok]
        results.append({"check": what, "status": status, "detail": detail})
        if fmt == "table":
            click.echo(f"[{status.upper() if ok is False else status:4}] {what}: {detail}")

    cfg = ctx.config()
    line(True, "config", str(cfg.path) if cfg.path else "none found, using defaults")
    try:
        pack = load_pack(cfg.rules_dir)
        line(
            True,
            "rules",
            f"{pack.info.name} {pack.info.version}, hash {pack.hash[:16]}…, {len(pack.decisions)} adequacy decisions",
        )
    except XborderError as exc:
        line(False, "rules", str(exc))
    try:
        engine = make_engine(cfg.store_url)
        rev, head = current_revision(engine), head_revision()
        engine.dispose()
        if rev == head:
            line(True, "store", f"{redact(cfg.store_url)} at revision {rev}")
        else:
            line(
                None if rev is None else False,
                "store",
                f"{redact(cfg.store_url)} at revision {rev or 'none (new)'}; run `xborder db upgrade` (head {head})",
            )
    except XborderError as exc:
        line(False, "store", str(exc))
    dbs = [cfg.resolve_path(p) for p in cfg.settings.geoip.databases]
    if not dbs:
        line(None, "geoip", "no mmdb configured: offline RIR fallback (registered country only, low confidence)")
    else:
        try:
            geo = GeoIP(dbs)
            line(
                True,
                "geoip",
                ", ".join(f"{d.path.name} ({d.database_type}, built {d.built_on():%Y-%m-%d})" for d in geo.databases),
            )
            for w in geo.stale(cfg.settings.geoip.max_age_days, dt.datetime.now(dt.UTC)):
                line(None, "geoip stale", w)
            geo.close()
        except XborderError as exc:
            line(False, "geoip", str(exc))
    if cfg.settings.alerts.jsonl:
        p = cfg.resolve_path(cfg.settings.alerts.jsonl)
        parent = p.parent
        line(parent.is_dir() or not parent.exists(), "alerts", f"jsonl → {p}")
    from monitor.alert.build import build_alerter
    from monitor.alert.channels import channel_summary

    for ch in cfg.settings.alerts.channels:
        try:  # builds it as delivery would: a missing secret or password variable shows here
            build_alerter(ch, cfg).close()
            line(True, f"alerts {ch.name}", channel_summary(ch) + " (xborder alerts test " + ch.name + " sends one)")
        except XborderError as exc:
            line(False, f"alerts {ch.name}", str(exc))
    line(True, "register", f"{len(cfg.settings.systems)} systems, {len(cfg.settings.vendors)} vendors")
    if fmt != "table":
        emit(results, fmt, ["check", "status", "detail"])
    return EXIT_USAGE if any(r["status"] == "fail" for r in results) else EXIT_OK


def _week_bounds(week: str) -> tuple[dt.datetime, dt.datetime]:
    try:
        year, w = week.upper().split("-W")
        start = dt.datetime.combine(dt.date.fromisocalendar(int(year), int(w), 1), dt.time(), dt.UTC)
    except ValueError as exc:
        raise UsageError(f"--week must look like 2026-W47, got '{week}'") from exc
    return start, start + dt.timedelta(days=7)


def _parse_day(v: str | None, what: str) -> dt.datetime | None:
    if v is None:
        return None
    try:
        return dt.datetime.combine(dt.date.fromisoformat(v), dt.time(), dt.UTC)
    except ValueError as exc:
        raise UsageError(f"{what} must be a date YYYY-MM-DD, got '{v}'") from exc


TRANSFER_COLUMNS = [
    "system",
    "data_categories",
    "dest_host",
    "dest_ip",
    "country",
    "eea",
    "outcome",
    "article",
    "rule_id",
    "requests",
    "egress_requests",
    "first_seen",
    "last_seen",
]


@click.command(epilog="Example: xborder transfers --outcome unauthorized --week 2026-W47 --format json")
@click.option("--system", help="Only this system.")
@click.option("--outcome", type=click.Choice(["permitted", "unauthorized", "review", "out_of_scope"]))
@click.option("--country", help="Only this destination country (ISO alpha-2).")
@click.option("--dest", help="Only this destination host or IP.")
@click.option("--week", help="ISO week, e.g. 2026-W47.")
@click.option("--since", help="From this day (YYYY-MM-DD, UTC).")
@click.option("--until", help="Before this day (YYYY-MM-DD, UTC).")
@format_option
@pass_ctx
def transfers_cmd(
    ctx: Ctx,
    system: str | None,
    outcome: str | None,
    country: str | None,
    dest: str | None,
    week: str | None,
    since: str | None,
    until: str | None,
    fmt: str,
) -> int:
    """List transfers per system, destination and verdict, summed over the evidence."""
    s, u = _parse_day(since, "--since"), _parse_day(until, "--until")
    if week:
        s, u = _week_bounds(week)
    with read_session(ctx.config().store_url) as session:
        rows = transfers(session, TransferFilter(system, outcome, country, dest, s, u))
    cols = TRANSFER_COLUMNS + (["rule_location", "vendor", "bytes_in"] if fmt != "table" else [])
    emit(rows, fmt, cols, title="transfers")
    return EXIT_OK


transfers_cmd.name = "transfers"


@click.command(epilog="Example: xborder stats --format json")
@format_option
@pass_ctx
def stats(ctx: Ctx, fmt: str) -> int:
    """Per source: lines read, rows, quarantined, blank (lines = rows + quarantined + blank), bytes, lag."""
    import datetime as dt
    import os

    with read_session(ctx.config().store_url) as session:
        rows = source_stats(session)
    now = dt.datetime.now(dt.UTC)
    for r in rows:
        # lag: bytes written to the current file that are not committed yet, and time since the last commit
        try:
            size = os.stat(r["current_file"]).st_size if r["current_file"] else None
        except OSError:
            size = None
        r["bytes"] = r["offset"]
        r["lag_bytes"] = max(0, size - r["offset"]) if size is not None and r["offset"] is not None else None
        r["seconds_since_commit"] = round((now - r["last_commit"]).total_seconds(), 1) if r["last_commit"] else None
    keys = ("batches", "lines_read", "rows", "quarantined", "blank", "no_destination")
    totals = {k: sum(r[k] for r in rows) for k in keys}
    if fmt == "json":
        emit(rows, fmt, extra={"totals": totals})
    else:
        cols = ["source", *keys, "bytes", "lag_bytes"]
        emit([*rows, {"source": "TOTAL", **totals}], fmt, cols, title="stats")
    return EXIT_OK


@click.group()
def quarantine() -> None:
    """Lines that could not be parsed: kept whole with file, line number and reason."""


@quarantine.command("list", epilog="Example: xborder quarantine list --format csv > bad-lines.csv")
@click.option("--source", help="Only this source (as shown by `xborder stats`).")
@click.option("--limit", default=1000, show_default=True)
@format_option
@pass_ctx
def quarantine_list(ctx: Ctx, source: str | None, limit: int, fmt: str) -> int:
    """List quarantined lines (id, source, line, field, reason, raw text)."""
    with read_session(ctx.config().store_url) as session:
        rows = quarantine_rows(session, source, limit)
    emit(rows, fmt, ["id", "source", "line", "field", "reason", "raw"], title="quarantine")
    return EXIT_OK


@quarantine.command("show", epilog="Example: xborder quarantine show 17")
@click.argument("row_id", type=int)
@format_option
@pass_ctx
def quarantine_show(ctx: Ctx, row_id: int, fmt: str) -> int:
    """One quarantined line in full: where, why, and its raw bytes (hex where not text)."""
    from monitor.store.models import Quarantine

    with read_session(ctx.config().store_url) as session:
        q = session.get(Quarantine, row_id)
        if q is None:
            raise UsageError(f"no quarantined line with id {row_id} (see `xborder quarantine list`)")
        doc = {"id": q.id, "source": q.source, "line": q.line, "offset": q.offset, "field": q.field,
               "reason": q.reason, "batch": q.batch_seq, "raw": q.raw.decode("utf-8", "backslashreplace"),
               "raw_hex": q.raw.hex()}  # fmt: skip
    if fmt == "table":
        for k, v in doc.items():
            click.echo(f"{k:>7}: {v}")
    else:
        emit([doc], fmt)
    return EXIT_OK


@click.group()
def evidence() -> None:
    """The hash-chained evidence record."""


@evidence.command("verify", epilog="Example: xborder evidence verify --format json")
@format_option
@pass_ctx
def evidence_verify(ctx: Ctx, fmt: str) -> int:
    """Recompute every row hash and chain link; exit 1 and name the first break if tampered."""
    with read_session(ctx.config().store_url) as session:
        rep = verify_chain(session)
    doc = {
        "ok": rep.ok,
        "batches": rep.batches,
        "evidence_rows": rep.evidence_rows,
        "head_seq": rep.head_seq,
        "head_hash": rep.head_hash,
        "first_bad_batch": rep.first_bad_batch,
        "bad_evidence_ids": rep.bad_evidence_ids,
        "problems": rep.problems,
    }
    if fmt == "table":
        click.echo(f"evidence chain: {'PASSED' if rep.ok else 'FAILED'}")
        click.echo(f"  batches {rep.batches}, evidence rows {rep.evidence_rows}, head #{rep.head_seq} {rep.head_hash}")
        for p in rep.problems:
            click.echo(f"  BROKEN: {p}")
    else:
        emit([doc], fmt)
    return EXIT_OK if rep.ok else EXIT_FINDINGS


@click.group()
def db() -> None:
    """Store schema management."""


@db.command("upgrade", epilog="Example: XBORDER_DB_URL=postgresql+psycopg://xborder@db/xborder xborder db upgrade")
@pass_ctx
def db_upgrade(ctx: Ctx) -> int:
    """Create or migrate the store to the current schema (Alembic)."""
    url = ctx.config().store_url
    engine = make_engine(url)
    before, after = upgrade(engine)
    engine.dispose()
    click.echo(f"{redact(url)}: {before or 'empty'} → {after}")
    return EXIT_OK


COMMANDS = [init, check, transfers_cmd, stats, quarantine, evidence, db]


@click.command(epilog="Example: XBORDER_CONFIG=/etc/xborder/xborder.yaml xborder run")
@click.option("--once", is_flag=True, help="Read what is new in every source once, then exit (for timers).")
@click.option("--max-seconds", type=float, help="Stop after this long (tests, benchmarks).")
@pass_ctx
def run_cmd(ctx: Ctx, once: bool, max_seconds: float | None) -> int:
    """Follow every source in the config: new lines within a second, rotation-safe, alerts as they come."""
    from monitor.run import Follower, install_signal_handlers

    follower = Follower(ctx.config(required=True))
    install_signal_handlers(follower)
    t = follower.run(once=once, max_seconds=max_seconds)
    click.echo(
        f"run: {t.passes} passes, {t.batches} batches, {t.lines_read} lines, {t.rows} rows, "
        f"{t.quarantined} quarantined, {t.new_alerts} new alerts ({t.delivered} delivered)"
    )
    return EXIT_OK


run_cmd.name = "run"
COMMANDS.append(run_cmd)
