"""Collect stage helper: an nginx `log_format` compiled once into regexes Arrow runs over whole chunks."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from monitor.errors import UsageError

OPTION = "log_format"
STR = pa.large_string()

# nginx's predefined `combined` and the `main` of its stock nginx.conf (combined + X-Forwarded-For).
NAMED: dict[str, str] = {
    "combined": '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent"',
}
NAMED["main"] = NAMED["combined"] + ' "$http_x_forwarded_for"'
TIME_VARS = ("msec", "time_iso8601", "time_local")  # in order of preference: most precise first

# RE2's \S spelled out, so that Python's re (used to explain rejected lines) agrees on Unicode spaces.
_TOKEN = r"[^\t\n\f\r ]+"
_COUNT = r"[0-9]{1,18}|-"  # 18 digits: never overflows int64
_LIST = r"[^\t\n\f\r ,]+(?:(?:, | : )[^\t\n\f\r ,]+)*"  # nginx's upstream lists: "a:80, b:80 : c:80"
_SECONDS = r"[0-9]{1,9}(?:\.[0-9]{1,6})?|-"
ANY = ".*?"

# name -> (pattern, what a value looks like). Typed variables are checked wherever they stand;
# every other variable (remote_addr, request, host, http_*, ...) matches one token outside
# quotes and anything inside them.
TYPED: dict[str, tuple[str, str]] = {
    "time_local": (
        r"[0-9]{2}/[A-Za-z]{3}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}",
        "a time like 10/Oct/2000:13:55:36 -0700",
    ),
    "time_iso8601": (
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:[+-][0-9]{2}:[0-9]{2}|Z)",
        "a time like 2000-10-10T13:55:36-07:00",
    ),
    "msec": (r"[0-9]{1,12}\.[0-9]{1,6}", "epoch seconds like 1700000000.123"),
    "status": (r"[0-9]{3}", "a 3-digit HTTP status"),
    "body_bytes_sent": (_COUNT, "a byte count"),
    "bytes_sent": (_COUNT, "a byte count"),
    "request_length": (_COUNT, "a byte count"),
    "request_time": (_SECONDS, "seconds like 0.005"),
    "connection": (r"[0-9]{1,20}", "a connection serial number"),
    "connection_requests": (r"[0-9]{1,20}", "a request count"),
    "scheme": (r"[A-Za-z][A-Za-z0-9+.-]*", "a URL scheme"),
    "upstream_addr": (_LIST, "an address list like 10.0.0.1:80, 10.0.0.2:80"),
    "upstream_status": (_LIST, "a status list like 502, 200"),
    "upstream_response_time": (_LIST, "a list of seconds like 0.004, 0.010"),
    "upstream_connect_time": (_LIST, "a list of seconds"),
    "upstream_header_time": (_LIST, "a list of seconds"),
    # pseudo-variables of the built-in Apache/nginx formats (see AccessLogCollector)
    "_ident": (_TOKEN, "an identd name or '-'"),
}
# Unquoted, a request line ("GET / HTTP/1.1") has spaces; the client prefix of the built-in formats
# is whatever comes before "ident user [" (a client, "vhost client" or an X-Forwarded-For list).
_UNQUOTED_SPECIAL = {"request": ANY, "_client": ".+?"}
_LABELS = {"_client": "remote_addr", "_ident": "ident"}
_VAR = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")
_META = re.compile(r"([\\^$.|?*+()\[\]{}])")


@dataclass(frozen=True)
class Piece:
    """Literal text, or one variable with the regex fragment it compiles to."""

    text: str  # the literal, or the variable's name
    var: bool
    quoted: bool = False
    fragment: str = ""  # regex; a named group `v_NAME` on the first occurrence of a wanted variable
    plain: str = ""  # the same without the group, for explaining rejected lines
    lazy: bool = False  # extends to the next literal (".*?"): explained by looking for that literal

    @property
    def label(self) -> str:
        return _LABELS.get(self.text, self.text)


def _unwrap(spec: str) -> str:
    """A named format, nginx.conf's quoted form ('...' '...' concatenated), or the format itself."""
    s = spec.strip()
    if s in NAMED:
        return NAMED[s]
    if not s.startswith("'"):
        return spec
    out, i = [], 0
    while i < len(s):
        if s[i].isspace():
            i += 1
            continue
        if s[i] != "'":
            raise UsageError(f"{OPTION}: text outside quotes at column {i + 1} of {spec!r}")
        j, buf = i + 1, []
        while j < len(s) and s[j] != "'":
            if s[j] == "\\" and j + 1 < len(s):  # nginx.conf's escapes: \' \" \\
                j += 1
            buf.append(s[j])
            j += 1
        if j >= len(s):
            raise UsageError(f"{OPTION}: unbalanced quotes: the quote at column {i + 1} of {spec!r} is never closed")
        out.append("".join(buf))
        i = j + 1
    return "".join(out)


