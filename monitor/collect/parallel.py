"""Collect stage: a file's chunks parsed on a small thread pool, handed on in file order."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from monitor.collect.base import Parsed

T = TypeVar("T")
# Chunks in flight beyond the one handed on: enough to keep both cores busy, few enough that
# memory stays bounded (each is up to one batch of raw bytes plus its parsed columns).
AHEAD = 2
_pool: ThreadPoolExecutor | None = None


def _forget_pool() -> None:
    """In a forked child (collect/prefetch.py): the parent's pool has no threads here, so start anew."""
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 2), thread_name_prefix="xborder-parse")
    return _pool


def in_order(
    parse: Callable[[bytes, T], Parsed], items: Iterator[tuple[bytes, T]], parallel: bool
) -> Iterator[tuple[Parsed, T]]:
    """`parse` each (chunk, meta) and yield (parsed, meta) in the order the chunks were read.

    With `parallel`, up to AHEAD chunks more are parsed at once on the pool: the parsers' Arrow
    kernels release the GIL, so on two cores reading-and-parsing no longer waits for one thread
    (the parse was half of an ingest's time). Only for collectors whose chunks are independent
    (`LineCollector.stateless`). If reading fails, what was read before is still handed on, then
    the error is raised, as without the pool.
    """
    if not parallel:
        for chunk, meta in items:
            yield parse(chunk, meta), meta
        return
    window: deque[tuple[Future[Parsed], T]] = deque()
    failure: Exception | None = None
    try:
        while True:
            try:
                chunk, meta = next(items)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - raised again below, after the chunks read before it
                failure = exc
                break
            window.append((_executor().submit(parse, chunk, meta), meta))
            if len(window) > AHEAD:
                fut, m = window.popleft()
                yield fut.result(), m
        while window:
            fut, m = window.popleft()
            yield fut.result(), m
    finally:
        for fut, _ in window:  # the consumer stopped early: drop what it will not take
            fut.cancel()
    if failure is not None:
        raise failure
