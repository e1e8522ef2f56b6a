"""CLI command `ingest`: log files through the whole pipeline, the first file's reading begun before the rest loads."""

from __future__ import annotations

from pathlib import Path

import click

from monitor.cli.context import EXIT_OK, Ctx, pass_ctx
from monitor.cli.output import emit, format_option
from monitor.collect import make_collector
from monitor.collect.prefetch import read_ahead
from monitor.errors import UsageError

# Imported on purpose only when the command runs: monitor.pipeline and what it brings (the store,
# SQLAlchemy, the rules, the resolver) take most of a second that the first file's parse can use.


@click.command(epilog="Example: xborder ingest squid /var/log/squid/access.log /var/log/squid/access.log.1")
@click.argument("collector")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--no-deliver", is_flag=True, help="Queue alerts in the outbox without delivering them now.")
@click.option(
    "--final",
    is_flag=True,
    help="The files are complete: also read a last line that has no newline (a live log may be mid-line).",
)
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Collector option, e.g. -o log_format='$remote_addr ...' for nginx (repeatable).")  # fmt: skip
@format_option
@pass_ctx
def ingest(
    ctx: Ctx, collector: str, paths: tuple[Path, ...], no_deliver: bool, final: bool, options: tuple[str, ...], fmt: str
) -> int:
    """Ingest log FILES with COLLECTOR (e.g. squid); each file resumes from its checkpoint."""
    opts = {}
    for o in options:
        key, eq, value = o.partition("=")
        if not eq or not key:
            raise UsageError(f"-o takes KEY=VALUE, got '{o}'")
        opts[key.strip()] = value
    # Only the collectors are imported so far. The first file is read and parsed from here on
    # while the store, the rules and the rest of the program load (pipeline.open_path keeps that
    # reading only if the store has no checkpoint for the file). A collector that learns as it
    # reads (Zeek: the names in ssl.log for the rows of conn.log; CSV: its header) gets none.
    parser = make_collector(collector, opts)
    ahead = read_ahead(parser, paths[0], final=final) if parser.stateless else None
    try:
        from monitor.pipeline import ingest_files

        summary = ingest_files(
            ctx.config(), collector, list(paths), deliver=not no_deliver, final=final, options=opts, ahead=ahead
        )
    finally:
        if ahead is not None:
            ahead.close()  # a no-op once read to the end
    rows = [
        {
            "file": f.path,
            "lines": f.lines_read,
            "rows": f.rows,
            "quarantined": f.quarantined,
            "blank": f.blank,
            "no_destination": f.no_destination,
            "batches": f.batches,
            "evidence_rows": f.evidence_rows,
            "new_alerts": f.new_alerts,
            "pending_bytes": f.pending_bytes,
        }
        for f in summary.files
    ]
    extra = {
        "seconds": round(summary.seconds, 3),
        "lines_per_second": int(summary.lines_read / summary.seconds) if summary.seconds else None,
    }
    if summary.delivery is not None:
        extra["alerts_delivered"] = summary.delivery.delivered
        extra["alerts_failed"] = summary.delivery.failed
    emit(rows, fmt, title="ingest", extra=extra)
    for f in summary.files:
        if f.pending_bytes:
            click.echo(
                f"note: {f.path}: {f.pending_bytes} bytes after the last newline left for the next run "
                "(pass --final if the file is complete)",
                err=True,
            )
    return EXIT_OK
