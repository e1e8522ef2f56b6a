"""Several rotations between two reads: every generation is read once, in order, whatever rotated it."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from monitor.collect.rotation import is_rotated_name
from monitor.records import Checkpoint
from tests.support.logfiles import age, gz, hosts, lines, read_all, write


def ids(batches: list[object]) -> list[int]:
    """The i of every line read (line(i) names host h<i>.example.com)."""
    return [int(h.split(".")[0][1:]) for h in hosts(batches)]  # type: ignore[arg-type]


def rotate(log: Path, method: str, generation: int) -> None:
    """What logrotate does to `log` with `method`; the writer then goes on in a new or emptied file."""
    rotated = log.with_name(f"{log.name}.{generation}")
    if method == "copytruncate":
        shutil.copyfile(log, rotated)
        with open(log, "r+b") as fh:
            fh.truncate(0)
        return
    os.rename(log, rotated)
    if method == "gzip":
        gz(Path(f"{rotated}.gz"), rotated.read_bytes())
        rotated.unlink()
    log.touch()


@pytest.mark.parametrize(
    "methods",
    [
        ("rename", "rename", "rename"),
        ("copytruncate", "copytruncate", "copytruncate"),
        ("gzip", "gzip", "gzip"),
        ("rename", "copytruncate", "gzip"),
        ("copytruncate", "gzip", "rename", "copytruncate"),
    ],
)
def test_every_generation_rotated_while_down_is_read_once_in_order(tmp_path: Path, methods: tuple[str, ...]) -> None:
    log = tmp_path / "access.log"
    write(log, lines(1, 10))
    _, cp = read_all(log, None)
    n = 10
    for g, method in enumerate(methods, 1):
        write(log, lines(n + 1, n + 20), "ab")  # written after the checkpoint, before this rotation
        n += 20
        rotate(log, method, g)
    write(log, lines(n + 1, n + 5), "ab")
    batches, last = read_all(log, cp)
    assert ids(batches) == list(range(11, n + 6))
    assert last is not None and last.path == str(log) and last.line == 6
    # and nothing more on the next pass, from any checkpoint those batches committed
    for k, b in enumerate(batches):
        rest, _ = read_all(log, b.checkpoint)
        assert ids(batches[: k + 1]) + ids(rest) == list(range(11, n + 6)), k


def test_resume_from_any_batch_while_draining_generations(tmp_path: Path) -> None:
    """A kill after any commit: the next start reads on from there, nothing twice, nothing lost."""
    log = tmp_path / "access.log"
    write(log, lines(1, 5))
    _, cp = read_all(log, None)
    write(log, lines(6, 200), "ab")
    rotate(log, "rename", 1)
    write(log, lines(201, 400))
    rotate(log, "gzip", 2)
    write(log, lines(401, 600))
    rotate(log, "copytruncate", 3)
    write(log, lines(601, 610), "ab")
    batches, _ = read_all(log, cp, max_bytes=3000)
    assert ids(batches) == list(range(6, 611)) and len(batches) > 20
    for k, b in enumerate(batches):
        rest, _ = read_all(log, b.checkpoint, max_bytes=3000)
        assert ids(batches[: k + 1]) + ids(rest) == list(range(6, 611)), k


def test_generations_older_than_the_checkpoint_are_not_read(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    gz(tmp_path / "access.log.2.gz", lines(1, 3, "older.example"))
    write(tmp_path / "access.log.1", lines(4, 6, "older.example"))
    age(tmp_path / "access.log.2.gz", 7200)
    age(tmp_path / "access.log.1", 3600)
    write(log, lines(10, 12))
    _, cp = read_all(log, None)
    write(log, lines(13, 14), "ab")
    rotate(log, "rename", 0)  # access.log.0: squid -k rotate numbering
    write(log, lines(20, 21))
    assert ids(read_all(log, cp)[0]) == [13, 14, 20, 21]


def test_first_start_backfills_rotated_generations_oldest_first(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    gz(tmp_path / "access.log.3.gz", lines(1, 2))
    gz(tmp_path / "access.log.2.gz", lines(3, 4))
    write(tmp_path / "access.log.1", lines(5, 6))
    for i, name in enumerate(["access.log.3.gz", "access.log.2.gz", "access.log.1"]):
        age(tmp_path / name, 3600 * (3 - i))
    write(tmp_path / "access.log.json", lines(90, 91, "other.example"))  # another log, not a generation
    write(log, lines(7, 8))
    assert ids(read_all(log, None, backfill=True)[0]) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert ids(read_all(log, None)[0]) == [7, 8]  # without backfill: the live file only


def test_old_generation_compressed_later_is_not_read_again(tmp_path: Path) -> None:
    """delaycompress with a compressor that does not keep the mtime: the old generation looks new."""
    log = tmp_path / "access.log"
    write(log, lines(1, 5))
    _, cp = read_all(log, None)
    rotate(log, "rename", 1)
    write(log, lines(6, 8))
    batches, cp = read_all(log, cp)
    assert ids(batches) == [6, 7, 8]
    # next rotation: .1 is compressed now (a brand-new file, new mtime), the live file becomes .1
    old = (tmp_path / "access.log.1").read_bytes()
    (tmp_path / "access.log.1").unlink()
    gz(tmp_path / "access.log.2.gz", old)
    rotate(log, "rename", 1)
    write(log, lines(9, 9))
    assert ids(read_all(log, cp)[0]) == [9]


def test_a_generation_being_compressed_is_read_once(tmp_path: Path) -> None:
    """access.log.1 and access.log.1.gz side by side (gzip still running, or both kept): one read."""
    log = tmp_path / "access.log"
    write(log, lines(1, 2))
    _, cp = read_all(log, None)
    write(log, lines(3, 4), "ab")
    rotate(log, "rename", 1)
    write(log, lines(5, 40))
    rotate(log, "rename", 2)
    whole = gz(tmp_path / "access.log.2.gz", (tmp_path / "access.log.2").read_bytes()).read_bytes()
    write(tmp_path / "access.log.2.gz", whole[: len(whole) // 2])  # gzip half-way through
    gz(tmp_path / "access.log.1.gz", (tmp_path / "access.log.1").read_bytes())  # .1 compressed, .1 still there
    write(log, lines(41, 41))
    batches, _ = read_all(log, cp)
    assert ids(batches) == list(range(3, 42))
    assert str(tmp_path / "access.log.2") in {b.checkpoint.path for b in batches if b.checkpoint}


def test_checkpointed_generation_deleted_warns_and_reads_the_newer_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "access.log"
    write(log, lines(1, 3))
    _, cp = read_all(log, None)
    write(log, lines(4, 5), "ab")
    rotate(log, "rename", 1)
    (tmp_path / "access.log.1").unlink()  # rotate 0: deleted before anything read the rest
    write(log, lines(6, 7))
    rotate(log, "rename", 1)
    write(log, lines(8, 8))
    with caplog.at_level(logging.WARNING, "xborder.collect"):
        assert ids(read_all(log, cp)[0]) == [6, 7, 8]
    assert "is gone" in caplog.text and "line 4" in caplog.text


def test_a_reused_inode_is_not_taken_for_the_checkpointed_file(tmp_path: Path) -> None:
    """The checkpoint's inode now belongs to an unrelated file beside the log: not read from the offset."""
    log = tmp_path / "access.log"
    write(log, lines(1, 3))
    _, cp = read_all(log, None)
    assert cp is not None
    os.unlink(log)
    write(log, lines(50, 51))
    fake = Checkpoint(cp.source, cp.path, cp.device, os.stat(log).st_ino + 10**9, cp.offset, cp.line, cp.fingerprint,
                      cp.mtime_ns, ())  # fmt: skip
    assert ids(read_all(log, fake)[0]) == [50, 51]


