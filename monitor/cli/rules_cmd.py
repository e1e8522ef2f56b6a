"""CLI: `xborder rules check|test` and `xborder explain` — the legal rule engine for DPOs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.cli.context import EXIT_FINDINGS, EXIT_OK, Ctx, pass_ctx
from monitor.cli.output import FORMATS, emit
from monitor.errors import ConfigError, Problem, UsageError
from monitor.store.models import Evidence

T = TypeVar("T")


@click.group()
def rules() -> None:
    """Validate the rule pack and register, and test your policy."""


@rules.command("check", epilog="Example: xborder -c /etc/xborder/xborder.yaml rules check")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@pass_ctx
def rules_check(ctx: Ctx, fmt: str) -> int:
    """Validate rules + register together (errors: exit 2) and list lint warnings (exit 0)."""
    from monitor.policy.lint import lint_warnings
    from monitor.policy.rulepack import load_pack
    from monitor.resolve.catalog import load_catalog
    from monitor.settings import default_rules_dir

    # packs, catalog and register are validated together: every problem of all three at once
    problems: list[Problem] = []
    cfg = pack = catalog = None
    try:
        cfg = ctx.config()
    except ConfigError as exc:
        problems += exc.problems
    rules_dir = cfg.rules_dir if cfg is not None else default_rules_dir()
    try:
        pack = load_pack(rules_dir)
    except ConfigError as exc:
        problems += exc.problems
    try:
        catalog = load_catalog(rules_dir / "catalog") if (rules_dir / "catalog").is_dir() else None
    except ConfigError as exc:
        problems += exc.problems
    if problems or cfg is None or pack is None:
        raise ConfigError(problems)
    warnings = lint_warnings(cfg.settings, cfg.source, dt.date.today(), _seen_hosts(cfg.store_url))
    rows = [{"level": "warning", "where": str(p.location or ""), "message": p.message, "hint": p.hint or ""}
            for p in warnings]  # fmt: skip
    summary = {
        "rule_pack": f"{pack.info.name} {pack.info.version}",
        "pack_hash": pack.hash,
        "catalog": catalog.version if catalog else None,
        "systems": len(cfg.settings.systems),
        "vendors": len(cfg.settings.vendors),
        "errors": 0,
        "warnings": len(rows),
    }
    if fmt == "table":
        click.echo(f"rules: {summary['rule_pack']} (hash {pack.hash[:16]}…), catalog {summary['catalog']}: OK")
        click.echo(f"register: {summary['systems']} systems, {summary['vendors']} vendors: OK, {len(rows)} warnings")
        for r in rows:
            click.echo(f"  warning: {r['where']}: {r['message']}" + (f" (hint: {r['hint']})" if r["hint"] else ""))
    else:
        emit(rows, fmt, ["level", "where", "message", "hint"], extra=summary if fmt == "json" else None)
    return EXIT_OK


def _from_store(url: str, query: Callable[[Session], T]) -> T | None:
    """Ask the evidence store, or None when there is none yet (rules check and explain work without one)."""
    from monitor.errors import StoreError
    from monitor.store.session import read_session

    if url.startswith("sqlite:///") and not Path(url.split("///", 1)[1]).exists():
        return None
    try:
        with read_session(url) as s:
            return query(s)
    except StoreError:
        return None


def _seen_hosts(url: str) -> list[str] | None:
    """Destination hosts in the evidence store."""
    return _from_store(url, lambda s: [h for h in s.scalars(select(Evidence.dest_host).distinct()) if h])


@rules.command("test", epilog="Example: xborder rules test policy-tests.yaml --format json")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_ctx
def rules_test(ctx: Ctx, file: Path, fmt: str) -> int:
    """Run policy test cases; exit 0 when all pass, 1 when any fails (each failure: expected vs actual)."""
    from monitor.policy.rulepack import load_pack
    from monitor.policy.testcases import run_file
    from monitor.resolve.build import build_resolver

    cfg = ctx.config()
    pack = load_pack(cfg.rules_dir)
    resolver = build_resolver(cfg, pack)
    try:
        results = run_file(pack, resolver, file)
    finally:
        resolver.close()
    failed = [r for r in results if not r.passed]
    if fmt == "json":
        import json

        doc = {"cases": [r.as_dict() for r in results], "passed": len(results) - len(failed), "failed": len(failed)}
        click.echo(json.dumps(doc, indent=2, default=str))
    else:
        for r in results:
            click.echo(f"{'PASS' if r.passed else 'FAIL'}  {r.name}")
            for m in r.mismatches:
                click.echo(
                    f"        {m}   [{r.where}; decided by {r.actual['rule_id']} at {r.actual['rule_location']}]"
                )
        click.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return EXIT_FINDINGS if failed else EXIT_OK


@click.command(
    epilog="Examples:\n\n  xborder explain --system support-chat --dest api.anthropic.com\n\n"
    "  xborder explain --source 10.20.1.15 --dest api.stripe.com,54.187.174.169 --date 2023-07-09 --format json"
)
@click.option("--source", help="Source IP: the system is found as the inventory would.")
@click.option("--system", "system_name", help="System name from the inventory.")
@click.option("--dest", required=True, help="Destination: HOST, IP or HOST,IP.")
@click.option("--date", "day", help="Judge as of this day (YYYY-MM-DD, default today).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@pass_ctx
def explain(ctx: Ctx, source: str | None, system_name: str | None, dest: str, day: str | None, fmt: str) -> int:
    """Explain the verdict for one system sending to one destination, step by step."""
    from monitor.attribute import Inventory
    from monitor.cli.resolve_cmd import parse_target
    from monitor.policy.evaluator import evaluate
    from monitor.policy.rulepack import load_pack
    from monitor.policy.testcases import actual_of
    from monitor.policy.vendors import RegisterIndex
    from monitor.resolve.build import build_resolver

    if (source is None) == (system_name is None):
        raise UsageError("give exactly one of --source IP or --system NAME")
    try:
        when = dt.date.fromisoformat(day) if day else dt.date.today()
    except ValueError as exc:
        raise UsageError(f"--date must be YYYY-MM-DD, got '{day}'") from exc
    cfg = ctx.config()
    inv = Inventory(cfg.settings.systems)
    if system_name is not None:
        if system_name not in inv.systems:
            raise UsageError(f"no system '{system_name}' in the inventory; known: {', '.join(sorted(inv.systems))}")
        system = inv.systems[system_name]
    else:
        system = inv.system_for(source, None)
    host, ip = parse_target(dest)
    if host and not ip:
        ip = _last_address(cfg.store_url, host)  # the address the proxy last used for this host
    pack = load_pack(cfg.rules_dir)
    resolver = build_resolver(cfg, pack)
    try:
        d = resolver.resolve(host, ip)
    finally:
        resolver.close()
    index = RegisterIndex(cfg.register, cfg.source)
    vendor = index.vendor(d)
    v = evaluate(pack, system, d, when, vendor, index.extras(system.name, d, vendor))
    doc: dict[str, Any] = {
        "date": when.isoformat(),
        "system": {"name": system.name, "data_categories": list(system.data_categories)},
        "destination": d.as_dict(),
        "vendor": v.vendor,
        "verdict": actual_of(v),
        "rule_pack": {"name": pack.info.name, "version": pack.info.version, "hash": pack.hash},
    }
    if fmt == "json":
        emit([doc], "json")
        return EXIT_OK
    click.echo(_explain_text(doc))
    return EXIT_OK


def _last_address(url: str, host: str) -> str | None:
    q = select(Evidence.dest_ip).where(Evidence.dest_host == host, Evidence.dest_ip.is_not(None))
    return _from_store(url, lambda s: s.scalar(q.order_by(Evidence.last_seen.desc()).limit(1)))


def _explain_text(doc: dict[str, Any]) -> str:
    d, v, s = doc["destination"], doc["verdict"], doc["system"]
    src = d["sources"]
    where = d["host"] or d["ip"]
    lines = [
        f"Transfer: {s['name']} ({', '.join(s['data_categories'])}) -> {where}"
        + (f" [{d['ip']}]" if d["host"] and d["ip"] else "")
        + f", as of {doc['date']}",
        f"Destination: internal ({src.get('internal', 'own network')})"
        if d["internal"]
        else f"Destination: country {d['country'] or 'unknown'} "
        f"({src.get('country', 'no source')}; confidence {d['confidence']})",
    ]
    if d["provider"]:
        lines.append(
            f"Provider: {d['provider']}" + (f" — {d['legal_entity']}" if d["legal_entity"] else "")
            + (f", seat {d['provider_seat']}" if d["provider_seat"] else "")
            + (f", region {d['region']} ({d['region_country']})" if d["region"] else "")
        )  # fmt: skip
    if doc["vendor"]:
        lines.append(f"Vendor in register: {doc['vendor']}")
    art = f"GDPR Art. {v['article']}" if v["article"] and not v["article"].startswith("NIS2") else (v["article"] or "")
    lines += [
        f"Verdict: {v['outcome'].upper().replace('_', ' ')}"
        + (f" — {art}" if art else "")
        + f" (severity {v['severity']})",
        f"Basis: {v['basis']}",
        f"Rule: {v['rule_id']} ({v['rule_location']}); rule pack {doc['rule_pack']['name']} "
        f"{doc['rule_pack']['version']}, hash {doc['rule_pack']['hash'][:16]}",
        "Reasoning:",
    ]
    decided = False
    for n, st in enumerate(v["steps"], 1):
        # "->" the step that decided; "+ " a further finding (NIS2) on top of it
        mark = ("+ " if decided else "->") if st["result"] == "match" else "  "
        decided = decided or st["result"] == "match"
        lines.append(f" {mark} {n:2}. {st['rule_id']} ({st['location']}): {st['text']}")
    lines.append(f"Data: {d['data_versions']['mmdb_build']}; catalog {d['data_versions']['catalog']}")
    return "\n".join(lines)
