"""Writes the demo inputs: a deterministic week of Squid access.log traffic and its config."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

WEEK = (2026, 47)
DEFAULT_LINES = 90_000
LOCAL_OFFSET_MIN = 60  # the shop runs on CET (UTC+1 all of November: no DST switch in the week)
MINUTES = 7 * 1440
CHUNK = 1 << 18  # lines formatted and written at a time
LOG_NAME = "access.log"
CONFIG_NAME = "xborder.yaml"


@dataclass(frozen=True)
class DemoInputs:
    config_path: Path
    log_path: Path
    lines_written: int
    garbage_lines: int
    garbage_at: tuple[int, ...]  # 1-based line numbers of the garbage lines
    week: str
    start: dt.date  # Monday
    end: dt.date  # Sunday


@dataclass(frozen=True)
class Dest:
    host: str
    ip: str
    country: str  # what iptocc.country_code(ip) must answer (RIR registration)


# Every destination with a fixed address. There is no mmdb in the demo, so the resolver falls back
# to iptocc (RIR registration data); each address is chosen so its registered country is the one the
# story needs (tests/unit/test_demo.py checks every entry). Marked "real" where the address is one
# the named service publishes or resolves to; all others are synthetic: any block registered in the
# right country, not a claim about where the company's servers are.
DESTS: dict[str, Dest] = {
    "adyen": Dest("beispielshop-checkout-live.adyenpayments.com", "82.199.87.129", "NL"),
    "klarna": Dest("api.klarna.com", "194.68.93.20", "SE"),
    "stripe": Dest("api.stripe.com", "54.187.174.169", "US"),  # real: Stripe's published list
    "fraud": Dest("api.fraudsignal.example", "34.120.10.10", "US"),  # fictional vendor
    "openai": Dest("api.openai.com", "162.159.140.245", "US"),  # real: Cloudflare front
    "anthropic": Dest("api.anthropic.com", "160.79.104.10", "US"),  # real: 160.79.104.0/23
    "mistral": Dest("api.eu.mistral.ai", "51.159.100.20", "FR"),
    "deepseek": Dest("api.deepseek.com", "116.205.40.114", "CN"),
    "vectordb": Dest("eu-central.vektorwerk.example", "88.99.40.17", "DE"),  # fictional
    "hrsaas": Dest("api.peoplecloud.example", "35.160.12.34", "US"),  # fictional
    "payroll": Dest("api.lohnwerk.example", "195.186.208.40", "CH"),  # fictional
    "elearning": Dest("api.sakura-learning.example", "153.120.34.56", "JP"),  # fictional
    "pypi": Dest("pypi.org", "151.101.0.223", "US"),  # real
    "pyfiles": Dest("files.pythonhosted.org", "151.101.1.63", "US"),
    "github": Dest("github.com", "140.82.121.3", "US"),  # real
    "npm": Dest("registry.npmjs.org", "104.16.24.34", "US"),  # real
    "debian": Dest("deb.debian.org", "151.101.2.132", "US"),  # real: Fastly
    "ipify": Dest("api.ipify.org", "104.237.62.212", "US"),
    # competitors scraped by the pricing system (fictional shops)
    "rival_ru": Dest("www.tovary-deshevo.example", "77.88.55.60", "RU"),
    "rival_br": Dest("www.preco-baixo.example", "200.147.3.157", "BR"),
    "rival_gb": Dest("www.bargain-hall.example", "81.2.69.160", "GB"),
    "rival_pl": Dest("www.tanie-zakupy.example", "212.77.98.9", "PL"),
    "rival_tr": Dest("www.ucuz-magaza.example", "88.255.99.1", "TR"),
    "rival_in": Dest("www.sasta-bazaar.example", "49.44.107.2", "IN"),
    "rival_it": Dest("www.prezzi-bassi.example", "151.1.1.1", "IT"),
    "rival_us": Dest("www.dealwarehouse.example", "172.67.1.1", "US"),
}


@dataclass(frozen=True)
class Variant:
    """One kind of log line: everything but time, client, size and elapsed is fixed."""

    weight: float
    code: str  # %Ss/%03>Hs
    tail: str  # %rm %ru %[un %Sh/%<a %mt
    size: tuple[float, float]  # log-normal mu, sigma of %<st; mu 0: always 0
    elapsed: tuple[float, float]  # log-normal mu, sigma of %tr (ms); mu 0: always 0


def tunnel(d: str, w: float, *, size: float = 8.5, el: float = 6.0, user: str = "-") -> Variant:
    x = DESTS[d]
    return Variant(
        w,
        "TCP_TUNNEL/200",
        f"CONNECT {x.host}:443 {user} HIER_DIRECT/{x.ip} -",
        (size, 1.0),
        (el, 0.9),
    )


def http(
    d: str,
    w: float,
    path: str,
    *,
    method: str = "GET",
    mime: str = "text/html",
    code: str = "TCP_MISS/200",
    size: float = 9.0,
    user: str = "-",
) -> Variant:
    x = DESTS[d]
    return Variant(
        w,
        code,
        f"{method} http://{x.host}{path} {user} HIER_DIRECT/{x.ip} {mime}",
        (size, 0.8),
        (5.0, 0.7),
    )


def denied(d: str, w: float) -> Variant:
    return Variant(
        w,
        "TCP_DENIED/403",
        f"CONNECT {DESTS[d].host}:443 - HIER_NONE/- text/html",
        (8.14, 0.004),
        (0.0, 0.0),
    )


def hit(d: str, w: float, path: str, mime: str) -> Variant:
    return Variant(
        w,
        "TCP_MEM_HIT/200",
        f"GET http://{DESTS[d].host}{path} - HIER_NONE/- {mime}",
        (10.5, 1.2),
        (0.0, 0.0),
    )


ERROR = Variant(
    1.0,
    "NONE_NONE/000",
    "- error:transaction-end-before-headers - HIER_NONE/- -",
    (0.0, 0.0),
    (0.0, 0.0),
)


@dataclass(frozen=True)
class Flow:
    clients: tuple[str, ...]
    share: float  # relative lines per week if active the whole week
    profile: str
    variants: tuple[Variant, ...]
    active: tuple[float, float] = (0.0, 8.0)  # local days since Monday 00:00


def _hosts(net: str, first: int, count: int) -> tuple[str, ...]:
    return tuple(f"{net}.{i}" for i in range(first, first + count))


CHECKOUT, SUPPORT = _hosts("10.20.1", 11, 6), _hosts("10.20.2", 21, 3)
RECO, PRICING = _hosts("10.20.3", 31, 4), _hosts("10.20.4", 41, 2)
HR, BUILD = _hosts("10.20.5", 51, 2), _hosts("10.20.9", 10, 16)
THURSDAY_PLUGIN = 3 + 10.7 / 24  # Thu 10:42 local: the fraud-scoring plugin goes live
WEDNESDAY_CUTOVER = 2.5  # Wed 12:00 local: support-chat moves from Anthropic to Mistral (EU)

FLOWS: tuple[Flow, ...] = (
    Flow(
        CHECKOUT,
        14.0,
        "shop",
        (tunnel("stripe", 7, size=8.3), tunnel("stripe", 3, user="svc-checkout")),
    ),
    Flow(CHECKOUT, 12.0, "shop", (tunnel("adyen", 1, size=8.7),)),
    Flow(CHECKOUT, 6.0, "shop", (tunnel("klarna", 1, size=8.9),)),
    Flow(CHECKOUT, 5.0, "shop", (tunnel("fraud", 1, size=7.6, el=5.2),), (THURSDAY_PLUGIN, 8.0)),
    Flow(SUPPORT, 8.0, "shop", (tunnel("openai", 1, size=9.5, el=8.0),)),
    Flow(SUPPORT, 8.0, "shop", (tunnel("anthropic", 1, size=9.6, el=8.2),), (0.0, WEDNESDAY_CUTOVER)),
    Flow(SUPPORT, 8.0, "shop", (tunnel("mistral", 1, size=9.4, el=7.5),), (WEDNESDAY_CUTOVER, 8.0)),
    Flow(RECO, 12.0, "shop", (tunnel("vectordb", 1, size=9.8, el=4.5),)),
    Flow(RECO, 2.0, "shop", (tunnel("deepseek", 1, size=8.8, el=7.0),)),
    Flow(
        PRICING,
        9.0,
        "batch",
        tuple(
            v
            for c in ("br", "gb", "pl", "tr", "in", "it", "us")
            for v in (
                tunnel(f"rival_{c}", 3, size=11.0, el=6.5),
                http(f"rival_{c}", 1, f"/produkte/kategorie/{c}?page=1"),
            )
        )
        + (denied("rival_ru", 2),),
    ),
    Flow(HR, 4.0, "office", (tunnel("hrsaas", 3), tunnel("hrsaas", 1, user="hr-sync"))),
    Flow(HR, 1.5, "office", (tunnel("payroll", 1, size=9.2),)),
    Flow(
        HR,
        1.0,
        "office",
        (
            tunnel("elearning", 3),
            http(
                "elearning",
                1,
                "/api/v1/enrolments",
                method="POST",
                mime="application/json",
                size=6.7,
                user="hr-sync",
            ),
        ),
    ),
    Flow(
        BUILD,
        15.0,
        "build",
        (
            tunnel("pypi", 3, size=9.5),
            tunnel("pyfiles", 6, size=13.0, el=7.0),
            tunnel("github", 4, size=11.0),
            tunnel("github", 1, user="ci-runner"),
            tunnel("npm", 4, size=10.5),
            http("debian", 1, "/debian/dists/bookworm/InRelease", mime="application/octet-stream"),
            hit(
                "debian",
                2,
                "/debian/pool/main/c/curl/libcurl4_7.88.1-10+deb12u8_amd64.deb",
                "application/vnd.debian.binary-package",
            ),
        ),
    ),
    Flow(("10.20.1.12", "10.20.2.22", "10.20.9.14"), 0.3, "flat", (ERROR,)),
    Flow(("10.99.0.7",), 0.03, "flat", (tunnel("ipify", 1, size=7.0),)),
)

# hourly weights (local time) and the weekend factor of each traffic shape
# fmt: off
PROFILES: dict[str, tuple[tuple[float, ...], float]] = {
    "shop": ((3, 2, 1.5, 1, 1, 1.5, 3, 6, 9, 11, 12, 12, 11, 10, 10, 10, 11, 12, 14, 16, 16, 13,
              9, 5), 0.7),
    "office": ((0.3, 0.2, 0.2, 0.2, 0.2, 0.3, 1, 5, 12, 14, 14, 13, 10, 13, 14, 13, 11, 7, 3, 1.5,
                1, 0.7, 0.5, 0.4), 0.06),
    "batch": ((8, 14, 16, 16, 14, 8, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 5), 0.9),
    "build": ((1, 3, 9, 4, 1, 0.5, 1, 4, 10, 12, 12, 11, 9, 12, 13, 12, 10, 6, 3, 2, 1, 1, 1, 1),
              0.15),
    "flat": ((1,) * 24, 1.0),
}
# fmt: on

# Non-blank lines no Squid parser may accept, each for a different reason.
GARBAGE: tuple[bytes, ...] = (
    b"1794830000.412    245 10.20.1.13 TCP_TUNNEL/200 53",  # truncated (disk full mid-write)
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\xd2\x9f\xe4\x01\xbb\x8c\x00\x00\x1e\xc0\x2b",
    b"17949x1234.567    118 10.20.3.31 TCP_TUNNEL/200 18234 CONNECT"
    b" eu-central.vektorwerk.example:443 - HIER_DIRECT/88.99.40.17 -",  # non-numeric timestamp
    b"\x00" * 48,  # NUL run left by a crash before the page cache was flushed
    # an Apache combined-format line from a sidecar logging to the same file
    b'10.20.2.21 - - [19/Nov/2026:10:15:02 +0100] "GET /health HTTP/1.1" 200 2 "-" "probe/1.30"',
    b"1795100000.000     12 10.20.1.14 TCP_MISS/2O0 5120 GET http://api.klarna.com/ - HIER_DIRECT/"
    b"194.68.93.20 text/html",  # letter O in the status
    b"2026/11/21 03:12:44 kid1| WARNING: Closing open FD   23",  # cache.log line in the wrong file
)


def week_bounds() -> tuple[dt.date, dt.date, str]:
    monday = dt.date.fromisocalendar(WEEK[0], WEEK[1], 1)
    return monday, monday + dt.timedelta(days=6), f"{WEEK[0]}-W{WEEK[1]:02d}"


def _intensity() -> npt.NDArray[np.float64]:
    """Probability of each (flow, UTC minute of the week) cell, flow-major."""
    local = np.arange(MINUTES, dtype=np.float64) + LOCAL_OFFSET_MIN
    hour = (local % 1440) / 60
    weekend = (local // 1440) % 7 >= 5
    rows: list[npt.NDArray[np.float64]] = []
    for f in FLOWS:
        hourly, weekend_factor = PROFILES[f.profile]
        w = np.interp(hour, np.arange(25), np.array(hourly + hourly[:1], dtype=np.float64))
        w = w * np.where(weekend, weekend_factor, 1.0)
        w = f.share * w / w.sum()
        w[(local < f.active[0] * 1440) | (local >= f.active[1] * 1440)] = 0.0
        rows.append(w)
    p: npt.NDArray[np.float64] = np.concatenate(rows)
    p /= p.sum()
    return p


Arr = npt.NDArray[np.int64]


def _sample(rng: np.random.Generator, n: int) -> tuple[Arr, Arr, Arr, Arr, Arr]:
    """(ms into the week, variant id, client id, size, elapsed) per line, sorted by time."""
    counts = rng.multinomial(n, _intensity())
    cell = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    ms = (cell % MINUTES) * 60_000 + rng.integers(0, 60_000, n, dtype=np.int64)
    per_flow = counts.reshape(len(FLOWS), MINUTES).sum(axis=1)
    var = np.empty(n, dtype=np.int64)
    client = np.empty(n, dtype=np.int64)
    vbase = cbase = lo = 0
    for f, k in zip(FLOWS, per_flow, strict=True):
        hi = lo + int(k)
        w = np.array([v.weight for v in f.variants])
        var[lo:hi] = vbase + rng.choice(len(f.variants), size=hi - lo, p=w / w.sum())
        client[lo:hi] = cbase + rng.integers(0, len(f.clients), hi - lo)
        vbase, cbase, lo = vbase + len(f.variants), cbase + len(f.clients), hi
    variants = [v for f in FLOWS for v in f.variants]

    def lognormal(params: list[tuple[float, float]]) -> Arr:
        mu = np.array([p[0] for p in params])[var]
        sigma = np.array([p[1] for p in params])[var]
        x = np.exp(mu + sigma * rng.standard_normal(n))
        return np.where(mu == 0.0, 0, x).astype(np.int64)

    size = lognormal([v.size for v in variants])
    elapsed = lognormal([v.elapsed for v in variants])
    order = np.argsort(ms, kind="stable")
    return ms[order], var[order], client[order], size[order], elapsed[order]


def _format(ts_ms: Arr, var: Arr, client: Arr, size: Arr, elapsed: Arr) -> Any:
    """One Arrow string array of whole lines (each ending in a newline), built in C++ kernels."""
    codes = pa.array([v.code for f in FLOWS for v in f.variants])
    tails = pa.array([v.tail + "\n" for f in FLOWS for v in f.variants])
    clients = pa.array([c for f in FLOWS for c in f.clients])
    ts = pc.cast(pa.array(ts_ms), pa.string())  # 13 digits for any time in 2001..2286
    parts = [
        pc.binary_join_element_wise(pc.utf8_slice_codeunits(ts, 0, 10), pc.utf8_slice_codeunits(ts, 10, 13), "."),
        pc.utf8_lpad(pc.cast(pa.array(elapsed), pa.string()), width=6, padding=" "),
        clients.take(pa.array(client)),
        codes.take(pa.array(var)),
        pc.cast(pa.array(size), pa.string()),
        tails.take(pa.array(var)),
    ]
    return pc.binary_join_element_wise(*parts, " ")


def write_log(path: Path, *, lines: int, seed: int) -> tuple[int, ...]:
    """Write exactly `lines` lines to `path`; return the 1-based line numbers of the garbage."""
    garbage = GARBAGE if lines >= 100 else ()
    g_at = tuple(sorted({lines * (k + 1) // (len(garbage) + 1) for k in range(len(garbage))}))
    n_good = lines - len(g_at)
    monday, _, _ = week_bounds()
    start_ms = int(dt.datetime(monday.year, monday.month, monday.day, tzinfo=dt.UTC).timestamp())
    start_ms *= 1000
    ms, var, client, size, elapsed = _sample(np.random.default_rng(seed), n_good)
    # garbage line k comes after this many good lines
    before = [(at - 1 - k, GARBAGE[k] + b"\n") for k, at in enumerate(g_at)]
    with path.open("wb") as out:
        for c0 in range(0, n_good, CHUNK):
            c1 = min(c0 + CHUNK, n_good)
            sl = slice(c0, c1)
            arr = _format(start_ms + ms[sl], var[sl], client[sl], size[sl], elapsed[sl])
            offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=len(arr) + 1, offset=arr.offset * 4)
            data = memoryview(arr.buffers()[2])
            pos = int(offsets[0])
            for good_before, raw in before:
                if c0 <= good_before < c1:
                    cut = int(offsets[good_before - c0])
                    out.write(data[pos:cut])
                    out.write(raw)
                    pos = cut
            out.write(data[pos : int(offsets[-1])])
        for good_before, raw in before:
            if good_before >= n_good:
                out.write(raw)
    return g_at


def demo_config_text() -> str:
    """The demo shop's config (systems, vendors and their mechanisms), shipped as monitor/demo_config.yaml."""
    return files("monitor").joinpath("demo_config.yaml").read_text(encoding="utf-8")


def write_demo_inputs(out: Path, *, lines: int | None = None, seed: int = 2026) -> DemoInputs:
    """Write out/access.log (a week of Squid traffic) and out/xborder.yaml (the shop's register)."""
    out.mkdir(parents=True, exist_ok=True)
    n = DEFAULT_LINES if lines is None else lines
    if n < 0:
        raise ValueError(f"lines must be >= 0, got {n}")
    log_path, config_path = out / LOG_NAME, out / CONFIG_NAME
    g_at = write_log(log_path, lines=n, seed=seed)
    config_path.write_text(demo_config_text(), encoding="utf-8")
    monday, sunday, week = week_bounds()
    return DemoInputs(config_path, log_path, n, len(g_at), g_at, week, monday, sunday)
