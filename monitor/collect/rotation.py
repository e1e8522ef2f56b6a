"""Collect stage, file input: the generations of a log rotated away since its checkpoint, in write order."""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from monitor.records import Checkpoint

log = logging.getLogger("xborder.collect")

FINGERPRINT_BYTES = 1024
# How many generations read to their end a checkpoint remembers. Only a safety net: generations
# are told apart by mtime first (see `pending`), so this need not cover a whole `rotate 365`.
DONE_KEEP = 64
READ_ERRORS = (OSError, EOFError, zlib.error)  # gzip: truncated (EOFError) or corrupt (zlib.error) data

# What logrotate, savelog and `squid -k rotate` append to a log's name: `.1`, `.0`, `.1.gz`,
# `-20261203`, `-20261203.gz`, `.2026-12-03`, `_2026-12-03T06:00`. A sibling whose suffix starts
# with a letter (`app.log.json`) is another log, not a generation of this one; one compressed
# other than with gzip (`.1.xz`) cannot be read, and the warning in `pending` says so.
ROTATED_SUFFIX = re.compile(r"[.\-_](?:\d|\d[\dT:.\-_]*\d)(?:\.gz)?")


@dataclass(frozen=True)
class Generation:
    """A rotated file to read from `start` (offset, line) to its end."""

    path: Path
    start: tuple[int, int]
    fingerprint: str  # of its head: what `Checkpoint.done` remembers once it is read


def is_gzip(path: Path | str) -> bool:
    return str(path).endswith(".gz")


def head(path: Path | str) -> bytes | None:
    """The first FINGERPRINT_BYTES of a file's content (decompressed for .gz); None: unreadable.

    A .gz still being written (by logrotate's compress) has no readable head yet: None, and the
    next pass looks again.
    """
    try:
        with open(path, "rb") as fh:
            if not is_gzip(path):
                return fh.read(FINGERPRINT_BYTES)
            with gzip.GzipFile(fileobj=fh, mode="rb") as stream:
                return stream.read(FINGERPRINT_BYTES)
    except READ_ERRORS:
        return None


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def matches(data: bytes, cp: Checkpoint) -> bool:
    """Does content starting with `data` begin with the bytes the checkpoint had consumed?"""
    want = min(FINGERPRINT_BYTES, cp.offset)
    # a checkpoint that consumed nothing tells no content apart (none is committed: batches are never empty)
    return 0 < want <= len(data) and digest(data[:want]) == cp.fingerprint


def remember(done: tuple[str, ...], fingerprint: str) -> tuple[str, ...]:
    if fingerprint in done:
        return done
    return (*done, fingerprint)[-DONE_KEEP:]


def is_rotated_name(live: Path, name: str) -> bool:
    return name.startswith(live.name) and ROTATED_SUFFIX.fullmatch(name[len(live.name) :]) is not None


def siblings(path: Path, inode: tuple[int, int]) -> list[tuple[os.DirEntry[str], os.stat_result]]:
    """Regular files beside `path` named like rotated generations of it, or with this (device, inode)."""
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return []
    out = []
    for e in entries:
        if e.name == path.name:
            continue
        named = is_rotated_name(path, e.name)
        try:
            if not named and e.inode() != inode[1]:
                continue
            st = e.stat(follow_symlinks=False)
            if e.is_file(follow_symlinks=False) and (named or st.st_dev == inode[0]):
                out.append((e, st))
        except OSError:  # rotated away (deleted) while we looked
            continue
    return out


def pending(path: Path, live: os.stat_result, cp: Checkpoint) -> list[Generation]:
    """What to read before the live file at `path`, which is no longer the checkpointed file.

    First the rest of the checkpointed generation, wherever rotation put it: renamed (same
    inode), copied by copytruncate, or compressed (a new inode; found by its content). Then every
    generation rotated after it, read whole, oldest first. A generation is newer when its mtime
    is not older than the checkpointed file's was when read: rotation keeps the order of writes,
    and an older generation was last written before the checkpointed one began. Generations read
    to their end before (`cp.done`) are never read again, and the same content under two names
    (`access.log.1` while `access.log.1.gz` is being written) is read once, from the plain file.
    """
    current, newer = _scan(path, live, cp)
    if current is None:
        log.warning(
            "%s: the file checkpointed at line %d (%s) is gone: rotated and deleted, or compressed "
            "in a format xborder does not read; lines written to it after that point are not read",
            path, cp.line, cp.path,
        )  # fmt: skip
        return newer
    return [Generation(current[0], (cp.offset, cp.line), digest(current[1])), *newer]


def existing(path: Path, live: os.stat_result) -> list[Generation]:
    """Every rotated generation beside `path`, oldest first, each read whole: a first start's backfill."""
    return _scan(path, live, None)[1]


def _scan(
    path: Path, live: os.stat_result, cp: Checkpoint | None
) -> tuple[tuple[Path, bytes] | None, list[Generation]]:
    """The checkpointed generation (path and head) if found, and the newer ones (all, without `cp`)."""
    since, done = (cp.mtime_ns or 0, cp.done) if cp is not None else (0, ())
    inode = (cp.device, cp.inode) if cp is not None else (-1, -1)
    current: tuple[int, str, bytes] | None = None  # (rank, path, head): an inode match beats a content match
    newer: dict[str, tuple[int, str]] = {}  # head digest -> (mtime, path) of a generation to read whole
    for entry, st in siblings(path, inode):
        if (st.st_dev, st.st_ino) == (live.st_dev, live.st_ino):
            continue  # a hard link to the live file
        data = head(entry.path)
        if data is None:
            continue
        same_inode = (st.st_dev, st.st_ino) == inode
        if cp is not None and (matches(data, cp) or (same_inode and _old_gzip(entry.path, cp))):
            rank = 0 if same_inode else 1 + is_gzip(entry.path)
            if current is None or (rank, entry.path) < current[:2]:
                current = (rank, entry.path, data)
            continue
        named = is_rotated_name(path, entry.name)  # not just an inode that was the checkpoint's, now reused
        fp = digest(data)
        if not named or st.st_mtime_ns < since or fp in done or not data:
            continue
        seen = newer.get(fp)
        if seen is None:
            newer[fp] = (st.st_mtime_ns, entry.path)
        elif is_gzip(seen[1]) and not is_gzip(entry.path):  # the plain file is complete; the .gz may not be
            newer[fp] = (min(seen[0], st.st_mtime_ns), entry.path)
    found = None if current is None else (Path(current[1]), current[2])
    return found, [Generation(Path(p), (0, 1), fp) for fp, (_mtime, p) in sorted(newer.items(), key=lambda kv: kv[1])]


def _old_gzip(p: str, cp: Checkpoint) -> bool:
    """A .gz checkpointed before fingerprints were taken over decompressed content (same inode)."""
    if not is_gzip(p):
        return False
    try:
        with open(p, "rb") as fh:
            return digest(fh.read(FINGERPRINT_BYTES)) == cp.fingerprint
    except OSError:
        return False
