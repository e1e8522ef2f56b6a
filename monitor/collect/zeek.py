"""Collect stage, Zeek: conn/ssl/http/dns logs (TSV with headers, or JSON lines) -> BATCH_SCHEMA rows."""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import BinaryIO, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from monitor.collect.arrowtext import per_unique
from monitor.collect.base import LineCollector, Parsed
from monitor.collect.generic import open_log, read_json
from monitor.collect.genericlines import Checks, Lines, Part
from monitor.collect.genericvalues import as_int, as_text, hostname, ip_ok, parse_ts
from monitor.collect.pii import pii_kinds
from monitor.collect.zeekdns import DnsNames, UidNames
from monitor.errors import UsageError

# How a log line becomes a row (id.orig_h -> source_ip, id.resp_h -> dest_ip, id.resp_p -> dest_port):
#   ssl   dest_host = server_name (SNI); protocol "tls"
#   http  dest_host = host header (port dropped); method; status = status_code (0: no reply);
#         bytes_out/in = request/response_body_len; pii from uri; protocol "http"
#   conn  protocol = first service ("ssl" read as "tls") or proto; bytes_out/in = orig/resp_bytes
#         (payload; orig/resp_ip_bytes, headers included, when those are unset); dest_host from DNS
#   dns   a query to a resolver: dest_ip = the resolver, dest_host null (the query name is not
#         where that packet went); protocol "dns". Its A/AAAA answers feed the name cache.
# Egress: a conn row is not egress when its conn_state shows no answer (S0 no reply, REJ
# rejected, RSTOS0/SH SYN then RST/FIN without SYN-ACK, OTH midstream) and no payload went
# either way; such rows get status 0 ("never answered", as Squid's). A UDP S0 that carried
# payload out (syslog, telemetry to a foreign collector) is egress: the data left. Every ssl,
# http and dns row is egress; whether the destination is internal is the resolver's call.
#
# Log type: a known #path (TSV) or "_path" (JSON) wins; else the `log_type` option; else, for
# JSON, the first of SIGNS whose keys the line has. Any other line is quarantined.
#
# DNS names: answers learnt from dns rows name later conn rows (and ssl/http rows without a
# name) whose dest_ip was answered, while the answer is fresh (its TTL plus `dns_ttl_grace`).
# The cache lives in the collector instance: it spans the files of one run in the order given
# (`xborder ingest zeek dns.log conn.log`), holds at most `dns_cache_size` addresses (the most
# recently answered are kept) and is NOT persisted: after a restart, conn rows are named only
# once dns rows have been read again. An address shared by many names keeps the last one.
#
# One connection, two logs (ssl.log or http.log, and conn.log): its conn row, found by uid among
# ssl/http rows read before (zeekdns.UidNames), takes their name and weight 0: counted once.
LOG_TYPES = ("conn", "ssl", "http", "dns")
COMMON = ("ts", "uid", "id.orig_h", "id.resp_h", "id.resp_p")
NEEDED = {
    "conn": (*COMMON, "proto", "service", "orig_bytes", "resp_bytes", "orig_ip_bytes", "resp_ip_bytes", "conn_state"),
    "ssl": (*COMMON, "server_name"),
    "http": (*COMMON, "method", "host", "uri", "status_code", "request_body_len", "response_body_len"),
    "dns": (*COMMON, "query", "answers", "TTLs"),
}
REQUIRED = ("ts", "id.orig_h", "id.resp_h")
SETS = ("answers", "TTLs")  # Zeek set/vector fields we read: joined with #set_separator in TSV
# A JSON line without "_path" is typed by the first of these groups with a key present in it.
SIGNS = (
    ("dns", ("query", "qtype", "qtype_name", "answers", "trans_id", "rcode")),
    ("http", ("uri", "method", "status_code", "trans_depth", "user_agent")),
    ("ssl", ("server_name", "cipher", "established", "curve", "ssl_history", "resumed")),
    ("conn", ("conn_state", "history", "orig_bytes", "service", "duration", "orig_pkts")),
)
_SIGN_KEYS = [k for _, keys in SIGNS for k in keys]
JSON_FIELDS = list(dict.fromkeys(["_path", *(f for fields in NEEDED.values() for f in fields), *_SIGN_KEYS]))
NO_ANSWER = ("S0", "REJ", "RSTOS0", "SH", "OTH")
RECOVER_BYTES = 64 << 20  # how far back a restart looks for the #fields header in force
_PATH = re.compile(r"^(conn|ssl|http|dns)(?:[_\-.].*)?$")
_ESC = re.compile(rb"\\x([0-9a-fA-F]{2})")
_NULL = pa.scalar(None, pa.string())
_RANK = {"dns": 0, "ssl": 1, "http": 1, "conn": 2}


