"""Chunks parsed on the pool come out in file order, the same as parsed one by one; errors after them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.collect.base import Parsed
from monitor.collect.follow import read_batches
from monitor.collect.parallel import in_order
from monitor.collect.squid import SquidCollector
from tests.support.logfiles import lines, write


class OneByOne(SquidCollector):
    stateless = False


def test_parallel_batches_equal_sequential_ones(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    write(log, lines(1, 3000) + b"garbage line\n" + lines(3001, 4000))
    fast = list(read_batches(SquidCollector(), log, None, max_bytes=20_000))
    slow = list(read_batches(OneByOne(), log, None, max_bytes=20_000))
    assert len(fast) == len(slow) > 10
    for a, b in zip(fast, slow, strict=True):
        assert a.checkpoint == b.checkpoint and a.quarantined == b.quarantined
        assert a.frame.drop(columns=["collector"]).equals(b.frame.drop(columns=["collector"]))


def test_order_is_kept_when_later_chunks_finish_first() -> None:
    seen: list[str] = []

    def parse(chunk: bytes, meta: int) -> Parsed:
        time.sleep(0.05 if meta % 3 == 0 else 0.0)  # every third chunk is slow
        seen.append(threading.current_thread().name)
        return Parsed(table=None, lines_read=meta)  # type: ignore[arg-type]

    items = iter([(b"x", i) for i in range(12)])
    out = [(p.lines_read, m) for p, m in in_order(parse, items, parallel=True)]
    assert out == [(i, i) for i in range(12)]
    assert all(name.startswith("xborder-parse") for name in seen)


def test_a_read_error_comes_after_the_chunks_read_before_it() -> None:
    def items() -> Iterator[tuple[bytes, int]]:
        yield b"a", 1
        yield b"b", 2
        raise OSError("disk gone")

    got: list[int] = []
    with pytest.raises(OSError, match="disk gone"):
        for _, m in in_order(lambda c, m: Parsed(table=None), items(), parallel=True):  # type: ignore[arg-type]
            got.append(m)
    assert got == [1, 2]
