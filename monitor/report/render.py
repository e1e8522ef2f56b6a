"""Renders report data to HTML (Jinja2 templates in reports/) and to PDF (WeasyPrint)."""

from __future__ import annotations

import datetime as dt
import os
import warnings
from functools import cache
from pathlib import Path

import jinja2

from monitor.errors import ReportError
from monitor.report.model import CountryRow, WeeklyReport

WEEKLY_TEMPLATE = "weekly.html.j2"
# Bar segments of the by-country chart, in the order they are drawn.
BAR_OUTCOMES = ("unauthorized", "review", "permitted", "out_of_scope")


def reports_dir() -> Path:
    """The templates: repo `reports/` beside the package, else `monitor/_reports` in a wheel."""
    here = Path(__file__).resolve().parent.parent
    for cand in (here.parent / "reports", here / "_reports"):
        if (cand / WEEKLY_TEMPLATE).is_file():
            return cand
    raise ReportError(f"cannot find the report templates ({WEEKLY_TEMPLATE} in reports/)")


# --------------------------------------------------------------------------- filters


def fmt_num(n: int | None) -> str:
    return "–" if n is None else f"{n:,}"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "not logged"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n:,} B" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def fmt_ts(t: dt.datetime | None) -> str:
    if t is None:
        return "–"
    t = t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)
    return t.strftime("%Y-%m-%d %H:%M UTC")


def fmt_day(d: dt.datetime | dt.date) -> str:
    return f"{d:%a} {d.day} {d:%B %Y}"


def plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


def bar_segments(row: CountryRow, scale: int) -> list[tuple[str, float]]:
    """(outcome, width in % of the widest bar) for one country's stacked bar."""
    if scale <= 0:
        return []
    out = []
    for name in BAR_OUTCOMES:
        n: int = getattr(row.outcomes, name)
        if n > 0:
            out.append((name, round(100.0 * n / scale, 3)))
    return out


@cache
def _environment(directory: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=fmt_num, bytes=fmt_bytes, ts=fmt_ts, day=fmt_day)
    env.globals.update(plural=plural, bar_segments=bar_segments)
    return env


# --------------------------------------------------------------------------- rendering


def render_weekly_html(report: WeeklyReport) -> str:
    directory = reports_dir()
    try:
        template = _environment(directory).get_template(WEEKLY_TEMPLATE)
        return template.render(
            r=report,
            last_day=report.period_end - dt.timedelta(days=1),
            bar_scale=max((c.requests for c in report.by_country), default=0),
            outcome_labels={
                "unauthorized": "Unauthorized",
                "review": "Needs review",
                "permitted": "Permitted",
                "out_of_scope": "Out of scope",
            },
        )
    except jinja2.TemplateError as exc:
        where = f"{exc.filename}:{exc.lineno}: " if isinstance(exc, jinja2.TemplateSyntaxError) else ""
        raise ReportError(f"{where}cannot render {WEEKLY_TEMPLATE}: {exc}") from exc


def render_weekly_pdf(report: WeeklyReport, out: Path) -> Path:
    """Write the weekly report as PDF to `out` (atomically: no half-written file on failure)."""
    html = render_weekly_html(report)
    base = reports_dir()
    try:
        with warnings.catch_warnings():
            # WeasyPrint warns at import when the system lacks libharfbuzz-subset (it then
            # subsets fonts with fontTools, which works). That is a packaging note for the host,
            # not a problem with this report, and the test suite turns warnings into errors.
            warnings.filterwarnings("ignore", message=r"HarfBuzz-Subset will be required", category=DeprecationWarning)
            from weasyprint import HTML
    except (ImportError, OSError) as exc:  # OSError: pango/harfbuzz shared libraries missing
        raise ReportError(f"WeasyPrint is not usable, cannot write PDF reports: {exc}") from exc
    try:
        pdf = HTML(string=html, base_url=str(base)).write_pdf()
    except Exception as exc:  # WeasyPrint has no single exception base; any failure is the report's
        raise ReportError(f"WeasyPrint could not lay out the weekly report: {exc}") from exc
    if not isinstance(pdf, bytes):  # pragma: no cover - write_pdf() without target returns bytes
        raise ReportError("WeasyPrint returned no PDF data")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(pdf)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ReportError(f"cannot write report to {out}: {exc.strerror or exc}") from exc
    return out
