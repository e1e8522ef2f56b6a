"""The one small interface every line-oriented collector implements (parse a chunk of whole lines)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import pyarrow as pa

from monitor.records import Quarantined, as_pandas

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Parsed:
    """What a collector made of one chunk: rows in BATCH_SCHEMA, quarantine, and counts.

    Invariant checked by the contract test: lines_read == rows of `table` + len(quarantined) + blank_lines.
    """

    table: pa.Table
    quarantined: list[Quarantined] = field(default_factory=list)
    lines_read: int = 0
    blank_lines: int = 0

    @property
    def frame(self) -> pd.DataFrame:
        """The rows as a pandas frame (for inspection; imports pandas)."""
        return as_pandas(self.table)


class LineCollector(ABC):
    """Turns whole lines of one log format into BATCH_SCHEMA rows; never raises on bad lines.

    A collector that needs settings (a log_format string, a field mapping) takes them as keyword
    arguments of `__init__`, every one with a default so `Cls()` works, and raises
    monitor.errors.UsageError naming the option when a value is unusable. The CLI passes
    `-o KEY=VALUE` options and the config `sources[].options` the same way.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    # A few valid lines of the format: the contract test parses them (and garbage around them).
    sample: ClassVar[bytes]
    # parse_chunk depends on nothing but its arguments (no state carried from chunk to chunk, as
    # Zeek's headers and DNS answers or a CSV header are): a file's chunks may be parsed at once.
    stateless: ClassVar[bool] = False

    @abstractmethod
    def parse_chunk(self, chunk: bytes, *, source: str, first_line: int, base_offset: int) -> Parsed:
        """Parse `chunk` (whole lines, each ending in b"\\n" except perhaps the last).

        `first_line` is the 1-based line number of the chunk's first line and `base_offset` the
        byte offset of its first byte in the file, so rows and quarantine carry their origin.
        A line that cannot be parsed is quarantined with its reason and field; nothing raises.
        """
