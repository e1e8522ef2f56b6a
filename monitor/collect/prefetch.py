"""Collect stage: a file's batches read and parsed ahead in a thread, the first file's begun before the store opens."""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue
import signal
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor import started
from monitor.collect.base import LineCollector
from monitor.collect.follow import read_batches
from monitor.collect.rotation import is_gzip
from monitor.records import Checkpoint, ObservationBatch

log = logging.getLogger("xborder.collect")

# Bytes of log per batch (= per transaction). Measured on the 1M-line bench log: 8 MiB gave
# ~400 MiB peak RSS and the best speed; 32 MiB ~730 MiB peak and no faster. Since chunks are
# parsed two at a time (collect/parallel.py), 8 MiB peaks at ~700 MiB, 4 MiB at ~500 MiB but is
# 5-20 % slower (1M and 5M lines, 2026-12-03).
BATCH_BYTES = 8 * 2**20


class Prefetch:
    """Reads and parses the next batches in a thread, from the moment it is made, while the
    consumer resolves and commits the one before.

    pyarrow's compute kernels and SQLite release the GIL, so on two cores parsing overlaps with
    the rest. Batches still commit one by one in file order: a crash loses nothing committed.
    Iterate it once; `close()` stops the thread (iterating to the end or stopping early does too).
    """

    def __init__(self, batches: Iterable[ObservationBatch], depth: int = 2) -> None:
        self._q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._batches = batches
        self._thread = threading.Thread(target=self._work, name="xborder-parse", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            for b in self._batches:
                while not self._stop.is_set():
                    try:
                        self._q.put(("batch", b), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
            self._q.put(("done", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            self._q.put(("error", exc))

    def __iter__(self) -> Iterator[ObservationBatch]:
        try:
            while True:
                kind, item = self._q.get()
                if kind == "done":
                    return
                if kind == "error":
                    raise item
                yield item
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass
class ReadAhead:
    """A file read from its start before anyone knew whether the store holds a checkpoint for it.

    `xborder ingest` begins reading and parsing its first file while the store, the rules and
    most of the program are still being imported and loaded (about a second on the bench's 2
    cores, in which the second core was idle). The store then decides: if it has no checkpoint
    for the file, these are exactly the batches that reading it afresh would give, and they are
    used (`pipeline.open_path`); otherwise they are dropped unread and the file is read from its
    checkpoint. Nothing is committed from it until that decision, so nothing can be lost or
    read twice.
    """

    parser: LineCollector
    path: Path
    final: bool
    max_bytes: int
    batches: Prefetch

    def fits(self, parser: Any, path: Path, *, final: bool, max_bytes: int) -> bool:
        """Whether these are the batches that reading `path` afresh this way would give."""
        return self.parser is parser and self.path == path and self.final == final and self.max_bytes == max_bytes

    def close(self) -> None:
        self.batches.close()


def read_ahead(parser: LineCollector, path: Path, *, final: bool) -> ReadAhead:
    """Begin reading `path` from its start, as a file with no checkpoint is read.

    Only for a `stateless` parser: one that learns as it reads would learn in the child, and the
    parent's copy would not know it for the next file. A plain file is parsed in a forked process
    (`_forked`) whose batches come back through a pipe; a .gz, or where fork is missing, in this
    process's threads.
    """
    if not parser.stateless:
        raise ValueError(f"collector '{parser.name}' keeps state from chunk to chunk: no read-ahead")
    if hasattr(os, "fork") and not is_gzip(path):
        batches = Prefetch(_forked(parser, path, final, BATCH_BYTES))
    else:
        batches = Prefetch(read_batches(parser, path, None, max_bytes=BATCH_BYTES, final=final))
    return ReadAhead(parser, path, final, BATCH_BYTES, batches)


def _forked(parser: LineCollector, path: Path, final: bool, max_bytes: int) -> Iterator[ObservationBatch]:
    """`read_batches(parser, path, None, ...)`, read and parsed in a child process.

    Why a process: while `xborder ingest` imports and loads the rest of the program (the best
    part of a second, all of it holding the GIL), parse threads of this process got the GIL only
    every few milliseconds, between their Arrow kernels: a chunk took 0.8 s to parse instead of
    0.12 s, and slowed the imports down as well. The child has its own interpreter; the parent
    only unpickles each batch (its Arrow buffers copied once).

    The child only reads, never commits. If it dies, or its stream ends early for any reason,
    reading goes on here from the checkpoint of the last batch received, the same resume as after
    a restart: every line is still read exactly once. Closing the iterator early kills the child.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: parse, send, and leave without running the parent's exit handlers
        os.close(r)
        # The parent forked in start-up, with the garbage collector set to run rarely; the child
        # is all batches, and each parsed chunk leaves a reference cycle holding its arrays
        # (a Rows and its reason closures): with the start-up setting, 5M lines reached 1.9 GB.
        started()
        code = 0
        try:
            with os.fdopen(w, "wb") as out:
                for batch in read_batches(parser, path, None, max_bytes=max_bytes, final=final):
                    pickle.dump(batch, out, protocol=pickle.HIGHEST_PROTOCOL)
                    out.flush()
        except BaseException:  # noqa: BLE001 - the parent reads the rest itself
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    last: Checkpoint | None = None
    try:
        with os.fdopen(r, "rb") as pipe:
            while True:
                try:
                    batch = pickle.load(pipe)
                except EOFError:
                    break
                except (pickle.UnpicklingError, ValueError) as exc:  # torn: the child died mid-write
                    log.info("%s: read-ahead process stopped (%s); reading on in this one", path, exc)
                    break
                last = batch.checkpoint
                yield batch
    finally:
        # Done with it, however this ended (the end of its stream, a torn message, the consumer
        # stopping early, an exception here): a child still running is not needed any more.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    # Normally the child read the file to its end and this reads nothing new; after a failure,
    # everything from the last batch received on.
    yield from read_batches(parser, path, last, max_bytes=max_bytes, final=final)