class LogFormat:
    """One nginx log_format: its pieces, a full-line regex, and per-quote segments for the fast path."""

    def __init__(self, spec: str, wanted: Iterable[str]) -> None:
        self.spec = _unwrap(spec).rstrip()  # lines are right-trimmed too
        self.pieces = self._tokenize(self.spec, frozenset(wanted))
        names = {p.text for p in self.pieces if p.var}
        if not names & set(TIME_VARS):
            raise UsageError(
                f"{OPTION}: no time variable (${', $'.join(TIME_VARS)}) in {self.spec!r}: every row needs a time"
                " (the option takes nginx's $variable syntax; leave it unset for Apache's common/combined)"
            )
        self.variables = tuple(sorted(names))
        self.regex = "^" + "".join(p.fragment for p in self.pieces) + "$"
        self._segments = _segments(self.pieces)
        self.nparts = len(self._segments)
        self._py = [re.compile(p.plain) if p.var and not p.lazy else None for p in self.pieces]

    @staticmethod
    def _tokenize(spec: str, wanted: frozenset[str]) -> list[Piece]:
        pieces: list[Piece] = []
        quoted, seen, pos = False, set(), 0

        def literal(text: str) -> None:
            nonlocal quoted
            if text:
                esc = _META.sub(r"\\\1", text)
                pieces.append(Piece(text, False, quoted, esc, esc))
                quoted ^= text.count('"') % 2 == 1

        for m in _VAR.finditer(spec):
            literal(spec[pos : m.start()])
            name = m.group(1) or m.group(2)
            if name in TYPED:
                pattern = TYPED[name][0]
            elif quoted:
                pattern = ANY  # inside quotes anything goes, up to the closing quote
            else:
                # Unknown variables (and the known untyped ones) match one non-space token; an
                # unknown one is checked for shape only and otherwise ignored.
                pattern = _UNQUOTED_SPECIAL.get(name, _TOKEN)
            plain = f"(?:{pattern})"
            fragment = f"(?P<v_{name}>{pattern})" if name in wanted and name not in seen else plain
            seen.add(name)
            pieces.append(Piece(name, True, quoted, fragment, plain, pattern in (ANY, ".+?")))
            pos = m.end()
        literal(spec[pos:])
        if quoted:
            raise UsageError(f'{OPTION}: unbalanced quotes: an odd number of " in {spec!r}')
        return pieces

    def fast(self, parts: pa.ListArray) -> tuple[np.ndarray[Any, Any], dict[str, pa.Array]]:
        """Rows already split at '"' into exactly `nparts` parts: which match, and their values."""
        n = len(parts)
        ok = np.ones(n, dtype=bool)
        values: dict[str, pa.Array] = {}
        for k, (kind, arg) in enumerate(self._segments):
            part = pc.list_element(parts, k)
            if kind == "skip":  # an unwanted untyped variable alone between quotes: anything goes
                continue
            if kind == "direct":  # a wanted one: the part is its value
                values[arg] = part
                continue
            if kind == "literal":
                hit = pc.equal(part, arg)
            elif kind == "check":  # variables checked for shape only: no groups, so RE2's fast DFA
                hit = pc.match_substring_regex(part, arg)
            else:
                got = pc.extract_regex(part, arg)
                hit = pc.is_valid(got)
                values.update(_fields(got))
            ok &= pc.fill_null(hit, False).to_numpy(zero_copy_only=False)
        return ok, values

    def full(self, lines: pa.Array) -> tuple[np.ndarray[Any, Any], dict[str, pa.Array]]:
        """The slow path: the whole-line regex, where quoted values may hold quotes themselves."""
        got = pc.extract_regex(lines, self.regex)
        return pc.fill_null(pc.is_valid(got), False).to_numpy(zero_copy_only=False), _fields(got)

    def explain(self, line: str) -> tuple[int, str | None, str]:
        """(how far the line matched, field, reason): the first piece of the format the line breaks.

        A walk with plain string searches, linear in the line: a regex engine that backtracks
        could take forever on a hostile line full of quotes.
        """
        pos, pieces = 0, self.pieces
        prev: tuple[Piece, int] | None = None  # the variable just read and where it started
        for i, p in enumerate(pieces):
            nxt = next((q.text for q in pieces[i + 1 :] if not q.var), None)
            if not p.var:
                if line.startswith(p.text, pos):
                    pos += len(p.text)
                    prev = None
                    continue
                near = next((q for q in pieces[i + 1 :] if q.var), None)
                if pos >= len(line):
                    return pos, near.label if near else None, f"line ends before {_field(near)}"
                if prev and _runs_on(prev[0], line, pos, p.text):  # e.g. status "2000": the token is too long
                    return prev[1], prev[0].label, _expected(prev[0], line, prev[1], p.text)
                where = f"before {_field(near)}" if near else "at the end"
                return pos, near.label if near else None, f"expected {p.text!r} {where}, got {line[pos : pos + 20]!r}"
            if p.quoted and nxt is not None and nxt.startswith('"') and line.find('"', pos) < 0:
                return pos, p.label, f"field '{p.label}': unterminated quote"
            end = self._extent(i, line, pos, nxt)
            if end is None and p.text == "_client":
                return pos, p.label, f"expected 'CLIENT IDENT USER [TIME]' at the start, got {line[pos : pos + 40]!r}"
            if end is None and p.lazy:
                return pos, p.label, f"field '{p.label}': not followed by {nxt!r}"
            if end is None:
                return pos, p.label, _expected(p, line, pos, nxt)
            prev, pos = (p, pos), end
        last = next((p for p in reversed(pieces) if p.var), None)
        if pos < len(line):
            if prev and _runs_on(prev[0], line, pos, " "):
                return prev[1], prev[0].label, _expected(prev[0], line, prev[1], None)
            return pos, last.label if last else None, f"unexpected text after {_field(last)}: {line[pos : pos + 60]!r}"
        return pos, None, "does not match the log format"

    def _extent(self, i: int, line: str, pos: int, nxt: str | None) -> int | None:
        p, rx = self.pieces[i], self._py[i]
        if p.text == "_client":  # everything before the last two tokens ahead of " ["
            head = line[pos : line.find(" [", pos)] if " [" in line[pos:] else ""
            split = head.rsplit(" ", 2)
            return pos + len(split[0]) if len(split) == 3 and split[0] else None
        if rx is None:  # lazy: up to the next literal
            if nxt is None:
                return len(line)
            at = line.find(nxt, pos)
            return None if at < 0 else at
        m = rx.match(line, pos)
        return None if m is None else m.end()


