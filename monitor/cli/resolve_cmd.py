"""CLI: `xborder resolve` — every jurisdiction fact about a destination, with where it came from."""

from __future__ import annotations

from pathlib import Path

import click

from monitor.cli.context import EXIT_OK, Ctx, pass_ctx
from monitor.cli.output import FORMATS, emit
from monitor.errors import UsageError
from monitor.records import is_ip

FIELDS = [
    "country", "eea", "located_country", "located_subdivision", "located_city", "registered_country",
    "represented_country", "asn", "as_org", "provider", "legal_entity", "provider_seat", "region",
    "region_country", "edge", "internal", "confidence",
]  # fmt: skip


def parse_target(t: str) -> tuple[str | None, str | None]:
    """HOST, IP or HOST,IP."""
    host, _, ip = t.partition(",")
    host, ip = host.strip(), ip.strip()
    if ip:
        if not is_ip(ip):
            raise UsageError(f"'{ip}' in '{t}' is not an IP address (targets are HOST, IP or HOST,IP)")
        return host or None, ip
    return (None, host) if is_ip(host) else (host or None, None)


@click.command(
    epilog="Examples:\n\n  xborder resolve bedrock-runtime.eu-central-1.amazonaws.com 81.2.69.142\n\n"
    "  xborder resolve api.openai.com,104.18.33.45 --mmdb GeoLite2-City.mmdb --mmdb GeoLite2-ASN.mmdb --format json"
)
@click.argument("targets", nargs=-1, required=True)
@click.option("--mmdb", "mmdb", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="MaxMind database to use instead of the configured ones (repeatable).")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@pass_ctx
def resolve(ctx: Ctx, targets: tuple[str, ...], mmdb: tuple[Path, ...], fmt: str) -> int:
    """Resolve TARGETs (hostname, IP, or HOST,IP) to jurisdiction facts, each with its source."""
    from monitor.policy.rulepack import load_pack
    from monitor.resolve.build import build_resolver

    cfg = ctx.config()
    keys = [parse_target(t) for t in targets]
    resolver = build_resolver(cfg, load_pack(cfg.rules_dir), list(mmdb) if mmdb else None)
    try:
        dests = resolver.resolve_many(keys)
    finally:
        resolver.close()
    docs = [{"target": t, **d.as_dict()} for t, d in zip(targets, dests, strict=True)]
    if fmt == "json":
        emit(docs, fmt)
    elif fmt == "csv":
        emit([{k: v for k, v in d.items() if k not in ("sources", "data_versions")} for d in docs], fmt,
             ["target", "host", "ip", *FIELDS])  # fmt: skip
    else:
        for doc in docs:
            srcs = doc["sources"]
            rows = [
                {"fact": f, "value": doc[f], "source": srcs.get(f, "")} for f in FIELDS if doc[f] not in (None, False)
            ]
            versions = doc["data_versions"]
            emit(rows, "table", ["fact", "value", "source"], title=doc["target"],
                 extra={"data versions": f"mmdb {versions['mmdb_build']}; catalog {versions['catalog']}"})  # fmt: skip
    return EXIT_OK