@pytest.mark.parametrize(
    ("name", "rotated"),
    [
        ("access.log.1", True),
        ("access.log.0", True),
        ("access.log.12.gz", True),
        ("access.log-20261203", True),
        ("access.log-20261203.gz", True),
        ("access.log.2026-12-03", True),
        ("access.log_2026-12-03T06:00", True),
        ("access.log", False),
        ("access.log.json", False),
        ("access.logs", False),
        ("access.log.gz", False),
        ("access.log.1.gz.tmp", False),
        ("access.log.1.xz", False),  # a generation, but not one xborder can decompress
        ("other.log.1", False),
    ],
)
def test_rotated_names(name: str, rotated: bool) -> None:
    assert is_rotated_name(Path("/var/log/squid/access.log"), name) is rotated


def test_copytruncate_while_the_file_is_being_read_drops_nothing_and_reads_no_garbage(tmp_path: Path) -> None:
    """The writer truncates and refills the file past our position between two of our chunks."""
    from monitor.collect.follow import read_batches
    from monitor.collect.squid import SquidCollector

    log = tmp_path / "access.log"
    write(log, lines(1, 100))
    it = read_batches(SquidCollector(), log, None, max_bytes=2000)
    first = [next(it), next(it)]
    rotate(log, "copytruncate", 1)
    write(log, lines(1001, 1200, "new.example"), "ab")  # longer than where the reader stands
    # what was read before the truncation (chunks parsed ahead, too) is handed on; the chunk read
    # after it is dropped, as the head changed: nothing of the new content, nothing mid-line
    first += list(it)
    assert ids(first) == list(range(1, len(ids(first)) + 1)) and len(ids(first)) < 100
    assert not any(b.quarantined for b in first)
    cp = first[-1].checkpoint
    batches, _ = read_all(log, cp, max_bytes=2000)
    assert ids(first) + ids(batches) == list(range(1, 101)) + list(range(1001, 1201))
    assert not any(b.quarantined for b in batches)