def _fields(got: pa.Array) -> dict[str, pa.Array]:
    """The named groups of an extract_regex result, by variable name (groups are `v_NAME`)."""
    names = [got.type.field(i).name for i in range(got.type.num_fields)]
    return {name[2:]: pc.struct_field(got, name) for name in names}


def _field(p: Piece | None) -> str:
    return f"field '{p.label}'" if p else "the end"


def _runs_on(p: Piece, line: str, pos: int, literal: str) -> bool:
    """A shaped variable whose token goes on past its pattern (where a separator should come)."""
    return not p.lazy and not line[pos].isspace() and line[pos] != literal[:1]


def _expected(p: Piece, line: str, pos: int, nxt: str | None) -> str:
    desc = TYPED[p.text][1] if p.text in TYPED else "a value"
    return f"field '{p.label}': expected {desc}, got {_got(line, pos, nxt)!r}"


def _got(line: str, pos: int, nxt: str | None) -> str:
    at = line.find(nxt, pos) if nxt else -1
    value = line[pos:at] if at >= 0 else line[pos:].split(" ", 1)[0]
    return value if len(value) <= 60 else value[:57] + "..."


def _segments(pieces: Sequence[Piece]) -> list[tuple[str, str]]:
    """The format cut at each literal '"': per part, how to read it (literal, direct, skip, check, regex)."""
    segs: list[list[Piece]] = [[]]
    for p in pieces:
        if p.var:
            segs[-1].append(p)
            continue
        chunks = p.text.split('"')
        for k, chunk in enumerate(chunks):
            if k:
                segs.append([])
            if chunk:
                esc = _META.sub(r"\\\1", chunk)
                segs[-1].append(Piece(chunk, False, fragment=esc, plain=esc))
    out: list[tuple[str, str]] = []
    for seg in segs:
        if not any(p.var for p in seg):
            out.append(("literal", "".join(p.text for p in seg)))
        elif len(seg) == 1 and seg[0].plain == f"(?:{ANY})":
            out.append(("direct", seg[0].text) if seg[0].fragment != seg[0].plain else ("skip", ""))
        else:
            regex = "^" + "".join(p.fragment for p in seg) + "$"
            out.append(("regex" if "(?P<" in regex else "check", regex))
    return out


