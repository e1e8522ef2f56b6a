"""Benchmark: Chapter V verdicts per second (rule engine alone, and with the pipeline's verdict cache).

    .venv/bin/python bench/verdicts.py                     # 100k unique keys, 1M cached calls
    .venv/bin/python bench/verdicts.py --unique 20000 --calls 200000

100,000 unique (system, destination, day) keys are judged by `monitor.policy.evaluator.evaluate`
with the shipped rule pack and a register of 50 vendors with mixed mechanisms (DPF incl. lapsed
and HR-scoped, SCCs of every version incl. expired, BCRs, Art. 49 derogations with and without a
volume limit, limited-adequacy confirmations, a same-entity affiliate, vendors without any
mechanism), waivers and approved suppliers for a NIS2 important entity. Destinations are built
directly (no GeoIP): located/registered countries spread over the EEA, adequate countries, the
US and other third countries, territories under review, unknown countries, and catalog-like
cloud/AI providers (region, seat, legal entity, CDN edges). Days run from 2019 to 2026, across
Privacy Shield, the DPF, the UK adequacy renewal, the SCC transition and the NIS2 start date.

Then the same keys go through `Runtime.verdict`, the pipeline's cache in front of `evaluate`, in a
stream of 1,000,000 calls with repeats (every key once, the rest skewed toward popular keys, as
traffic is); calls to a vendor whose derogation has a volume limit carry a rising daily volume,
so they miss the cache by design. The hit rate is printed.

There is no peer tool that judges transfers under GDPR Chapter V (network tools stop at "which
country is this IP in"), so there is no like-for-like competitor. The baseline is what those tools
do instead: a country blocklist, one dict lookup per key on an already known country. The ratio
shows what the legal reasoning costs per decision. Each side runs in its own subprocess; peak RSS
is measured with GNU time as in bench/run.py (else the child's own getrusage).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"

EEA = ["DE", "FR", "NL", "IE", "SE", "PL", "IT", "ES", "AT", "BE", "FI", "DK", "NO", "IS", "LI", "LU"]
ADEQUATE = ["GB", "CH", "JP", "KR", "CA", "IL", "NZ", "BR", "AR", "UY", "JE", "GG", "IM", "AD", "FO"]
OTHER = ["CN", "IN", "RU", "SG", "AU", "ZA", "AE", "TR", "MX", "VN", "HK", "TW", "GI"]
REVIEW = ["SJ", "BV"]
CATEGORIES: list[tuple[str, ...]] = [
    ("customer-personal",),
    ("customer-personal", "customer-behavioural"),
    ("hr",),
    ("employee-personal",),
    ("hr", "customer-personal"),
    ("health",),
    ("payment",),
    ("none",),
    ("public", "anonymous"),
    ("unknown",),
]
# catalog-like providers: (provider, legal entity, seat, region, region country, edge)
PROVIDERS: list[tuple[str, str, str, str | None, str | None, bool]] = [
    ("Amazon Web Services", "Amazon Web Services, Inc.", "US", "eu-central-1", "DE", False),
    ("Amazon Web Services", "Amazon Web Services, Inc.", "US", "us-east-1", "US", False),
    ("Amazon Web Services", "Amazon Web Services, Inc.", "US", "ap-northeast-1", "JP", False),
    ("Google Cloud", "Google LLC", "US", "europe-west3", "DE", False),
    ("Microsoft Azure", "Microsoft Corporation", "US", "westeurope", "NL", False),
    ("OpenAI", "OpenAI, L.L.C.", "US", "eu", "EU", False),
    ("OpenAI", "OpenAI, L.L.C.", "US", None, "US", False),
    ("Anthropic", "Anthropic, PBC", "US", None, "US", False),
    ("DeepSeek", "Hangzhou DeepSeek Artificial Intelligence Co., Ltd.", "CN", None, "CN", False),
    ("Cloudflare", "Cloudflare, Inc.", "US", None, None, True),
]
START, END = dt.date(2019, 1, 1), dt.date(2026, 11, 30)


def _mechanisms(kind: int, rng: random.Random) -> list[dict[str, Any]]:
    """Mechanism mix by vendor kind; dates spread so each is sometimes in force, sometimes not."""
    d = dt.date
    year = rng.randrange(2019, 2026)
    return [
        [{"type": "dpf", "certified_since": d(2023, rng.randrange(7, 13), 1), "checked_on": d(2026, 1, 1)}],
        [{"type": "dpf", "certified_since": d(2023, 8, 1), "scope": "both"}],
        [{"type": "dpf", "certified_since": d(2023, 7, 17), "lapsed_on": d(2025, rng.randrange(1, 13), 1)}],
        [{"type": "scc", "module": 2, "signed": d(max(year, 2022), 1, 1), "tia": d(max(year, 2022), 1, 1)}],
        [{"type": "scc", "module": 2, "signed": d(2019, 5, 1), "version": "2010/87"}],
        [{"type": "scc", "module": 3, "signed": d(2022, 3, 1), "expires": d(2024, 6, 30)}],
        [{"type": "bcr", "approved_on": d(year, 6, 1), "authority": "BayLDA"}],
        [{"type": "derogation", "point": "b", "justification": "contract", "occasional_limit_per_day": 20}],
        [{"type": "derogation", "point": "a", "justification": "explicit consent", "recorded_on": d(2022, 1, 1)}],
        [{"type": "adequacy-scope", "country": rng.choice(["CA", "JP"]), "confirmed_on": d(2020, 1, 1)}],
        [],  # same-entity affiliate, see below
        [],  # nothing on file
        [{"type": "dpf", "certified_since": d(2023, 9, 1)}, {"type": "scc", "module": 2, "signed": d(2021, 10, 1)}],
    ][kind]


def make_register(rng: random.Random, n_vendors: int = 50) -> dict[str, Any]:
    vendors: list[dict[str, Any]] = []
    for i in range(n_vendors - 4):
        kind = i % 13
        vendors.append(
            {
                "name": f"Vendor {i:02d}",
                "domains": [f"vendor{i:02d}.example"] + ([f"vendor{i:02d}-cdn.example"] if i % 5 == 0 else []),
                "seat": rng.choice(["US", "US", "GB", "IN", "CN", "DE", "CA", "JP", "SG"]),
                "same_entity": kind == 10,
                "mechanisms": _mechanisms(kind, rng),
            }
        )
    # vendors matched through the catalog's legal entity rather than a domain
    vendors += [
        {"name": "AWS", "legal_entity": "Amazon Web Services, Inc.", "seat": "US",
         "mechanisms": [{"type": "dpf", "certified_since": "2023-07-17", "scope": "both"}]},
        {"name": "OpenAI", "legal_entity": "OpenAI, L.L.C.", "seat": "US",
         "mechanisms": [{"type": "scc", "module": 2, "signed": "2024-02-15", "tia": "2024-02-15"}]},
        {"name": "Google", "legal_entity": "Google LLC", "seat": "US",
         "mechanisms": [{"type": "dpf", "certified_since": "2023-07-17"}]},
        {"name": "Cloudflare", "legal_entity": "Cloudflare, Inc.", "seat": "US", "mechanisms": []},
    ]  # fmt: skip
    systems = [
        {"name": f"sys{i:02d}", "data_categories": list(CATEGORIES[i % len(CATEGORIES)]), "nis2_scope": i % 3 != 0}
        for i in range(20)
    ]
    waivers = [
        {"system": f"sys{i:02d}", "destination": f"Vendor {i + 11:02d}", "justification": "migration",
         "approved_by": "DPO", "granted": "2022-01-01", "expires": "2025-12-31"}
        for i in range(0, 20, 4)
    ]  # fmt: skip
    suppliers = [
        {"vendor": v["name"], "approved_on": "2024-06-01", "review_due": "2026-06-01" if k % 3 else "2025-06-01"}
        for k, v in enumerate(vendors)
        if k % 2 == 0
    ]
    return {
        "systems": systems,
        "vendors": vendors,
        "waivers": waivers,
        "approved_suppliers": suppliers,
        "nis2_entity": "important",
    }


def _country(rng: random.Random) -> str | None:
    r = rng.random()
    if r < 0.35:
        return rng.choice(EEA)
    if r < 0.50:
        return rng.choice(ADEQUATE)
    if r < 0.80:
        return "US"
    if r < 0.95:
        return rng.choice(OTHER)
    if r < 0.97:
        return rng.choice(REVIEW)
    return None


def make_destinations(rng: random.Random, register: dict[str, Any], n: int) -> list[Any]:
    from monitor.records import Destination

    domains = [d for v in register["vendors"] for d in v.get("domains", [])]
    out: list[Destination] = []
    seen: set[Destination] = set()
    while len(out) < n:
        r = rng.random()
        ip = f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        if r < 0.20:  # catalog-like provider: the region (or edge) decides, not the address
            prov, entity, seat, region, rcountry, edge = rng.choice(PROVIDERS)
            d = Destination(
                host=f"api{rng.randrange(50)}.{prov.lower().replace(' ', '')}.example", ip=ip,
                located_country=rng.choice(EEA + ["US"]), provider=prov, legal_entity=entity, provider_seat=seat,
                region=region, region_country=rcountry, edge=edge, confidence="high" if rcountry else "none",
            )  # fmt: skip
        else:
            host = (
                f"h{rng.randrange(40)}.{rng.choice(domains)}"
                if r < 0.75
                else (f"svc{rng.randrange(10**5)}.example{rng.randrange(300)}.com" if r < 0.95 else None)
            )
            country = _country(rng)
            located = rng.random() < 0.8
            d = Destination(
                host=host, ip=ip,
                located_country=country if located else None,
                registered_country=country if not located or rng.random() < 0.5 else rng.choice(EEA + ["US"]),
                located_city=rng.choice(["Kyrenia", "Nicosia"]) if country == "CY" else None,
                confidence="medium" if located else "low",
            )  # fmt: skip
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


def make_keys(unique: int, seed: int) -> tuple[dict[str, Any], list[tuple[Any, Any, dt.date]]]:
    """The register and `unique` distinct (System, Destination, day) keys."""
    from monitor.records import System

    rng = random.Random(seed)
    register = make_register(rng)
    systems = [System(s["name"], tuple(s["data_categories"]), nis2_scope=s["nis2_scope"]) for s in register["systems"]]
    dests = make_destinations(rng, register, max(1000, unique // 20))
    span = (END - START).days
    keys: list[tuple[Any, Any, dt.date]] = []
    seen: set[tuple[str, Any, dt.date]] = set()
    while len(keys) < unique:
        s, d = rng.choice(systems), rng.choice(dests)
        day = START + dt.timedelta(days=rng.randrange(span + 1))
        if (s.name, d, day) not in seen:
            seen.add((s.name, d, day))
            keys.append((s, d, day))
    return register, keys


def call_order(unique: int, calls: int, seed: int) -> list[int]:
    """Every key once, then repeats skewed toward popular keys (Zipf-like), shuffled together."""
    rng = random.Random(seed + 1)
    weights = [1.0 / (i + 1) ** 0.8 for i in range(unique)]
    order = list(range(unique)) + rng.choices(range(unique), weights=weights, k=max(0, calls - unique))
    rng.shuffle(order)
    return order


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_xborder(spec: dict[str, Any]) -> dict[str, Any]:
    from monitor.pipeline import Runtime
    from monitor.policy.evaluator import evaluate
    from monitor.policy.register import Register
    from monitor.policy.rulepack import load_pack
    from monitor.policy.vendors import RegisterIndex
    from monitor.settings import Config, Settings, default_rules_dir

    register_doc, keys = make_keys(spec["unique"], spec["seed"])
    order = call_order(spec["unique"], spec["calls"], spec["seed"])
    pack = load_pack(default_rules_dir())
    index = RegisterIndex(Register.model_validate(register_doc))

    # 1. the engine alone: vendor and register extras looked up beforehand
    prepared = []
    for s, d, day in keys:
        vendor = index.vendor(d)
        prepared.append((s, d, day, vendor, index.extras(s.name, d, vendor)))
    for s, d, day, vendor, extras in prepared[:2000]:  # warm-up, untimed
        evaluate(pack, s, d, day, vendor, extras)
    # verdicts are not kept: 100k of them alive (~4 KiB each, steps included) would slow the loop
    # through the garbage collector and count in the peak RSS meant for the cache below
    outcomes: Counter[str] = Counter()
    deciders: Counter[str] = Counter()
    nis2 = 0
    t0 = time.perf_counter()
    for s, d, day, vendor, extras in prepared:
        v = evaluate(pack, s, d, day, vendor, extras)
        outcomes[v.outcome.value] += 1
        deciders[v.rule_id] += 1
        nis2 += v.steps[-1].rule_id.startswith("nis2.")
    t_eval = time.perf_counter() - t0
    del prepared

    # 2. what an uncached pipeline call does: find the vendor, gather the extras, evaluate
    t0 = time.perf_counter()
    for s, d, day in keys:
        vendor = index.vendor(d)
        evaluate(pack, s, d, day, vendor, index.extras(s.name, d, vendor))
    t_full = time.perf_counter() - t0

    # 3. Runtime.verdict: the pipeline's cache; a rising daily volume for limited derogations
    rt = Runtime(
        config=Config(Settings(), None, ROOT), pack=pack, resolver=cast(Any, None), inventory=cast(Any, None),
        register=index, store=cast(Any, None),
    )  # fmt: skip
    seen: Counter[int] = Counter()
    t0 = time.perf_counter()
    for k in order:
        s, d, day = keys[k]
        seen[k] += 1
        rt.verdict(s, d, day, seen[k])
    t_cached = time.perf_counter() - t0
    misses = len(rt._verdicts)  # one entry per evaluation (the cache never filled up here)
    limited = sum(1 for s, d, day in keys if index.has_derogation_limit(index.vendor(d)))

    return {
        "evaluate_s": t_eval,
        "full_s": t_full,
        "cached_s": t_cached,
        "keys": len(keys),
        "calls": len(order),
        "misses": misses,
        "keys_with_volume_limit": limited,
        "vendors": len(register_doc["vendors"]),
        "outcomes": dict(outcomes),
        "top_rules": deciders.most_common(12),
        "with_nis2_step": nis2,
        "pack_hash": pack.hash,
        "peak_rss_mib_self": _peak_rss_mib(),
    }


def child_baseline(spec: dict[str, Any]) -> dict[str, Any]:
    """A country blocklist: one dict lookup per key on a country already known."""
    _, keys = make_keys(spec["unique"], spec["seed"])
    order = call_order(spec["unique"], spec["calls"], spec["seed"])
    blocked = {c: c in OTHER or c == "US" for c in EEA + ADEQUATE + OTHER + REVIEW + ["US"]}
    countries = [d.country for _, d, _ in keys]
    t0 = time.perf_counter()
    decisions = [blocked.get(c, True) for c in countries]  # unknown country: block
    t_keys = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = 0
    for k in order:
        n += blocked.get(countries[k], True)
    t_calls = time.perf_counter() - t0
    return {
        "keys_s": t_keys,
        "calls_s": t_calls,
        "keys": len(keys),
        "calls": len(order),
        "blocked": sum(decisions),
        "peak_rss_mib_self": _peak_rss_mib(),
    }


def measure(kind: str, spec: dict[str, Any]) -> tuple[dict[str, Any], float, str]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import find_gnu_time  # the same peak-RSS method as the end-to-end bench

    OUT.mkdir(parents=True, exist_ok=True)
    res, rss = OUT / f"verdicts-{kind}.json", OUT / f"verdicts-{kind}.maxrss"
    cmd = [sys.executable, __file__, "--child", kind, "--spec", json.dumps(spec), "--result", str(res)]
    gnu_time = find_gnu_time()
    if gnu_time:
        cmd = [gnu_time, "-f", "%M", "-o", str(rss), *cmd]
    subprocess.run(cmd, check=True, cwd=ROOT)
    result = json.loads(res.read_text())
    if gnu_time:
        return result, int(rss.read_text().split()[-1]) / 1024, "GNU time"
    return result, float(result["peak_rss_mib_self"]), "getrusage(RUSAGE_SELF) in the child"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--unique", type=int, default=100_000, help="unique (system, destination, day) keys")
    ap.add_argument("--calls", type=int, default=1_000_000, help="Runtime.verdict calls, repeats included")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--child", choices=["xborder", "baseline"])
    ap.add_argument("--spec")
    ap.add_argument("--result")
    a = ap.parse_args(argv)
    if a.child:
        fn = child_xborder if a.child == "xborder" else child_baseline
        Path(a.result).write_text(json.dumps(fn(json.loads(a.spec))))
        return 0
    spec = {"unique": a.unique, "calls": max(a.calls, a.unique), "seed": a.seed}
    x, x_mib, rss_by = measure("xborder", spec)
    b, b_mib, _ = measure("baseline", spec)

    eval_rate = x["keys"] / x["evaluate_s"]
    full_rate = x["keys"] / x["full_s"]
    cached_rate = x["calls"] / x["cached_s"]
    hit_rate = 1 - x["misses"] / x["calls"]
    base_keys = b["keys"] / b["keys_s"]
    base_calls = b["calls"] / b["calls_s"]
    print(f"{x['keys']:,} unique (system, destination, day) keys; {x['vendors']} vendors; "
          f"rule pack {x['pack_hash'][:16]}")  # fmt: skip
    print("no peer tool judges transfers under GDPR Chapter V: the baseline is a country blocklist")
    print("(one dict lookup per key, what network tools do), to show what the legal reasoning costs")
    print(f"{'':40}{'decisions/s':>14}{'peak RSS MiB':>15}")
    print(f"{'evaluate (rule engine alone)':40}{eval_rate:>14,.0f}")
    print(f"{'vendor match + extras + evaluate':40}{full_rate:>14,.0f}")
    print(f"{'Runtime.verdict, ' + format(x['calls'], ',') + ' calls (cached)':40}{cached_rate:>14,.0f}"
          f"{x_mib:>15.1f}")  # fmt: skip
    print(f"{'country blocklist, unique keys':40}{base_keys:>14,.0f}")
    print(f"{'country blocklist, same ' + format(b['calls'], ',') + ' calls':40}{base_calls:>14,.0f}{b_mib:>15.1f}")
    print(
        f"cache hit rate {hit_rate:.1%} ({x['misses']:,} evaluations for {x['calls']:,} calls; "
        f"{x['keys_with_volume_limit']:,} keys go to a vendor with a derogation volume limit and miss by design)"
    )
    print(f"cost of the legal reasoning: one verdict = {base_keys / eval_rate:,.0f} blocklist lookups "
          f"(engine alone), {base_calls / cached_rate:,.0f} per call with the cache; "
          f"memory x{x_mib / b_mib:.2f} (+{x_mib - b_mib:.0f} MiB, peak RSS by {rss_by})")  # fmt: skip
    total = sum(x["outcomes"].values())
    mix = ", ".join(f"{k} {v / total:.0%}" for k, v in sorted(x["outcomes"].items(), key=lambda kv: -kv[1]))
    print(f"verdicts: {mix}; {x['with_nis2_step'] / total:.0%} with a NIS2 Art. 21(2)(d) step")
    doc = {"spec": spec, "xborder": x, "baseline": b, "xborder_rss_mib": x_mib, "baseline_rss_mib": b_mib,
           "rss_by": rss_by}  # fmt: skip
    (OUT / "verdicts-results.json").write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
