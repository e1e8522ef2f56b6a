"""Alert stage: provider lockouts, found in a batch's evidence rows (their 403/451, 429, 5xx and timeout counts).

The failure the seed documents describe: an AI provider locks a market (403/451 region blocks),
throttles (429) or fails (5xx, timeouts) and a critical system stops working, or quietly fails
over to another endpoint. A lockout alert says which systems are hit, how, and where their
traffic went instead; a failover to an endpoint whose transfer is not permitted is flagged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from monitor.alert.channels import SEVERITIES

# A window is a lockout when at least this many requests went to the provider and at least this
# share of them failed. Tuned for "the provider stopped answering", not single errors.
MIN_REQUESTS = 20
MIN_FAILED_SHARE = 0.5
SIGNALS = {"status_blocked": "403/451", "status_rate_limited": "429", "status_5xx": "5xx", "status_timeout": "timeout"}
LOCKOUT_SYSTEMS = ("critical",)  # system criticality that makes a lockout an incident


def _failed(row: dict[str, Any]) -> int:
    return sum(int(row.get(k) or 0) for k in SIGNALS)


class LockoutTracker:
    """Sums a window's requests and failures per (system, provider) across batches: `xborder run`
    commits a batch every fraction of a second, each far below MIN_REQUESTS on its own. Lives as
    long as the process (a restart starts the sums afresh); windows older than the last two go."""

    def __init__(self) -> None:
        self.hit: dict[tuple[str, str, Any], dict[str, Any]] = {}  # (system, provider, window) -> sums
        self.answered: dict[tuple[str, Any], list[dict[str, Any]]] = {}  # (system, window) -> rows

    def alerts(
        self, rows: Iterable[dict[str, Any]], criticality: dict[str, str], ai_providers: frozenset[str]
    ) -> list[dict[str, Any]]:
        """Lockout alerts for the (system, provider, window) sums this batch added to."""
        touched: set[tuple[str, str, Any]] = set()
        for r in rows:
            provider, system, window = r.get("provider"), r["system"], r["window_start"]
            if provider not in ai_providers:
                continue
            if int(r["egress_requests"] or 0) > _failed(r):
                self.answered.setdefault((system, window), []).append(r)
            if criticality.get(system) not in LOCKOUT_SYSTEMS:
                continue
            key = (system, provider, window)
            h = self.hit.setdefault(key, {"requests": 0, **{k: 0 for k in SIGNALS}, "rows": []})
            h["requests"] += int(r["requests"] or 0)
            for k in SIGNALS:
                h[k] += int(r.get(k) or 0)
            h["rows"].append(r)
            touched.add(key)
        self._prune()
        out = []
        for system, provider, window in sorted(touched, key=str):
            alert = _lockout(system, provider, self.hit[(system, provider, window)],
                             self.answered.get((system, window), []), ai_providers)  # fmt: skip
            if alert is not None:
                out.append(alert)
        return out

    def _prune(self) -> None:
        windows = sorted({k[2] for k in self.hit} | {k[1] for k in self.answered})
        if len(windows) > 2:
            keep = set(windows[-2:])
            self.hit = {k: v for k, v in self.hit.items() if k[2] in keep}
            self.answered = {k: v for k, v in self.answered.items() if k[1] in keep}


def _lockout(
    system: str, provider: str, h: dict[str, Any], answered: list[dict[str, Any]], ai: frozenset[str]
) -> dict[str, Any] | None:
    failed = sum(h[k] for k in SIGNALS)
    if h["requests"] < MIN_REQUESTS or failed < MIN_FAILED_SHARE * h["requests"]:
        return None
    failover = _failovers(answered, system, provider, ai)
    bad = [f for f in failover if f["outcome"] != "permitted"]
    counts = ", ".join(f"{label}: {h[k]}" for k, label in SIGNALS.items() if h[k])
    first = h["rows"][0]
    where = "; FAILOVER TO A NON-APPROVED JURISDICTION: " + ", ".join(
        f"{f['dest']} [{f['country'] or '??'}, {f['outcome']}]" for f in bad) if bad else (
        "; failed over to " + ", ".join(f"{f['dest']} [{f['country'] or '??'}]" for f in failover)
        if failover else "; no failover seen")  # fmt: skip
    summary = f"LOCKOUT [critical]: {provider} refuses {system} ({counts} of {h['requests']} requests){where}"
    return {
        "dedup_key": f"lockout|{system}|{provider}",
        "severity": SEVERITIES[-1],
        "summary": summary,
        "payload": {
            "kind": "lockout", "outcome": "lockout", "system": system, "systems_affected": [system],
            "provider": provider, "dest_host": first["dest_host"], "dest_ip": first["dest_ip"],
            "country": first["country"], "requests": h["requests"], "failed": failed,
            **{label: h[k] for k, label in SIGNALS.items()},
            "first_seen": min(r["first_seen"] for r in h["rows"]).isoformat(),
            "last_seen": max(r["last_seen"] for r in h["rows"]).isoformat(),
            "failover": failover, "failover_not_permitted": bool(bad),
            "explain": f"xborder transfers --system {system} --since {first['window_start'].date().isoformat()}",
        },
    }  # fmt: skip


def _failovers(rows: list[dict[str, Any]], system: str, provider: str, ai: frozenset[str]) -> list[dict[str, Any]]:
    """Where the system's AI traffic went that was answered: other AI providers, in the same window."""
    seen: dict[str, dict[str, Any]] = {}
    for r in rows:
        other = r.get("provider")
        if r["system"] != system or other == provider or other not in ai:
            continue
        if int(r["egress_requests"] or 0) <= _failed(r):
            continue
        dest = r["dest_host"] or r["dest_ip"]
        f = seen.setdefault(dest, {"dest": dest, "provider": other, "country": r["country"],
                                   "outcome": r["outcome"], "requests": 0})  # fmt: skip
        f["requests"] += int(r["egress_requests"] or 0)
    return sorted(seen.values(), key=lambda f: -f["requests"])
