"""Reading compressed logs (*.gz, as logrotate leaves them): same lines, checkpoints, resume, rotation."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from monitor.collect.follow import FINGERPRINT_BYTES, read_batches
from monitor.collect.squid import SquidCollector
from monitor.errors import InputError
from monitor.records import Checkpoint, ObservationBatch
from tests.support.logfiles import gz, hosts, line, lines_of, read_all, write

DATA = b"".join(line(i) for i in range(1, 200))


def rows(batches: list[ObservationBatch]) -> list[tuple[object, ...]]:
    """Every row with its origin, less the columns that name the file."""
    out = []
    for b in batches:
        for rec in b.frame.drop(columns=["collector"]).itertuples(index=False):
            out.append(tuple(rec))
    return out


def test_gz_reads_the_same_rows_as_the_plain_file(tmp_path: Path) -> None:
    plain = tmp_path / "access.log.1"
    write(plain, DATA)
    packed = gz(tmp_path / "access.log.2.gz", DATA)
    want, _ = read_all(plain, None)
    got, cp = read_all(packed, None)
    assert rows(got) == rows(want) and len(rows(got)) == 199
    assert got[0].source == f"squid:{packed.absolute()}"
    assert sum(b.lines_read for b in got) == 199
    st = os.stat(packed)
    assert cp is not None
    # offsets, lines and the fingerprint all count the decompressed stream (the plain file's bytes),
    # so a generation is recognised by content whether it was compressed or not
    assert (cp.device, cp.inode, cp.offset, cp.line) == (st.st_dev, st.st_ino, len(DATA), 200)
    assert cp.fingerprint == hashlib.sha256(DATA[:FINGERPRINT_BYTES]).hexdigest()
    assert cp.fingerprint == read_all(plain, None)[1].fingerprint  # type: ignore[union-attr]
    assert cp.path == str(packed.absolute())


@pytest.mark.parametrize("max_bytes", [1, 300, 4096, 10**6])
def test_gz_in_small_batches_same_lines_and_offsets(tmp_path: Path, max_bytes: int) -> None:
    packed = gz(tmp_path / "a.log.gz", DATA)
    batches, cp = read_all(packed, None, max_bytes=max_bytes)
    assert lines_of(batches) == list(range(1, 200))
    offset = 0
    for b in batches:
        assert b.checkpoint is not None
        for n, off in zip(b.frame["line"], b.frame["offset"], strict=True):
            assert DATA[off:].startswith(line(n))
        assert DATA[offset : b.checkpoint.offset].endswith(b"\n")
        offset = b.checkpoint.offset
    assert cp is not None and cp.offset == len(DATA)


def test_gz_resume_from_any_batch_checkpoint(tmp_path: Path) -> None:
    packed = gz(tmp_path / "a.log.gz", DATA)
    batches, last = read_all(packed, None, max_bytes=2000)
    assert len(batches) > 3
    for k in range(len(batches)):
        rest, _ = read_all(packed, batches[k].checkpoint, max_bytes=2000)
        assert lines_of(batches[: k + 1]) + lines_of(rest) == list(range(1, 200))
        assert rows(batches[k + 1 :]) == rows(rest)  # same rows, same offsets, re-decompressed and skipped
    assert read_all(packed, last)[0] == []  # read to the end: nothing more


def test_gz_is_final_its_unterminated_last_line_is_read(tmp_path: Path) -> None:
    packed = gz(tmp_path / "a.log.gz", line(1) + line(2).rstrip(b"\n"))
    batches, cp = read_all(packed, None)  # final not given: a .gz is complete by definition
    assert hosts(batches) == ["h1.example.com", "h2.example.com"]
    assert cp is not None and cp.line == 3 and cp.offset == len(line(1)) + len(line(2)) - 1


def test_gz_with_several_members(tmp_path: Path) -> None:
    """`cat a.gz b.gz > c.gz` is a valid gzip stream: both parts are read, in order."""
    one, two = gz(tmp_path / "1.gz", line(1) + line(2)), gz(tmp_path / "2.gz", line(3))
    both = tmp_path / "both.log.gz"
    write(both, one.read_bytes() + two.read_bytes())
    assert lines_of(read_all(both, None)[0]) == [1, 2, 3]


def test_gz_checkpoint_of_another_file_starts_from_zero(tmp_path: Path) -> None:
    packed = gz(tmp_path / "a.log.gz", DATA)
    _, cp = read_all(packed, None)
    assert cp is not None
    other = gz(tmp_path / "b.log.gz", line(500) + line(501))
    assert lines_of(read_all(other, cp)[0]) == [1, 2]
    # same inode, other compressed head (the file was replaced in place): from zero too
    gz(packed, line(600, "replaced.example") + DATA, mtime=1)
    assert os.stat(packed).st_ino == cp.inode
    assert hosts(read_all(packed, cp)[0])[0] == "h600.replaced.example"


def test_truncated_gz_yields_whole_lines_then_raises(tmp_path: Path) -> None:
    """A .gz still being written (or cut short): the lines before the cut, then InputError."""
    full = gz(tmp_path / "full.gz", DATA).read_bytes()
    cut = tmp_path / "cut.log.gz"
    write(cut, full[: len(full) // 2])
    got: list[ObservationBatch] = []
    with pytest.raises(InputError, match="cut.log.gz"):
        for b in read_batches(SquidCollector(), cut, None, max_bytes=500):
            got.append(b)
    n = lines_of(got)
    assert n and n == list(range(1, len(n) + 1)) and len(n) < 199
    # once the file is whole, reading resumes after the last committed batch
    write(cut, full)
    rest, _ = read_all(cut, got[-1].checkpoint)
    assert n + lines_of(rest) == list(range(1, 200))


def test_not_gzip_data_raises_input_error(tmp_path: Path) -> None:
    fake = tmp_path / "fake.log.gz"
    write(fake, line(1))
    with pytest.raises(InputError, match="fake.log.gz"):
        list(read_batches(SquidCollector(), fake, None))


def test_renamed_gz_is_drained_by_inode(tmp_path: Path) -> None:
    """A partly read access.log.1.gz renamed to .2.gz (logrotate shifts them): read on from the checkpoint."""
    first = gz(tmp_path / "access.log.1.gz", DATA)
    batches, _ = read_all(first, None, max_bytes=3000)
    cp = batches[0].checkpoint
    assert cp is not None
    os.rename(first, tmp_path / "access.log.2.gz")
    gz(first, line(900, "newer.example"))
    got, _ = read_all(first, cp)
    assert lines_of(got) == list(range(len(lines_of(batches[:1])) + 1, 200)) + [1]
    assert hosts(got)[-1] == "h900.newer.example"


def test_rotated_then_compressed_file_is_read_to_its_end(tmp_path: Path) -> None:
    """logrotate without delaycompress: the checkpointed file becomes access.log.1.gz (a new inode)."""
    log = tmp_path / "access.log"
    write(log, line(1) + line(2))
    _, cp = read_all(log, None)
    write(log, line(3) + line(4), "ab")  # written after our checkpoint, before rotation
    gz(tmp_path / "access.log.1.gz", log.read_bytes())
    older = gz(tmp_path / "access.log.2.gz", line(50, "older.example"))
    os.utime(older, ns=(cp.mtime_ns - 10**9, cp.mtime_ns - 10**9))  # rotated before our checkpoint  # type: ignore[operator]
    os.unlink(log)
    write(log, line(10, "new.example"))
    batches, cp2 = read_all(log, cp)
    assert hosts(batches) == ["h3.example.com", "h4.example.com", "h10.new.example"]
    assert lines_of(batches) == [3, 4, 1]
    drained = batches[0].checkpoint
    assert drained is not None and drained.path == str(tmp_path / "access.log.1.gz")
    assert cp2 is not None and cp2.path == str(log.absolute())
    # crash after committing only the drained batch: the .gz is found by inode, nothing read twice
    assert hosts(read_all(log, drained)[0]) == ["h10.new.example"]


def test_checkpoint_type_round_trip(tmp_path: Path) -> None:
    packed = gz(tmp_path / "a.log.gz", DATA)
    _, cp = read_all(packed, None)
    assert isinstance(cp, Checkpoint) and cp.source == f"squid:{packed.absolute()}"
