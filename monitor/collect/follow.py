"""Collect stage, file input: whole lines of a rotating log file -> batches with their checkpoint."""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from monitor.collect import rotation
from monitor.collect.base import LineCollector, Parsed
from monitor.collect.parallel import in_order
from monitor.collect.rotation import FINGERPRINT_BYTES, READ_ERRORS, is_gzip
from monitor.errors import InputError, Location, UsageError
from monitor.records import Checkpoint, ObservationBatch

log = logging.getLogger("xborder.collect")

DEFAULT_MAX_BYTES = 32 * 2**20

# Checkpoint scheme
# -----------------
# `offset` is the byte offset of the next unread byte and `line` the 1-based number of the
# next unread line, so a fresh file is (0, 1). `fingerprint` is the sha256 of the file's first
# min(FINGERPRINT_BYTES, offset) bytes: only bytes already consumed, because those never
# change in an append-only log, while bytes past the offset may still be written. The prefix
# length is therefore recoverable from the checkpoint itself (no extra field): a file that was
# 300 bytes long when checkpointed is compared on its first 300 bytes after it has grown.
#
# Resume only when device and inode match, the file is at least `offset` long and that prefix
# still hashes the same; otherwise the file was rotated (new inode), truncated (copytruncate:
# shorter, or rewritten so the prefix differs) or replaced. Then the generations rotated away
# since the checkpoint are read first (monitor/collect/rotation.py: the rest of the checkpointed
# one, wherever rotation put it, then each newer one whole, oldest first), and the live file
# from (0, 1). `mtime_ns` and `done` in the checkpoint are what tells those generations apart.
#
# Compressed logs (`*.gz`, as logrotate leaves rotated logs) are read through a streaming
# decompressor: `offset`, `line` and `fingerprint` all count the decompressed stream, so a
# generation is recognised by its content whether it is compressed or not. Resuming
# re-decompresses from the start and skips to `offset`. A .gz is complete by definition: its
# unterminated last line is read as final.


def read_batches(
    collector: LineCollector,
    path: Path,
    checkpoint: Checkpoint | None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    final: bool = False,
    backfill: bool = False,
) -> Iterator[ObservationBatch]:
    """Parse the unread whole lines of `path` into batches of at most about `max_bytes`.

    A batch never splits a line; a line longer than `max_bytes` makes one larger batch. The
    last line is consumed only once it ends in b"\\n" (the writer may still be writing it)
    unless `final` is set, for a file known to be complete. Each batch's `checkpoint` is the
    position just after it, to be committed with the batch. Raises InputError (when iteration
    starts) if the file cannot be opened or read.

    When the checkpointed file has been rotated away (renamed, copied and truncated, compressed;
    several times, even, while nothing read it), every line written since the checkpoint is read
    first, generation by generation, before the live file: nothing written around a rotation is
    lost or read twice. Those batches keep the stream's `source`; their checkpoint names the
    rotated file they came from. With `backfill` and no checkpoint yet, the rotated generations
    already beside `path` are read first, oldest first.

    A `*.gz` file is decompressed as it is read and taken as final (see the checkpoint scheme).
    """
    if max_bytes < 1:
        raise UsageError(f"max_bytes must be positive, got {max_bytes}")
    path = Path(path).absolute()
    source = f"{collector.name}:{path}"
    with _open(path) as fh:
        st = os.fstat(fh.fileno())
        start, done = (0, 1), tuple[str, ...]()
        generations: list[rotation.Generation] = []
        if checkpoint is not None:
            done = checkpoint.done
            if _same_file(fh, checkpoint, is_gzip(path)):
                start = (checkpoint.offset, checkpoint.line)
            else:
                generations = rotation.pending(path, st, checkpoint)
        elif backfill:
            generations = rotation.existing(path, st)
        for gen in generations:
            yield from _read_generation(collector, source, gen, done, max_bytes)
            done = rotation.remember(done, gen.fingerprint)
        yield from _read_from(collector, source, path, fh, start, max_bytes, final or is_gzip(path), done)


def _read_generation(
    collector: LineCollector, source: str, gen: rotation.Generation, done: tuple[str, ...], max_bytes: int
) -> Iterator[ObservationBatch]:
    try:
        fh = open(gen.path, "rb")
    except OSError as err:  # deleted between the look and the read: the warning below says what is lost
        log.warning("%s: rotated file vanished before it was read: %s", source, err.strerror or err)
        return
    with fh:
        # A rotated file is complete: its unterminated last line, if any, is final.
        yield from _read_from(collector, source, gen.path, fh, gen.start, max_bytes, True, done)


