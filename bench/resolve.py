"""Benchmark: destination resolution, cold and warm cache, against plain geoip2 lookups on the same keys.

    .venv/bin/python bench/resolve.py                 # 1M lookups over 50k unique destinations
    .venv/bin/python bench/resolve.py --lookups 100000 --unique 5000

xborder's Resolver (overrides → catalog → cloud ranges → GeoIP City + ASN, all facts with
sources, bounded cache) against the peer: geoip2 `Reader.city()` + `Reader.asn()` per lookup,
which is what one-country-per-IP tools do. Each runs in its own subprocess, peak RSS measured
with GNU time as in bench/run.py. Databases: the MaxMind *test* databases from
../shared/fixtures/real (no licensed full databases are available here), so most random
addresses are "not found" for both sides; the ratio is what to read, not the absolute rate.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
MMDB = ROOT.parent / "shared" / "fixtures" / "real" / "mmdb"
DBS = [MMDB / "GeoIP2-City-Test.mmdb", MMDB / "GeoLite2-ASN-Test.mmdb"]
HOSTS = [
    "api.openai.com", "eu.api.openai.com", "api.anthropic.com", "api.eu.mistral.ai", "api.stripe.com",
    "api.klarna.com", "de.sentry.io", "api.datadoghq.eu", "api.deepseek.com", "generativelanguage.googleapis.com",
]  # fmt: skip
AWS_REGIONS = ["eu-central-1", "eu-west-1", "eu-west-3", "us-east-1", "us-west-2", "ap-northeast-1"]
KNOWN_IPS = ["81.2.69.142", "2.125.160.216", "216.160.83.56", "89.160.20.112", "175.16.199.1", "2001:218::1"]


def make_keys(unique: int, lookups: int, seed: int) -> tuple[list[tuple[str | None, str | None]], list[int]]:
    """`unique` destinations and the order in which `lookups` requests hit them."""
    rng = random.Random(seed)
    keys: list[tuple[str | None, str | None]] = []
    seen: set[tuple[str | None, str | None]] = set()
    while len(keys) < unique:
        r = rng.random()
        if r < 0.05:
            ip = rng.choice(KNOWN_IPS)
        elif r < 0.85:
            ip = ".".join(str(rng.randrange(1, 224)) for _ in range(4))
        else:
            a, b, c = rng.randrange(0x200, 0x3000), rng.randrange(1 << 16), rng.randrange(1 << 16)
            ip = f"2001:{a:x}:{b:x}::{c:x}"
        h = rng.random()
        if h < 0.3:
            host: str | None = rng.choice(HOSTS)
        elif h < 0.4:
            host = f"bedrock-runtime.{rng.choice(AWS_REGIONS)}.amazonaws.com"
        elif h < 0.7:
            host = f"svc{rng.randrange(10**6)}.example{rng.randrange(500)}.com"
        else:
            host = None
        k = (host, ip)
        if k not in seen:
            seen.add(k)
            keys.append(k)
    order = [rng.randrange(unique) for _ in range(lookups - unique)]
    return keys, list(range(unique)) + order  # every key once (cold), then repeats (warm)


def child_xborder(spec: dict[str, Any]) -> dict[str, Any]:
    from monitor.policy.rulepack import load_pack
    from monitor.resolve.build import build_resolver
    from monitor.settings import Config, Settings, default_rules_dir

    keys, order = make_keys(spec["unique"], spec["lookups"], spec["seed"])
    cfg = Config(Settings.model_validate({"geoip": {"databases": [str(p) for p in DBS]}}), None, ROOT)
    resolver = build_resolver(cfg, load_pack(default_rules_dir()))
    batch = spec["batch"]
    t0 = time.perf_counter()
    cold = order[: spec["unique"]]
    for i in range(0, len(cold), batch):
        resolver.resolve_many([keys[j] for j in cold[i : i + batch]])
    t1 = time.perf_counter()
    warm = order[spec["unique"] :]
    for i in range(0, len(warm), batch):
        # the pipeline asks once per unique key per batch, so dedupe each batch as it does
        resolver.resolve_many([keys[j] for j in dict.fromkeys(warm[i : i + batch])])
    t2 = time.perf_counter()
    found = sum(1 for d in resolver.resolve_many(keys) if d.country)
    resolver.close()
    return {"cold_s": t1 - t0, "warm_s": t2 - t1, "cold_n": len(cold), "warm_n": len(warm), "with_country": found}


def child_peer(spec: dict[str, Any]) -> dict[str, Any]:
    import geoip2.database
    import geoip2.errors

    keys, order = make_keys(spec["unique"], spec["lookups"], spec["seed"])
    city, asn = (geoip2.database.Reader(str(p)) for p in DBS)
    t0 = time.perf_counter()
    found = 0
    for j in order:
        ip = keys[j][1]
        try:
            found += bool(city.city(ip).country.iso_code)
        except (geoip2.errors.AddressNotFoundError, ValueError):
            pass
        try:
            asn.asn(ip)
        except (geoip2.errors.AddressNotFoundError, ValueError):
            pass
    t1 = time.perf_counter()
    return {"seconds": t1 - t0, "n": len(order), "with_country": found}


def measure(kind: str, spec: dict[str, Any]) -> tuple[dict[str, Any], float]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import find_gnu_time  # the same peak-RSS method as the end-to-end bench

    OUT.mkdir(parents=True, exist_ok=True)
    res, rss = OUT / f"resolve-{kind}.json", OUT / f"resolve-{kind}.maxrss"
    cmd = [sys.executable, __file__, "--child", kind, "--spec", json.dumps(spec), "--result", str(res)]
    gnu_time = find_gnu_time()
    if gnu_time:
        cmd = [gnu_time, "-f", "%M", "-o", str(rss), *cmd]
    subprocess.run(cmd, check=True, cwd=ROOT)
    mib = int(rss.read_text().split()[-1]) / 1024 if gnu_time else float("nan")
    return json.loads(res.read_text()), mib


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--lookups", type=int, default=1_000_000)
    ap.add_argument("--unique", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=20_000, help="lookups per resolve_many call (≈ one ingest batch)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--child", choices=["xborder", "peer"])
    ap.add_argument("--spec")
    ap.add_argument("--result")
    a = ap.parse_args(argv)
    if a.child:
        fn = child_xborder if a.child == "xborder" else child_peer
        Path(a.result).write_text(json.dumps(fn(json.loads(a.spec))))
        return 0
    spec = {"lookups": a.lookups, "unique": a.unique, "batch": a.batch, "seed": a.seed}
    x, x_mib = measure("xborder", spec)
    p, p_mib = measure("peer", spec)
    cold_rate = x["cold_n"] / x["cold_s"]
    warm_rate = x["warm_n"] / x["warm_s"] if x["warm_s"] else float("inf")
    total_rate = (x["cold_n"] + x["warm_n"]) / (x["cold_s"] + x["warm_s"])
    peer_rate = p["n"] / p["seconds"]
    print(f"{a.lookups:,} lookups over {a.unique:,} unique destinations (MaxMind test DBs)")
    print(f"{'':28}{'lookups/s':>14}{'peak RSS MiB':>15}")
    print(f"{'xborder cold (unique keys)':28}{cold_rate:>14,.0f}")
    print(f"{'xborder warm (cache hits)':28}{warm_rate:>14,.0f}")
    print(f"{'xborder all 1M':28}{total_rate:>14,.0f}{x_mib:>15.1f}")
    print(f"{'geoip2 per lookup (peer)':28}{peer_rate:>14,.0f}{p_mib:>15.1f}")
    print(f"xborder/peer: speed x{total_rate / peer_rate:.2f} (cold alone x{cold_rate / peer_rate:.2f}), "
          f"memory x{x_mib / p_mib:.2f}")  # fmt: skip
    print(f"with a country: xborder {x['with_country']:,} of {a.unique:,} unique; "
          f"peer {p['with_country']:,} of {p['n']:,} lookups")  # fmt: skip
    doc = {"spec": spec, "xborder": x, "peer": p, "xborder_rss_mib": x_mib, "peer_rss_mib": p_mib}
    (OUT / "resolve-results.json").write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