def match_lines(formats: Sequence[LogFormat], lines: pa.Array) -> tuple[np.ndarray[Any, Any], dict[str, pa.Array]]:
    """Indices of the lines some format matches (ascending), and each wanted variable's values there.

    Fast path: one split at '"' for the whole chunk, then per part a short anchored regex (or none
    at all for a lone quoted variable). Lines with quotes inside quoted values (Apache's raw
    `"GET /?q="x" HTTP/1.0"`) fall through to the whole-line regex, whose lazy quoted groups find
    the split that lets the rest of the line match. Formats are tried in order.
    """
    n = len(lines)
    done = np.zeros(n, dtype=bool)
    found: list[tuple[np.ndarray[Any, Any], dict[str, pa.Array]]] = []
    if n == 0:
        return np.zeros(0, dtype=np.int64), {}
    parts = pc.split_pattern(lines, '"')
    nparts = pc.fill_null(pc.list_value_length(parts), -1).to_numpy(zero_copy_only=False)
    for f in formats:
        idx = np.flatnonzero(~done & (nparts == f.nparts))
        if idx.size:
            ok, vals = f.fast(parts if idx.size == n else parts.take(pa.array(idx)))
            _keep(found, done, idx, ok, vals)
    valid = pc.is_valid(lines).to_numpy(zero_copy_only=False)
    for f in formats:
        idx = np.flatnonzero(~done & valid)
        if idx.size:
            ok, vals = f.full(lines.take(pa.array(idx)))
            _keep(found, done, idx, ok, vals)
    if not found:
        return np.zeros(0, dtype=np.int64), {}
    if len(found) == 1:  # the usual case: one format, all on the fast path; already in line order
        return found[0][0], {k: v.cast(STR) for k, v in found[0][1].items()}
    all_idx = np.concatenate([i for i, _ in found])
    order = pa.array(np.argsort(all_idx, kind="stable"))
    names = sorted({k for _, v in found for k in v})
    values = {}
    for name in names:
        cols = [v[name].cast(STR) if name in v else pa.nulls(len(i), STR) for i, v in found]
        values[name] = pa.concat_arrays([c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in cols])
        values[name] = values[name].take(order)
    return np.sort(all_idx), values


def _keep(
    found: list[tuple[np.ndarray[Any, Any], dict[str, pa.Array]]],
    done: np.ndarray[Any, Any],
    idx: np.ndarray[Any, Any],
    ok: np.ndarray[Any, Any],
    vals: dict[str, pa.Array],
) -> None:
    if ok.all():
        found.append((idx, vals))
        done[idx] = True
    elif ok.any():
        keep = pa.array(ok)
        found.append((idx[ok], {k: v.filter(keep) for k, v in vals.items()}))
        done[idx[ok]] = True


def explain(formats: Sequence[LogFormat], line: str) -> tuple[str | None, str]:
    """Why no format matched `line`, told by the format that got furthest into it (first on ties)."""
    best = max((f.explain(line) for f in formats), key=lambda r: r[0])  # max keeps the first of equals
    return best[1], best[2]