def _read_from(
    collector: LineCollector,
    source: str,
    path: Path,
    fh: BinaryIO,
    start: tuple[int, int],
    max_bytes: int,
    final: bool,
    done: tuple[str, ...],
) -> Iterator[ObservationBatch]:
    gz = is_gzip(path)
    st = os.fstat(fh.fileno())
    fh.seek(0 if gz else start[0])
    stream: BinaryIO | gzip.GzipFile = gzip.GzipFile(fileobj=fh, mode="rb") if gz else fh
    # a .gz never changes: its head is read once (decompressed, as its offsets count)
    gz_head = rotation.head(path) if gz else None
    # The file's first bytes as this read found them (the consumed ones, so they cannot change in
    # an append-only log). copytruncate empties a file under a reader and the writer starts again
    # at 0; bytes past our position are then the new content's, from mid-line: had we read them,
    # they would be parsed as garbage, and the new content's start, before our position, skipped.
    # So after each chunk the head is read again; if it changed, the chunk is dropped and the file
    # left: the next pass finds the copy by content, reads its rest, then the file anew from 0.
    head_ref = None if gz else os.pread(fh.fileno(), min(FINGERPRINT_BYTES, start[0]), 0)

    def positions() -> Iterator[tuple[bytes, tuple[int, int, Checkpoint]]]:
        """Each chunk with its first line, first byte and the checkpoint just after it."""
        nonlocal head_ref
        offset, line = start
        if gz and _skip(stream, path, offset) < offset:
            return  # a .gz shorter than its checkpoint (damaged): nothing more to read in it
        for chunk in _chunks(stream, path, max_bytes, final):
            if head_ref is not None:
                if len(head_ref) < FINGERPRINT_BYTES:
                    head_ref += chunk[: FINGERPRINT_BYTES - len(head_ref)]
                if os.pread(fh.fileno(), len(head_ref), 0) != head_ref:
                    log.info("%s: truncated while being read (copytruncate); the rest is read from the copy", path)
                    return
            # Any mtime of this file seen while reading it: a generation rotated after it is newer.
            mtime_ns = os.fstat(fh.fileno()).st_mtime_ns
            first, base = line, offset
            offset += len(chunk)
            # Counted here, not taken from the collector, so the checkpoint stays right even if a
            # collector miscounts.
            line += chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
            want = min(FINGERPRINT_BYTES, offset)
            cp = Checkpoint(
                source=source,
                path=str(path),
                device=st.st_dev,
                inode=st.st_ino,
                offset=offset,
                line=line,
                fingerprint=rotation.digest(gz_head[:want]) if gz_head is not None else _fingerprint(fh, offset),
                mtime_ns=mtime_ns,
                done=done,
            )
            yield chunk, (first, base, cp)

    def parse(chunk: bytes, meta: tuple[int, int, Checkpoint]) -> Parsed:
        return collector.parse_chunk(chunk, source=source, first_line=meta[0], base_offset=meta[1])

    try:
        for parsed, (_, _, cp) in in_order(parse, positions(), collector.stateless):
            yield ObservationBatch(
                collector=collector.name,
                source=source,
                table=parsed.table,
                quarantined=parsed.quarantined,
                lines_read=parsed.lines_read,
                blank_lines=parsed.blank_lines,
                checkpoint=cp,
            )
    finally:
        if gz:
            stream.close()  # leaves `fh` open: it belongs to the caller


def _skip(stream: BinaryIO | gzip.GzipFile, path: Path, offset: int) -> int:
    """Move to `offset` of a decompressed stream (by decompressing up to it); the position reached."""
    try:
        return stream.seek(offset)
    except READ_ERRORS as err:
        raise InputError(f"cannot read log file: {_why(err)}", Location(str(path))) from err


def _why(err: BaseException) -> str:
    return str(getattr(err, "strerror", None) or err)


def _open(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as err:
        raise InputError(f"cannot open log file: {err.strerror or err}", Location(str(path))) from err


def _chunks(fh: BinaryIO | gzip.GzipFile, path: Path, max_bytes: int, final: bool) -> Iterator[bytes]:
    """Runs of whole lines of at most max_bytes (or one longer line) up to the current end.

    A read error (or a truncated .gz) ends the input: the whole lines read before it are still
    yielded, then InputError is raised; the unfinished last line is left for the next attempt.
    """
    buf = b""
    eof = False
    failure: InputError | None = None
    while True:
        # Fill up to max_bytes; past it only while no line end is in sight (one long line).
        while not eof and (len(buf) < max_bytes or b"\n" not in buf):
            try:
                block = fh.read(max_bytes - len(buf) if len(buf) < max_bytes else max_bytes)
            except READ_ERRORS as err:
                failure = InputError(f"cannot read log file: {_why(err)}", Location(str(path)))
                failure.__cause__ = err
                block = b""
            eof = not block
            buf += block
        cut = buf.rfind(b"\n", 0, max_bytes) + 1 or buf.find(b"\n") + 1
        if cut == 0:  # only an unterminated last line is left (or nothing)
            if failure is not None:
                raise failure
            if final and buf:
                yield buf
            return
        yield buf[:cut]
        buf = buf[cut:]


def _fingerprint(fh: BinaryIO, offset: int) -> str:
    return rotation.digest(os.pread(fh.fileno(), min(FINGERPRINT_BYTES, offset), 0))


def _same_file(fh: BinaryIO, cp: Checkpoint, gz: bool = False) -> bool:
    st = os.fstat(fh.fileno())
    if (st.st_dev, st.st_ino) != (cp.device, cp.inode):
        return False
    if gz:  # offset and fingerprint count decompressed bytes (or, before 0004, the compressed head)
        data = rotation.head(fh.name)
        if data is not None and rotation.matches(data, cp):
            return True
        return _fingerprint(fh, FINGERPRINT_BYTES) == cp.fingerprint
    if st.st_size < cp.offset:
        return False
    return _fingerprint(fh, cp.offset) == cp.fingerprint