@dataclass(frozen=True)
class _Tsv:
    """The TSV header in force: how values are written and which columns a line has."""

    separator: str = "\t"
    set_separator: str = ","
    empty: str = "(empty)"
    unset: str = "-"
    path: str | None = None
    fields: tuple[str, ...] | None = None
    line: int | None = None  # where #fields was read (for reasons)

    def read(self, header: str, line: int | None) -> _Tsv:
        header = header.lstrip(" ")
        if header.startswith("#separator"):
            return replace(self, separator=_unescape_one(header[len("#separator") :].strip()) or "\t")
        key, _, value = header[1:].partition(self.separator)
        if key == "fields":
            return replace(self, fields=tuple(value.split(self.separator)), line=line)
        value = _unescape_one(value)
        if key == "set_separator":
            return replace(self, set_separator=value)
        if key == "empty_field":
            return replace(self, empty=value)
        if key == "unset_field":
            return replace(self, unset=value)
        return replace(self, path=value) if key == "path" else self


def _unescape_one(text: str) -> str:
    return _ESC.sub(lambda m: bytes([int(m[1], 16)]), text.encode()).decode("utf-8", "backslashreplace")


def _unescape(arr: pa.Array) -> pa.Array:
    """Zeek's \\xNN escapes decoded, once per distinct value that has any."""
    has = pc.fill_null(pc.match_substring(arr, "\\x"), False)
    if not pc.any(has).as_py():
        return arr

    def fix(u: pa.Array) -> dict[str, pa.Array]:
        return {"v": pa.array([_unescape_one(v) for v in u.to_pylist()], pa.string())}

    return pc.replace_with_mask(arr, has, per_unique(arr.filter(has), fix)["v"])


def _number(value: int | float | str, option: str, kind: type[int] | type[float]) -> int | float:
    try:
        out = kind(value)
    except (TypeError, ValueError):
        out = -1
    if out < 0:
        raise UsageError(f"option '{option}': expected a non-negative number, got {value!r}")
    return out


Getter = Callable[[str], pa.Array | None]


