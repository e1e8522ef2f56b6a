"""Squid log lines, files and readers for the follow/rotation tests (one copy, not one per test module)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from monitor.collect.follow import read_batches
from monitor.collect.squid import SquidCollector
from monitor.records import Checkpoint, ObservationBatch


def line(i: int, host: str = "example.com") -> bytes:
    return (
        f"{1700000000 + i}.{i % 1000:03d}    {i % 90:3d} 10.0.0.{i % 250} TCP_MISS/200 {100 + i} "
        f"GET http://h{i}.{host}/p - HIER_DIRECT/192.0.2.{i % 250} text/html\n"
    ).encode()


def lines(first: int, last: int, host: str = "example.com") -> bytes:
    """Lines first..last inclusive."""
    return b"".join(line(i, host) for i in range(first, last + 1))


def write(path: Path, data: bytes, mode: str = "wb") -> None:
    with open(path, mode) as fh:
        fh.write(data)


def gz(path: Path, data: bytes, *, mtime: int = 0) -> Path:
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=mtime) as out:
        out.write(data)
    return path


def age(path: Path, seconds: float) -> None:
    """Set a file's mtime `seconds` into the past, as if it was last written then."""
    t = os.stat(path).st_mtime_ns - int(seconds * 1e9)
    os.utime(path, ns=(t, t))


def read_all(path: Path, cp: Checkpoint | None, **kw: object) -> tuple[list[ObservationBatch], Checkpoint | None]:
    batches = list(read_batches(SquidCollector(), path, cp, **kw))  # type: ignore[arg-type]
    return batches, (batches[-1].checkpoint if batches else cp)


def hosts(batches: list[ObservationBatch]) -> list[str]:
    return [h for b in batches for h in b.frame["dest_host"]]


def lines_of(batches: list[ObservationBatch]) -> list[int]:
    return [n for b in batches for n in b.frame["line"]]
