"""One output path for every command: --format table|json|csv."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

FORMATS = ("table", "json", "csv")
format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="Output format.",
)


def _plain(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return v.isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return str(v)


def emit(
    rows: Sequence[dict[str, Any]],
    fmt: str,
    columns: Sequence[str] | None = None,
    title: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Print rows; JSON wraps them as {"rows": [...], **extra} when extra is given."""
    cols = list(columns or (rows[0].keys() if rows else []))
    if fmt == "json":
        doc: Any = [_plain(r) for r in rows] if extra is None else {**_plain(extra), "rows": [_plain(r) for r in rows]}
        click.echo(json.dumps(doc, indent=2, sort_keys=False, default=str))
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: _plain(r.get(k)) for k in cols})
        click.echo(buf.getvalue(), nl=False)
    else:
        table = Table(title=title, show_lines=False)
        for c in cols:
            table.add_column(c, overflow="fold")
        for r in rows:
            # escaped: a value such as "[high]" in an alert summary is text, not rich markup
            table.add_row(*(escape(_cell(r.get(c))) for c in cols))
        # wide enough for hostnames and rule ids when piped (rich would default to 80 columns)
        console = Console(width=max(160, Console().width))
        console.print(table)
        if extra:
            for k, v in extra.items():
                console.print(escape(f"{k}: {_cell(v)}"))
