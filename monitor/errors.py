"""One exception tree for the whole path of data; only monitor/cli maps these to exit codes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """Where a problem is: a file and line (and column), or a collector and offset."""

    file: str
    line: int | None = None
    column: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        out = self.file
        if self.line is not None:
            out += f":{self.line}"
            if self.column is not None:
                out += f":{self.column}"
        if self.field:
            out += f" [{self.field}]"
        return out


@dataclass(frozen=True)
class Problem:
    """One located problem: what is wrong, where, and a hint toward the fix."""

    message: str
    location: Location | None = None
    hint: str | None = None

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"{where}{self.message}{hint}"


class XborderError(Exception):
    """Root of every error the library raises on purpose."""


class UsageError(XborderError):
    """The caller asked for something that cannot be done as asked (exit 2)."""


class ConfigError(XborderError):
    """Configuration or rule data is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class InputError(XborderError):
    """An input file cannot be read at all (not a malformed line: those are quarantined)."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class DataSourceError(XborderError):
    """A reference data file (mmdb, catalog) is missing, corrupt or of the wrong type."""

    def __init__(self, message: str, path: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


class StoreError(XborderError):
    """The evidence store cannot be opened, migrated or written."""


class ReportError(XborderError):
    """A report cannot be rendered or written (template, WeasyPrint or file system)."""