class ZeekCollector(LineCollector):
    """Zeek conn.log, ssl.log, http.log and dns.log, in TSV or JSON."""

    name: ClassVar[str] = "zeek"
    description: ClassVar[str] = "Zeek conn/ssl/http/dns logs (TSV or JSON); dns answers name conn rows"
    sample: ClassVar[bytes] = (
        b'{"ts":1709287200.1,"uid":"CmES5u32sYpV7JYN","id.orig_h":"10.0.0.5","id.orig_p":50312,"id.resp_h":"10.0.0.53",'
        b'"id.resp_p":53,"proto":"udp","trans_id":4242,"query":"api.example.com","qtype_name":"A","rcode":0,'
        b'"answers":["93.184.216.34"],"TTLs":[300.0]}\n'
        b'{"ts":1709287200.2,"uid":"C7mn3a1bYyMq5TmA2","id.orig_h":"10.0.0.5","id.orig_p":50313,'
        b'"id.resp_h":"93.184.216.34","id.resp_p":443,"proto":"tcp","service":"ssl","duration":1.5,"orig_bytes":700,'
        b'"resp_bytes":5120,"conn_state":"SF","history":"ShADadFf"}\n'
        b'{"ts":"2024-03-01T10:00:00.300Z","uid":"C7mn3a1bYyMq5TmA2","id.orig_h":"10.0.0.5","id.orig_p":50313,'
        b'"id.resp_h":"93.184.216.34","id.resp_p":443,"version":"TLSv13","server_name":"api.example.com",'
        b'"established":true}\n'
        b'{"ts":1709287201.0,"uid":"CpQfkTi8xytq87HW2","id.orig_h":"10.0.0.6","id.orig_p":40100,'
        b'"id.resp_h":"198.51.100.7","id.resp_p":80,"trans_depth":1,"method":"POST","host":"upload.example.net",'
        b'"uri":"/form?email=a%40b.example","request_body_len":2048,"response_body_len":12,"status_code":201}\n'
    )

    def __init__(self, log_type: str | None = None, dns_cache_size: int | str = 100_000,
                 dns_ttl_grace: float | str = 300.0, uid_cache_size: int | str = 200_000) -> None:  # fmt: skip
        if log_type in ("", "auto"):
            log_type = None
        if log_type is not None and log_type not in LOG_TYPES:
            raise UsageError(f"option 'log_type': expected one of {', '.join(LOG_TYPES)}, got {log_type!r}")
        self.log_type = log_type
        size = int(_number(dns_cache_size, "dns_cache_size", int))
        self.dns = DnsNames(size, _number(dns_ttl_grace, "dns_ttl_grace", float))
        self.uids = UidNames(int(_number(uid_cache_size, "uid_cache_size", int)))
        self._tsv: dict[str, _Tsv] = {}  # source -> TSV header in force at the end of the last chunk

    def parse_chunk(self, chunk: bytes, *, source: str, first_line: int, base_offset: int) -> Parsed:
        lines = Lines(chunk, source, first_line, base_offset)
        live = lines.live()
        headers = lines.starting_with(live, "#")  # header and comment lines count as blank
        lines.blank[headers] = True
        objects = lines.starting_with(live, "{[")
        data = live[~np.isin(lines.first[live], np.frombuffer(b"#{[", dtype=np.uint8))]
        # DNS answers are learnt first, then ssl/http connections, so they name (and, by uid, mark
        # as counted) the chunk's conn rows even when Zeek wrote those a little earlier. Rows come
        # out in line order whatever the order they were made in.
        jobs = self._tsv_jobs(lines, headers, data, first_line, base_offset) + self._json_jobs(lines, objects)
        jobs.sort(key=lambda job: _RANK[job[0]])
        return lines.parsed([self._rows(kind, get, lines, idx) for kind, get, idx in jobs], self.name)

    # ---------------------------------------------------------------- TSV

    def _tsv_jobs(self, lines: Lines, headers: np.ndarray, data: np.ndarray, first_line: int, offset: int
                  ) -> list[tuple[str, Getter, np.ndarray]]:  # fmt: skip
        state = self._tsv.get(lines.source)
        if state is None and first_line > 1 and len(data):
            state = _recover(lines.source, offset) or _Tsv()  # remembered, so a failed try is not repeated
        jobs = []
        for k, piece in enumerate(np.split(data, np.searchsorted(data, headers))):
            if k:
                h = int(headers[k - 1])
                state = (state or _Tsv()).read(str(lines.text[h].as_py()), first_line + h)
            if len(piece):
                job = self._tsv_piece(lines, piece, state)
                if job is not None:
                    jobs.append(job)
        if state is not None:
            self._tsv[lines.source] = state
        return jobs

    def _tsv_piece(self, lines: Lines, idx: np.ndarray, state: _Tsv | None) -> tuple[str, Getter, np.ndarray] | None:
        def reject(reason: str, field: str | None = None) -> None:
            for i in idx.tolist():
                lines.quarantine(i, reason, field)

        if state is None or state.fields is None:
            reject("no #fields header before this line (a Zeek TSV log starts with one)")
            return None
        kind = _kind(state.path) or self.log_type
        if kind is None:
            reject(f"#path {state.path!r} is not one of {', '.join(LOG_TYPES)} (or set -o log_type=...)")
            return None
        where = f"#fields at line {state.line}" if state.line else "#fields"
        missing = [f for f in REQUIRED if f not in state.fields]
        if missing:
            reject(f"{where} has no '{missing[0]}' column", missing[0])
            return None
        text = lines.take(idx)
        count = pc.add(pc.count_substring(text, state.separator), 1).to_numpy(zero_copy_only=False)
        bad = count != len(state.fields)
        for j in np.flatnonzero(bad).tolist():
            lines.quarantine(int(idx[j]), f"expected {len(state.fields)} fields as in {where}, got {count[j]}")
        idx, text = idx[~bad], text.filter(pa.array(~bad))
        pos = {f: state.fields.index(f) for f in NEEDED[kind] if f in state.fields}
        parts = pc.split_pattern(text, state.separator, max_splits=max(pos.values()) + 1)

        def get(f: str) -> pa.Array | None:
            if f not in pos:
                return None
            v = pc.list_element(parts, pos[f])
            v = pc.if_else(pc.equal(v, state.unset), _NULL, v)
            empty = pc.equal(v, state.empty)
            if f not in SETS:
                return _unescape(pc.if_else(empty, "", v))
            items = pc.split_pattern(pc.if_else(empty, "", v), state.set_separator)
            items = pc.if_else(empty, pa.scalar([], pa.list_(pa.string())), items)
            return pa.ListArray.from_arrays(items.offsets, _unescape(items.values), mask=pc.is_null(items))

        return kind, get, idx

    # ---------------------------------------------------------------- JSON

    def _json_jobs(self, lines: Lines, idx: np.ndarray) -> list[tuple[str, Getter, np.ndarray]]:
        jobs: list[tuple[str, Getter, np.ndarray]] = []
        for cols, rows in read_json(lines, idx, JSON_FIELDS):
            n = len(rows)
            path = as_text(cols.get("_path"), n)
            kind = _kinds(path)
            if self.log_type:
                kind = pc.fill_null(kind, self.log_type)
            else:
                for name, keys in SIGNS:
                    has = pa.repeat(pa.scalar(False), n)
                    for k in keys:
                        if k in cols:
                            has = pc.or_(has, pc.is_valid(cols[k]))
                    kind = pc.if_else(pc.and_(pc.is_null(kind), pc.is_null(path)), pc.if_else(has, name, _NULL), kind)
            for j in np.flatnonzero(pc.is_null(kind).to_numpy(zero_copy_only=False)).tolist():
                p = path[j].as_py()
                why = f"a record of log {p!r}, not one of {', '.join(LOG_TYPES)}" if p else (
                    "not a Zeek conn, ssl, http or dns record (no _path and none of their fields)")  # fmt: skip
                lines.quarantine(int(rows[j]), why)
            for name in LOG_TYPES:
                sel = pc.fill_null(pc.equal(kind, name), False)
                if pc.any(sel).as_py():
                    sub = {k: v.filter(sel) for k, v in cols.items()}
                    jobs.append((name, sub.get, rows[sel.to_numpy(zero_copy_only=False)]))
        return jobs

    # ---------------------------------------------------------------- rows

    def _rows(self, kind: str, getter: Getter, lines: Lines, idx: np.ndarray) -> Part:
        n = len(idx)
        memo: dict[str, pa.Array | None] = {}

        def get(f: str) -> pa.Array | None:
            if f not in memo:
                memo[f] = getter(f)
            return memo[f]

        c = Checks(n)
        raw_ts = get("ts")
        ts = parse_ts(raw_ts, "auto", n)
        c.check("ts", pc.is_valid(ts), "expected epoch seconds or an ISO 8601 time", raw_ts)
        cols = {"ts": ts, "source_ip": as_text(get("id.orig_h"), n), "dest_ip": as_text(get("id.resp_h"), n)}
        c.check("id.orig_h", ip_ok(cols["source_ip"]), "expected an IP address", get("id.orig_h"))
        c.check("id.resp_h", ip_ok(cols["dest_ip"]), "expected an IP address", get("id.resp_h"))
        cols["dest_port"], ok = as_int(get("id.resp_p"), n, 65535)
        c.check("id.resp_p", ok, "expected a port number", get("id.resp_p"))
        numbers = {"conn": ("orig_bytes", "resp_bytes", "orig_ip_bytes", "resp_ip_bytes"),
                   "http": ("status_code", "request_body_len", "response_body_len")}.get(kind, ())  # fmt: skip
        num = {}
        for f in numbers:
            num[f], ok = as_int(get(f), n, 999 if f == "status_code" else 2**62)
            c.check(f, ok, "expected a count", get(f))
        name = None
        if kind == "conn":
            proto = pc.utf8_lower(as_text(get("proto"), n))
            service = pc.utf8_lower(as_text(pc.list_element(pc.split_pattern(as_text(get("service"), n), ","), 0)))
            cols["protocol"] = pc.coalesce(pc.if_else(pc.equal(service, "ssl"), "tls", service), proto)
            icmp = pc.fill_null(pc.match_substring(proto, "icmp"), False)  # ICMP "ports" are type and code
            cols["dest_port"] = pc.if_else(icmp, None, cols["dest_port"])
            cols["bytes_out"] = pc.coalesce(num["orig_bytes"], num["orig_ip_bytes"])
            cols["bytes_in"] = pc.coalesce(num["resp_bytes"], num["resp_ip_bytes"])
            payload = pc.greater(pc.add(pc.fill_null(num["orig_bytes"], 0), pc.fill_null(num["resp_bytes"], 0)), 0)
            unanswered = pc.fill_null(pc.is_in(as_text(get("conn_state"), n), pa.array(NO_ANSWER)), False)
            cols["egress"] = pc.invert(pc.and_(unanswered, pc.invert(payload)))
            cols["status"] = pc.if_else(unanswered, 0, pa.scalar(None, pa.int64()))
        elif kind == "ssl":
            name, cols["protocol"] = hostname(as_text(get("server_name"), n)), pa.repeat(pa.scalar("tls"), n)
        elif kind == "http":
            name, cols["protocol"] = hostname(as_text(get("host"), n)), pa.repeat(pa.scalar("http"), n)
            cols["method"] = as_text(get("method"), n)
            cols["status"] = pc.fill_null(num["status_code"], 0)
            cols["bytes_out"], cols["bytes_in"] = num["request_body_len"], num["response_body_len"]
            cols["pii"] = pii_kinds(as_text(get("uri"), n))
        else:
            cols["protocol"] = pa.repeat(pa.scalar("dns"), n)
        cols = c.keep(cols)
        kept = c.quarantine(lines, idx)
        if kind == "dns":
            keep = pa.array(c.ok)
            answers, ttls = get("answers"), get("TTLs")
            self.dns.learn(cols["ts"], as_text(get("query"), n).filter(keep),
                           None if answers is None else answers.filter(keep),
                           None if ttls is None else ttls.filter(keep))  # fmt: skip
            return cols, kept
        uid = get("uid")
        uid = None if uid is None else as_text(uid, n).filter(pa.array(c.ok))
        # a name from the log itself beats one learnt from DNS
        learnt = self.dns.names(cols["dest_ip"], cols["ts"])
        if kind == "conn":
            counted, named = self.uids.lookup(uid)
            cols["dest_host"] = pc.coalesce(named, learnt)
            cols["sample_rate"] = pc.if_else(counted, 0, 1)
        else:
            cols["dest_host"] = learnt if name is None else pc.coalesce(name.filter(pa.array(c.ok)), learnt)
            self.uids.learn(uid, cols["dest_host"])
        return cols, kept


