"""Benchmark: end-to-end Squid ingest by xborder against GoAccess on the same generated log.

    .venv/bin/python bench/run.py              # 1M lines (what `make bench` runs)
    .venv/bin/python bench/run.py --lines 50000   # quick check

Each tool runs in its own subprocess; its wall time and peak RSS (from the rusage the kernel
returns for exactly that child, os.wait4 — the per-run form of getrusage(RUSAGE_CHILDREN)) are
measured from outside. Results are printed as a table with xborder/GoAccess ratios and written to
bench/out/results.json. Not a unit test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"

# GoAccess's predefined SQUID format expects a syslog prefix ("Mon DD HH:MM:SS host squid[pid]:")
# before each line; for a plain access.log the same fields are spelled out. %~ eats the padding
# of %6tr; %e is the proxy user, %M the MIME type.
GOACCESS_FORMAT = "%x.%^ %~%L %h %^/%s %b %m %U %e %^ %M"


@dataclass
class Run:
    tool: str
    seconds: float
    max_rss_kib: int
    returncode: int
    lines: int
    rss_by: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def lines_per_s(self) -> float:
        return self.lines / self.seconds if self.seconds > 0 else 0.0

    @property
    def rss_mib(self) -> float:
        return self.max_rss_kib / 1024


def find_gnu_time() -> str | None:
    exe = shutil.which("time") or shutil.which("/usr/bin/time")
    if not exe:
        return None
    probe = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    return exe if "GNU" in probe.stdout + probe.stderr else None


def measure(tool: str, cmd: list[str], lines: int, log_dir: Path, cwd: Path) -> Run:
    """Run `cmd` as a child: wall time and the child's peak RSS (ru_maxrss, KiB on Linux).

    The kernel's ru_maxrss of a child also covers the image it had before exec: a child of this
    Python process starts at this process's size (after generating the log: >100 MiB), which would
    hide a small peer's real peak. So the child is started by GNU time, which forks it from its own
    ~2 MiB image and reports the same counter (wait4 rusage, i.e. RUSAGE_CHILDREN of one child).
    Without GNU time the child is waited for here with os.wait4 and the floor is said.
    """
    out_path, err_path = log_dir / f"{tool}.stdout", log_dir / f"{tool}.stderr"
    gnu_time = find_gnu_time()
    rss_file = log_dir / f"{tool}.maxrss"
    rss_file.unlink(missing_ok=True)
    if gnu_time:
        cmd = [gnu_time, "-f", "%M", "-o", str(rss_file), *cmd]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    rss, rss_by = usage.ru_maxrss, "os.wait4"
    if gnu_time:
        text = rss_file.read_text(encoding="utf-8", errors="replace") if rss_file.is_file() else ""
        # GNU time writes "Command exited with non-zero status N" before the figure on failure
        figures = [w for w in text.split() if w.isdigit()]
        rss, rss_by = (int(figures[-1]), "GNU time") if figures else (rss, rss_by)
    if rss_by == "os.wait4":
        floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rss_by = f"os.wait4 (floor: this process's {floor:.0f} MiB)"
    return Run(tool, seconds, rss, proc.returncode, lines, rss_by)


def tail(path: Path, n: int = 15) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join("    " + line for line in text[-n:])


# ---------------------------------------------------------------- xborder (child side)


def child_schema(config_path: str) -> None:
    from monitor.settings import load_config
    from monitor.store.session import open_store

    open_store(load_config(config_path).store_url).kw["bind"].dispose()


def empty_store(config_path: Path) -> Path:
    """A store with the schema and nothing else, made once and copied before each xborder run.

    Each run needs an empty store (with the last run's checkpoint the pipeline would resume at the
    end of the file), but creating the schema is one-time set-up, not ingest: it runs the Alembic
    migrations, about 0.5 s that a store in use never pays again.
    """
    template = config_path.parent / "empty-store.db"
    _drop_store(config_path)
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child-schema", str(config_path)], check=True)
    shutil.move(config_path.parent / "xborder.db", template)
    return template


def _drop_store(config_path: Path) -> None:
    for name in ("xborder.db", "xborder.db-wal", "xborder.db-shm", "alerts.jsonl"):
        (config_path.parent / name).unlink(missing_ok=True)


def run_xborder(config_path: Path, log_path: Path, lines: int, out: Path, template: Path) -> Run:
    _drop_store(config_path)
    shutil.copyfile(template, config_path.parent / "xborder.db")
    # the command an operator runs; its JSON summary has the counts and the in-process seconds
    cmd = [sys.executable, "-m", "monitor", "--config", str(config_path), "ingest", "squid", str(log_path)]
    run = measure("xborder", [*cmd, "--final", "--format", "json"], lines, out, config_path.parent)
    try:
        summary = json.loads((out / "xborder.stdout").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return run
    files = summary.get("rows", [])
    run.details = {
        "lines_read": sum(f["lines"] for f in files),
        "rows": sum(f["rows"] for f in files),
        "quarantined": sum(f["quarantined"] for f in files),
        "ingest_seconds": summary.get("seconds"),
    }
    return run


# ---------------------------------------------------------------- GoAccess (peer)


def find_goaccess() -> tuple[str | None, str]:
    """The goaccess binary, installing the distribution package when we are root and it is missing."""
    exe = shutil.which("goaccess")
    if exe:
        return exe, "found"
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "not installed (install the goaccess package; needs root to do it here)"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (
        ["apt-get", "install", "-y", "-qq", "goaccess"],
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "goaccess"],
    ):
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        exe = shutil.which("goaccess")
        if exe:
            return exe, "installed with apt-get"
    return None, "apt-get install goaccess failed"


def run_goaccess(exe: str, log_path: Path, lines: int, out: Path) -> Run:
    report = out / "goaccess.json"
    report.unlink(missing_ok=True)
    cmd = [
        exe,
        str(log_path),
        "--no-global-config",
        "--no-progress",
        f"--log-format={GOACCESS_FORMAT}",
        "--date-format=%s",
        "--time-format=%s",
        "-o",
        str(report),
    ]
    run = measure("goaccess", cmd, lines, out, out)
    if report.is_file():
        general = json.loads(report.read_text(encoding="utf-8")).get("general", {})
        run.details = {k: general.get(k) for k in ("total_requests", "valid_requests", "failed_requests", "log_size")}
        run.details["version"] = subprocess.run(
            [exe, "--version"], capture_output=True, text=True, check=False
        ).stdout.splitlines()[0:1]
    return run


# ---------------------------------------------------------------- report


def check_xborder(run: Run, lines: int, garbage: int) -> list[str]:
    d = run.details
    if run.returncode != 0 or not d:
        return [f"xborder FAILED (exit {run.returncode}); stderr tail:\n" + tail(OUT / "xborder.stderr")]
    notes = [
        f"xborder: read {d['lines_read']} lines -> {d['rows']} rows, "
        f"{d['quarantined']} quarantined (generator wrote {garbage} garbage lines); "
        f"in-process ingest {d['ingest_seconds']:.2f}s of {run.seconds:.2f}s "
        f"(the rest: interpreter start, imports, config, exit)"
    ]
    if d["lines_read"] != lines:
        notes.append(f"  WARNING: xborder read {d['lines_read']} lines, the file has {lines}")
    if d["quarantined"] is not None and d["quarantined"] != garbage:
        notes.append(f"  WARNING: {d['quarantined']} quarantined, expected {garbage}")
    return notes


def check_goaccess(run: Run, lines: int) -> list[str]:
    d = run.details
    if run.returncode != 0 or not d:
        return [f"goaccess FAILED (exit {run.returncode}); stderr tail:\n" + tail(OUT / "goaccess.stderr")]
    total = d["total_requests"] or 0
    notes = [
        f"goaccess: {total} of {lines} lines counted, {d['valid_requests']} valid, "
        f"{d['failed_requests']} failed (Squid's status 000 error lines and the garbage)"
    ]
    if total < lines:
        # GoAccess reads lines as C strings: one made only of NUL bytes counts as empty
        notes.append(f"  note: GoAccess skipped {lines - total} line(s) without counting them")
    return notes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000, help="lines to generate (1000000)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--no-peer", action="store_true", help="skip GoAccess")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of both tools; the ratio is the median (3)")
    ap.add_argument("--child-schema", metavar="CONFIG", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_schema:
        child_schema(args.child_schema)
        return 0

    sys.path.insert(0, str(ROOT))
    from monitor.demo import write_demo_inputs

    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    demo = write_demo_inputs(OUT, lines=args.lines, seed=args.seed)
    gen_s = time.perf_counter() - t0
    size_mib = demo.log_path.stat().st_size / 2**20
    print(
        f"generated {demo.lines_written:,} lines ({size_mib:.0f} MiB) in {gen_s:.2f}s "
        f"= {demo.lines_written / gen_s:,.0f} lines/s -> {demo.log_path}"
    )

    exe: str | None = None
    peer_status = "skipped (--no-peer)"
    if not args.no_peer:
        exe, peer_status = find_goaccess()
    # Rounds alternate which tool goes first, and the ratio is taken per round: on a shared
    # machine the speed drifts by tens of percent within a minute, and one pair of runs
    # measured a minute apart gave ratios from x2.5 to x3.1 for the same code.
    template = empty_store(demo.config_path)
    # the generated log is written back to disk before anything is timed: otherwise the first
    # run shares the machine with the kernel flushing 116 MiB of dirty pages
    os.sync()
    runs: list[Run] = []
    rounds: list[dict[str, float]] = []
    notes: list[str] = []
    for n in range(args.rounds):
        pair: dict[str, Run] = {}
        order = ["xborder", "goaccess"] if n % 2 == 0 else ["goaccess", "xborder"]
        for tool in order:
            if tool == "xborder":
                pair[tool] = run_xborder(demo.config_path, demo.log_path, demo.lines_written, OUT, template)
                if n == 0:
                    notes += check_xborder(pair[tool], demo.lines_written, demo.garbage_lines)
            elif exe is not None:
                pair[tool] = run_goaccess(exe, demo.log_path, demo.lines_written, OUT)
                if n == 0:
                    notes += check_goaccess(pair[tool], demo.lines_written)
        runs += [pair[t] for t in ("xborder", "goaccess") if t in pair]
        xb, ga = pair["xborder"], pair.get("goaccess")
        if ga is not None and ga.returncode == 0 and xb.returncode == 0:
            rounds.append({"speed": xb.lines_per_s / ga.lines_per_s, "memory": xb.rss_mib / ga.rss_mib})
    if not args.no_peer and exe is None:
        notes.append(f"peer unavailable: GoAccess {peer_status}; xborder figures only")

    print()
    print(f"{'round':<6} {'tool':<10} {'seconds':>9} {'lines/s':>12} {'peak RSS MiB':>13}")
    per_round = 2 if exe is not None else 1
    for k, r in enumerate(runs):
        ok = "" if r.returncode == 0 else f"  (exit {r.returncode})"
        print(f"{k // per_round + 1:<6} {r.tool:<10} {r.seconds:>9.2f} {r.lines_per_s:>12,.0f} {r.rss_mib:>13.1f}{ok}")
    ratios: dict[str, float] = {}
    if rounds:
        ratios = {key: statistics.median(r[key] for r in rounds) for key in ("speed", "memory")}
        spread = ", ".join(f"x{r['speed']:.2f}" for r in rounds)
        print(
            f"xborder/goaccess, median of {len(rounds)} round(s): speed x{ratios['speed']:.2f} "
            f"(rounds: {spread})   memory x{ratios['memory']:.2f}"
        )
    print()
    for note in notes:
        print(note)

    results = {
        "lines": demo.lines_written,
        "log_bytes": demo.log_path.stat().st_size,
        "generation": {"seconds": gen_s, "lines_per_s": demo.lines_written / gen_s},
        "runs": [dict(asdict(r), lines_per_s=r.lines_per_s, rss_mib=r.rss_mib) for r in runs],
        "ratios_xborder_over_goaccess": ratios,
        "rounds": rounds,
        "peer": peer_status,
        "host": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "system": platform.platform(),
        },
    }
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten {OUT / 'results.json'}")
    return 0 if all(r.returncode == 0 for r in runs if r.tool == "xborder") else 1


if __name__ == "__main__":
    raise SystemExit(main())
