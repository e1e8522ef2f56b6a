"""Benchmark: latency from a line appended to the log to the syslog listener receiving its alert, under load.

    .venv/bin/python bench/alert_latency.py                   # 20,000 other lines/s for 20 s
    .venv/bin/python bench/alert_latency.py --rate 5000 --seconds 5

`xborder run` follows a Squid log in a subprocess and alerts over syslog (RFC 5424, TCP, octet
counting, JSON message) to the test listener of tests/support/syslogd.py. A writer appends the
bench/follow.py traffic (200 clients to 300 destinations in the EEA: evidence, no alerts) at
`--rate` lines/s in 50 ms slices, and every `--every` seconds one line to a new address in the US
(an unauthorized transfer: its own alert). Latency of an alert = the listener's receive time minus
the time its line was written. Prints p50/p99/max. Not a unit test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.syslogd import Syslogd  # noqa: E402 - after the path is set

LINE = "{ts:.3f} 12 10.20.{a}.{b} TCP_TUNNEL/200 5321 CONNECT h{h}.example:443 - HIER_DIRECT/175.16.199.{c} -\n"
ALERTING = "{ts:.3f} 12 10.20.1.5 TCP_TUNNEL/200 900 CONNECT {ip}:443 - HIER_DIRECT/{ip} -\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rate", type=int, default=20_000, help="other lines per second")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--every", type=float, default=0.25, help="seconds between alerting lines")
    a = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="xborder-alert-latency-"))
    log = work / "access.log"
    with Syslogd("tcp") as listener:
        (work / "xborder.yaml").write_text(
            "store: {url: 'sqlite:///x.db'}\nrun: {poll_seconds: 0.1}\n"
            "systems: [{name: lan, sources: [10.0.0.0/8], data_categories: [customer-personal]}]\n"
            "overrides: [{cidr: 175.16.199.0/24, country: DE, provider: Bench GmbH}]\n"
            f"sources: [{{collector: squid, paths: ['{log}']}}]\n"
            "alerts:\n  jsonl: null\n  stderr: false\n  channels:\n"
            f"    - {{name: soc, type: syslog, transport: tcp, port: {listener.port}, format: json}}\n",
            encoding="utf-8",
        )
        log.write_text("")
        follower = subprocess.Popen([sys.executable, "-m", "monitor", "-c", str(work / "xborder.yaml"), "run"],
                                    cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(3)  # start-up
        written: dict[str, float] = {}  # alerting address -> when its line was written
        slice_s, per_slice = 0.05, max(1, int(a.rate * 0.05))
        n, k, t_end = 0, 0, time.monotonic() + a.seconds
        next_alert = time.monotonic()
        with open(log, "a", encoding="utf-8") as fh:
            next_at = time.monotonic()
            while time.monotonic() < t_end:
                now = time.time()
                chunk = "".join(LINE.format(ts=now, a=i % 200, b=i % 250, h=i % 300, c=i % 200)
                                for i in range(n, n + per_slice))  # fmt: skip
                ip = None
                if time.monotonic() >= next_alert:
                    ip = f"8.8.{k // 250}.{k % 250 + 1}"
                    chunk += ALERTING.format(ts=now, ip=ip)
                    k += 1
                    next_alert += a.every
                fh.write(chunk)
                fh.flush()
                if ip is not None:
                    written[ip] = time.monotonic()
                n += per_slice
                next_at += slice_s
                time.sleep(max(0.0, next_at - time.monotonic()))
        deadline = time.monotonic() + 30
        while len(listener.messages) < len(written) and time.monotonic() < deadline:
            time.sleep(0.1)
        follower.terminate()
        follower.wait(timeout=30)
        received: dict[str, float] = {}
        for m in listener.messages:
            if m.parsed:
                body = json.loads(m.parsed["msg"])
                received.setdefault(str(body.get("dest_ip")), m.at)
    lat = sorted(received[ip] - t for ip, t in written.items() if ip in received)
    missing = len(written) - len(lat)
    if not lat:
        print("no alert arrived")
        return 1
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
    res = {"rate": a.rate, "seconds": a.seconds, "alerts": len(written), "received": len(lat), "missing": missing,
           "p50": p(0.5), "p99": p(0.99), "max": lat[-1]}  # fmt: skip
    print(f"{len(written)} alerting lines among {n:,} others at {a.rate:,}/s: {len(lat)} alerts received "
          f"({missing} missing); latency p50 {res['p50']:.2f} s, p99 {res['p99']:.2f} s, max {res['max']:.2f} s")
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "alert-latency-results.json").write_text(json.dumps(res, indent=2))
    return 0 if missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