def _kind(path: str | None) -> str | None:
    m = _PATH.match(path or "")
    return m.group(1) if m else None


def _kinds(paths: pa.Array) -> pa.Array:
    kind = pc.struct_field(pc.extract_regex(pc.fill_null(paths, ""), _PATH.pattern.replace("(conn", "(?P<k>conn")), "k")
    return pc.if_else(pc.fill_null(pc.is_in(kind, pa.array(LOG_TYPES)), False), kind, _NULL)


def _recover(source: str, offset: int) -> _Tsv | None:
    """After a restart mid-file: the header block in force at `offset`, read back from the file.

    `source` is "zeek:PATH" as read_batches names it. A plain file is searched backwards from
    `offset` for the nearest #fields line (at most RECOVER_BYTES, else its first header is
    taken); a compressed one (offsets count decompressed bytes) is read forward up to `offset`.
    """
    try:
        with open_log(source) as fh:
            if isinstance(fh, gzip.GzipFile):
                block = _last_block(fh, 0, offset)
            else:
                found = _find_back(fh, offset, b"\n#fields")
                start = 0 if found < 0 else max(0, found - 4096)
                fh.seek(start)
                if start:
                    start += len(fh.readline())  # a partial line
                block = _last_block(fh, start, offset if found >= 0 else min(offset, 1 << 20))
    except (OSError, EOFError, zlib.error):
        return None
    state = _Tsv()
    for line in block:
        state = state.read(line, None)
    return state if state.fields else None


def _find_back(fh: BinaryIO, offset: int, needle: bytes) -> int:
    """Position of the line that starts with needle[1:] nearest before `offset`, or -1."""
    pos, tail = offset, b""
    while pos > 0 and offset - pos < RECOVER_BYTES:
        start = max(0, pos - (1 << 20))
        fh.seek(start)
        block = fh.read(pos - start) + tail
        k = block.rfind(needle)
        if k >= 0:
            return start + k + 1
        if start == 0 and block.startswith(needle[1:]):
            return 0
        pos, tail = start, block[: len(needle)]
    return -1


def _last_block(lines: Iterable[bytes], pos: int, offset: int) -> list[str]:
    """The last run of header lines holding a #fields line among the lines before `offset`."""
    block: list[str] = []
    last: list[str] = []
    for raw in lines:
        if pos >= offset:
            break
        pos += len(raw)
        if raw.startswith(b"#"):
            block.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
            if raw.startswith(b"#fields"):
                last = block
        else:
            block = []
    return last
