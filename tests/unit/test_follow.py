"""Reading a log file into batches: checkpoints, resume, rotation, truncation, batch splitting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitor.collect.follow import read_batches
from monitor.collect.squid import SquidCollector
from monitor.errors import InputError, UsageError
from tests.support.logfiles import hosts, line, lines_of, read_all, write


def test_first_read_and_checkpoint(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    write(log, line(1) + line(2) + line(3))
    batches, cp = read_all(log, None)
    assert len(batches) == 1
    b = batches[0]
    assert b.source == f"squid:{log.absolute()}" and b.collector == "squid"
    assert b.lines_read == 3 and len(b) == 3
    assert cp is not None
    st = os.stat(log)
    assert (cp.device, cp.inode, cp.offset, cp.line) == (st.st_dev, st.st_ino, st.st_size, 4)
    assert cp.path == str(log.absolute()) and cp.source == b.source
    assert list(b.frame["offset"]) == [0, len(line(1)), len(line(1)) + len(line(2))]


def test_resume_reads_only_new_lines(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    write(log, line(1) + line(2))
    _, cp = read_all(log, None)
    assert read_all(log, cp)[0] == []  # nothing new: no batch, checkpoint unchanged

    write(log, line(3) + line(4), "ab")
    batches, cp2 = read_all(log, cp)
    assert hosts(batches) == ["h3.example.com", "h4.example.com"]
    assert lines_of(batches) == [3, 4]
    assert list(batches[0].frame["offset"]) == [len(line(1) + line(2)), len(line(1) + line(2) + line(3))]
    assert cp2 is not None and cp2.offset == os.path.getsize(log) and cp2.line == 5


def test_resume_after_small_file_grows_past_fingerprint_length(tmp_path: Path) -> None:
    """The fingerprint covers only the bytes consumed: growth past 1024 bytes keeps it valid."""
    log = tmp_path / "access.log"
    write(log, line(1))
    _, cp = read_all(log, None)
    assert cp is not None and cp.offset < 1024
    write(log, b"".join(line(i) for i in range(2, 40)), "ab")
    batches, cp2 = read_all(log, cp)
    assert lines_of(batches) == list(range(2, 40))
    assert cp2 is not None and cp2.offset > 1024
    write(log, line(40), "ab")
    assert lines_of(read_all(log, cp2)[0]) == [40]


def test_unterminated_last_line_is_not_consumed(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    partial = line(2)[:30]
    write(log, line(1) + partial)
    batches, cp = read_all(log, None)
    assert lines_of(batches) == [1]
    assert batches[0].quarantined == []
    assert cp is not None and cp.offset == len(line(1)) and cp.line == 2

    write(log, line(2)[30:] + line(3), "ab")  # the writer finishes the line
    batches, cp = read_all(log, cp)
    assert hosts(batches) == ["h2.example.com", "h3.example.com"]
    assert lines_of(batches) == [2, 3]


def test_final_consumes_unterminated_last_line(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    write(log, line(1) + line(2).rstrip(b"\n"))
    batches, cp = read_all(log, None, final=True)
    assert hosts(batches) == ["h1.example.com", "h2.example.com"]
    assert cp is not None and cp.offset == os.path.getsize(log) and cp.line == 3


def test_rotation_starts_new_file_from_zero(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    write(log, line(1) + line(2) + line(3))
    _, cp = read_all(log, None)
    os.rename(log, tmp_path / "access.log.1")  # logrotate's default: rename, then a new file
    write(log, line(10, "rotated.example") + line(11, "rotated.example"))
    assert cp is not None and os.stat(log).st_ino != cp.inode
    batches, cp2 = read_all(log, cp)
    assert hosts(batches) == ["h10.rotated.example", "h11.rotated.example"]
    assert lines_of(batches) == [1, 2]
    assert cp2 is not None and cp2.inode == os.stat(log).st_ino and cp2.line == 3


def test_rotation_reads_lines_written_to_the_old_file_after_the_checkpoint(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    write(log, line(1) + line(2))
    _, cp = read_all(log, None)
    write(log, line(3) + line(4), "ab")  # written, then rotated before we read them
    rotated = tmp_path / "access.log.1"
    os.rename(log, rotated)
    write(log, line(10, "new.example"))
    batches, cp2 = read_all(log, cp)
    assert hosts(batches) == ["h3.example.com", "h4.example.com", "h10.new.example"]
    assert lines_of(batches) == [3, 4, 1]
    assert all(b.source == f"squid:{log.absolute()}" for b in batches)
    old_cp = batches[0].checkpoint
    assert old_cp is not None and old_cp.path == str(rotated) and old_cp.offset == os.path.getsize(rotated)
    assert cp2 is not None and cp2.path == str(log.absolute()) and cp2.inode == os.stat(log).st_ino

    # crash after committing only the rotated file's batch: nothing is read twice
    again, _ = read_all(log, old_cp)
    assert hosts(again) == ["h10.new.example"]


def test_rotated_file_gone_starts_new_file(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    write(log, line(1))
    _, cp = read_all(log, None)
    write(log, line(2), "ab")
    os.unlink(log)
    write(log, line(10, "new.example"))
    assert hosts(read_all(log, cp)[0]) == ["h10.new.example"]


def test_rotation_to_a_longer_file_with_same_inode_is_detected(tmp_path: Path) -> None:
    """Same inode, longer than the offset, but other first bytes: a replaced file."""
    log = tmp_path / "access.log"
    write(log, line(1) + line(2))
    _, cp = read_all(log, None)
    write(log, b"".join(line(i, "other.example") for i in range(50, 60)))  # truncate + rewrite
    assert cp is not None and os.stat(log).st_ino == cp.inode
    batches, _ = read_all(log, cp)
    assert lines_of(batches) == list(range(1, 11))


def test_copytruncate_starts_from_zero(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    write(log, b"".join(line(i) for i in range(1, 20)))
    _, cp = read_all(log, None)
    with open(log, "r+b") as fh:  # logrotate copytruncate: same inode, size drops to 0
        fh.truncate(0)
    write(log, line(100, "after.example"), "ab")
    assert cp is not None and os.stat(log).st_ino == cp.inode
    batches, cp2 = read_all(log, cp)
    assert hosts(batches) == ["h100.after.example"]
    assert lines_of(batches) == [1]
    assert cp2 is not None and cp2.offset == len(line(100, "after.example")) and cp2.line == 2


@pytest.mark.parametrize("max_bytes", [1, 50, 170, 300, 1000, 4096])
def test_batches_split_at_max_bytes_never_split_lines(tmp_path: Path, max_bytes: int) -> None:
    log = tmp_path / "access.log"
    data = b"".join(line(i) for i in range(1, 41)) + b"\n" + b"garbage line\n" + line(41)
    write(log, data)
    batches, cp = read_all(log, None, max_bytes=max_bytes)
    assert lines_of(batches) + [q.line for b in batches for q in b.quarantined] != []
    # continuous line numbers across batches; every line seen exactly once
    seen = sorted([*lines_of(batches), *(q.line for b in batches for q in b.quarantined)])
    assert seen == [n for n in range(1, 44) if n != 41]  # line 41 is blank
    assert sum(b.blank_lines for b in batches) == 1
    assert sum(b.lines_read for b in batches) == 43
    offset = 0
    prev_line = 1
    for b in batches:
        assert b.checkpoint is not None
        chunk = data[offset : b.checkpoint.offset]
        assert chunk.endswith(b"\n")  # a batch ends at a line end
        assert len(chunk) <= max_bytes or chunk.count(b"\n") == 1  # over only for one long line
        assert b.checkpoint.line == prev_line + chunk.count(b"\n")
        for n, off in zip(b.frame["line"], b.frame["offset"], strict=True):
            assert data[off:].startswith(line(n if n < 41 else n - 2))
        offset, prev_line = b.checkpoint.offset, b.checkpoint.line
    assert cp is not None and cp.offset == len(data) and cp.line == 44


def test_resume_from_mid_file_batch_checkpoint(tmp_path: Path) -> None:
    """Committing any batch's checkpoint and restarting loses and repeats nothing."""
    log = tmp_path / "access.log"
    write(log, b"".join(line(i) for i in range(1, 30)))
    batches, _ = read_all(log, None, max_bytes=500)
    assert len(batches) > 2
    first = lines_of(batches[:2])
    rest, _ = read_all(log, batches[1].checkpoint, max_bytes=500)
    assert first + lines_of(rest) == list(range(1, 30))


def test_missing_file_raises_input_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.log"
    with pytest.raises(InputError, match="nope.log"):
        list(read_batches(SquidCollector(), missing, None))


def test_directory_raises_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=str(tmp_path)):
        list(read_batches(SquidCollector(), tmp_path, None))


def test_bad_max_bytes(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write(log, line(1))
    with pytest.raises(UsageError):
        list(read_batches(SquidCollector(), log, None, max_bytes=0))
