"""Collect stage, file input: whole lines of a rotating log file -> batches with their checkpoint."""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from monitor.collect.base import LineCollector
from monitor.errors import InputError, Location, UsageError
from monitor.records import Checkpoint, ObservationBatch

FINGERPRINT_BYTES = 1024
DEFAULT_MAX_BYTES = 32 * 2**20
_READ_ERRORS = (OSError, EOFError, zlib.error)  # gzip: truncated (EOFError) or corrupt (zlib.error) data

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
# shorter, or rewritten so the prefix differs) or replaced, and reading restarts at (0, 1).
#
# Compressed logs (`*.gz`, as logrotate leaves rotated logs) are read through a streaming
# decompressor: `offset` and `line` count the decompressed stream, while `fingerprint` is over
# the first FINGERPRINT_BYTES of the compressed file (a .gz is never appended to, so its whole
# head is stable). Resuming re-decompresses from the start and skips to `offset`. A .gz is
# complete by definition: its unterminated last line is read as final.


def read_batches(
    collector: LineCollector,
    path: Path,
    checkpoint: Checkpoint | None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    final: bool = False,
) -> Iterator[ObservationBatch]:
    """Parse the unread whole lines of `path` into batches of at most about `max_bytes`.

    A batch never splits a line; a line longer than `max_bytes` makes one larger batch. The
    last line is consumed only once it ends in b"\\n" (the writer may still be writing it)
    unless `final` is set, for a file known to be complete. Each batch's `checkpoint` is the
    position just after it, to be committed with the batch. Raises InputError (when iteration
    starts) if the file cannot be opened or read.

    When the checkpoint names a file that has been rotated away (renamed within the same
    directory, as logrotate and `squid -k rotate` do), the lines appended to it after the
    checkpoint are read first, so nothing written just before rotation is lost; those batches
    keep the stream's `source` and their checkpoint names the rotated file. That file may also
    have been compressed meanwhile (a new `*.gz` inode): it is then found by its content.

    A `*.gz` file is decompressed as it is read and taken as final (see the checkpoint scheme).
    """
    if max_bytes < 1:
        raise UsageError(f"max_bytes must be positive, got {max_bytes}")
    path = Path(path).absolute()
    source = f"{collector.name}:{path}"
    with _open(path) as fh:
        st = os.fstat(fh.fileno())
        start = (0, 1)
        if checkpoint is not None:
            if _same_file(fh, checkpoint, _is_gzip(path)):
                start = (checkpoint.offset, checkpoint.line)
            else:
                yield from _drain_rotated(collector, source, path, checkpoint, max_bytes)
        yield from _read_from(collector, source, path, fh, st, start, max_bytes, final or _is_gzip(path))


def _read_from(
    collector: LineCollector,
    source: str,
    path: Path,
    fh: BinaryIO,
    st: os.stat_result,
    start: tuple[int, int],
    max_bytes: int,
    final: bool,
) -> Iterator[ObservationBatch]:
    offset, line = start
    gz = _is_gzip(path)
    fh.seek(0 if gz else offset)
    stream: BinaryIO | gzip.GzipFile = gzip.GzipFile(fileobj=fh, mode="rb") if gz else fh
    head = FINGERPRINT_BYTES if gz else None  # a .gz: its compressed head, whatever the offset
    try:
        if gz and _skip(stream, path, offset) < offset:
            return  # a .gz shorter than its checkpoint (damaged): nothing more to read in it
        for chunk in _chunks(stream, path, max_bytes, final):
            parsed = collector.parse_chunk(chunk, source=source, first_line=line, base_offset=offset)
            offset += len(chunk)
            # Counted here, not taken from the collector, so the checkpoint stays right even if a
            # collector miscounts.
            line += chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
            cp = Checkpoint(
                source=source,
                path=str(path),
                device=st.st_dev,
                inode=st.st_ino,
                offset=offset,
                line=line,
                fingerprint=_fingerprint(fh, offset if head is None else head),
            )
            yield ObservationBatch(
                collector=collector.name,
                source=source,
                frame=parsed.frame,
                quarantined=parsed.quarantined,
                lines_read=parsed.lines_read,
                blank_lines=parsed.blank_lines,
                checkpoint=cp,
            )
    finally:
        if gz:
            stream.close()  # leaves `fh` open: it belongs to the caller


def _drain_rotated(
    collector: LineCollector, source: str, path: Path, cp: Checkpoint, max_bytes: int
) -> Iterator[ObservationBatch]:
    """The rest of the checkpointed file if it still exists beside `path` under another name."""
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.inode() != cp.inode or not entry.is_file(follow_symlinks=False):
                continue
            fh = open(entry.path, "rb")
        except OSError:
            continue
        with fh:
            st = os.fstat(fh.fileno())
            gz = _is_gzip(Path(entry.path))
            if _same_file(fh, cp, gz):
                if gz or st.st_size > cp.offset:
                    # A rotated file is complete: its unterminated last line, if any, is final.
                    start = (cp.offset, cp.line)
                    yield from _read_from(collector, source, Path(entry.path), fh, st, start, max_bytes, True)
                return
    # gone, or its inode now belongs to another file (a truncated or a new one)
    if not cp.path.endswith(".gz"):
        yield from _drain_compressed(collector, source, path, entries, cp, max_bytes)


def _drain_compressed(
    collector: LineCollector,
    source: str,
    path: Path,
    entries: list[os.DirEntry[str]],
    cp: Checkpoint,
    max_bytes: int,
) -> Iterator[ObservationBatch]:
    """The rest of the checkpointed file if logrotate compressed it (a new inode) beside `path`.

    Found by content: the decompressed head of a sibling `path.name*.gz` hashes to the fingerprint.
    """
    want = min(FINGERPRINT_BYTES, cp.offset)
    for entry in sorted(entries, key=lambda e: e.name):
        if not (entry.name.startswith(path.name) and entry.name.endswith(".gz")):
            continue
        try:
            fh = open(entry.path, "rb")
        except OSError:
            continue
        with fh:
            try:
                with gzip.GzipFile(fileobj=fh, mode="rb") as stream:
                    head = stream.read(want)
            except _READ_ERRORS:
                continue
            if len(head) == want and hashlib.sha256(head).hexdigest() == cp.fingerprint:
                st = os.fstat(fh.fileno())
                start = (cp.offset, cp.line)
                yield from _read_from(collector, source, Path(entry.path), fh, st, start, max_bytes, True)
                return


def _is_gzip(path: Path) -> bool:
    return path.name.endswith(".gz")


def _skip(stream: BinaryIO | gzip.GzipFile, path: Path, offset: int) -> int:
    """Move to `offset` of a decompressed stream (by decompressing up to it); the position reached."""
    try:
        return stream.seek(offset)
    except _READ_ERRORS as err:
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
            except _READ_ERRORS as err:
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
    head = os.pread(fh.fileno(), min(FINGERPRINT_BYTES, offset), 0)
    return hashlib.sha256(head).hexdigest()


def _same_file(fh: BinaryIO, cp: Checkpoint, gz: bool = False) -> bool:
    st = os.fstat(fh.fileno())
    if (st.st_dev, st.st_ino) != (cp.device, cp.inode):
        return False
    if gz:  # the offset counts decompressed bytes; the fingerprint is over the compressed head
        return _fingerprint(fh, FINGERPRINT_BYTES) == cp.fingerprint
    if st.st_size < cp.offset:
        return False
    return _fingerprint(fh, cp.offset) == cp.fingerprint
