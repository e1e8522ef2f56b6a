"""Collect stage, Squid: a custom `logformat` definition compiled to one regex; its lines -> BATCH_SCHEMA columns."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from monitor.collect.arrowtext import STR, Quarantine, per_unique
from monitor.collect.squidrows import RE_CACHE_PEER, Rows, dash_null, hierarchy, parse_target
from monitor.errors import UsageError

# squid.conf's built-in formats. `squid` is read by the native fast path, never compiled.
BUILTIN: dict[str, str] = {
    "squid": "%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt",
    "common": '%>a %[ui %[un [%tl] "%rm %ru HTTP/%rv" %>Hs %<st %Ss:%Sh',
    "combined": '%>a %[ui %[un [%tl] "%rm %ru HTTP/%rv" %>Hs %<st "%{Referer}>h" "%{User-Agent}>h" %Ss:%Sh',
    "referrer": "%ts.%03tu %>a %{Referer}>h %ru",
    "useragent": '%>a [%tl] "%{User-Agent}>h"',
}

# Squid's format codes (squid.conf `logformat`, Squid 3.x-6.x); a code is matched longest first
# as Squid does. Codes in the namespaces below (e.g. %ssl::>sni) are matched but never used.
_CODES = frozenset(
    """>a >A >p >eui >la >lp la lp >qos <qos >nfmark <nfmark >handshake <a <A <p <la <lp oa
    ts tu tl tg tr tS dt <pt <tt busy_time et ea ue un ul ui credentials
    >h >ha <h >Hs Hs <Hs Ss Sh mt rm ru rp rv >v rG >rm >ru >rs >rd >rP >rp >rv >rq
    <rm <ru <rs <rd <rP <rp <rv <rq >st >sh <st <sh <sH <sS <bs >bs st sn
    err_code err_detail note master_xaction""".split()
)
_BY_LENGTH = sorted(_CODES, key=len, reverse=True)
_NAMESPACED = re.compile(r"(?:adapt|icap|ssl|tls|proxy_protocol|transport)::[<>]?[A-Za-z_]+")
_NUMERIC = frozenset(
    "ts tr dt <pt <tt busy_time >p <p >lp lp <lp >Hs Hs <Hs >st >sh <st <sh <sH <sS <bs >bs st sn".split()
)
_FREE_TEXT = frozenset(">h >ha <h note err_detail ea et credentials".split())  # may hold spaces when quoted
_TOKEN = re.compile(r"""%(?P<enc>["'\[#/])?(?P<left>-)?(?P<zero>0)?(?P<width>\d+)?(?:\.(?P<prec>\d+))?""")
_ARG = re.compile(r"\{(?P<arg>[^}]*)\}")

# What each code means for BATCH_SCHEMA; of several codes for one role the first written wins.
_ROLES: dict[str, str] = {
    ">a": "client", ">A": "client_name", "un": "user", "ul": "login", "ue": "ext_user", "ui": "ident",
    "rm": "method", ">rm": "client_method", "<rm": "server_method",
    "ru": "url", ">ru": "client_url", "<ru": "server_url", ">rd": "domain", ">rP": "url_port", ">rs": "scheme",
    ">Hs": "status", "Hs": "status", "<Hs": "server_status", "<st": "bytes_in", ">st": "bytes_out",
    "Ss": "squid_status", "Sh": "hierarchy", "<a": "server_ip", "<A": "server_name",
    "ts": "ts", "tu": "tu", "tl": "tl", "tg": "tg", "tS": "tS",
}  # fmt: skip
_DESTINATION = ("url", "client_url", "server_url", "domain", "host", "server_ip", "server_name")

# strftime directives Squid's %tl/%tg may use: the text each writes, and how Arrow reads it back
_STRFTIME: dict[str, tuple[str, str]] = {
    "a": (r"[A-Za-z]{3}", "%a"), "A": (r"[A-Za-z]+", "%A"), "b": (r"[A-Za-z]{3}", "%b"),
    "h": (r"[A-Za-z]{3}", "%b"), "B": (r"[A-Za-z]+", "%B"), "d": (r"\d{2}", "%d"), "e": (r"[ \d]\d", "%e"),
    "H": (r"\d{2}", "%H"), "I": (r"\d{2}", "%I"), "j": (r"\d{3}", "%j"), "m": (r"\d{2}", "%m"),
    "M": (r"\d{2}", "%M"), "p": (r"[AaPp][Mm]", "%p"), "S": (r"\d{2}", "%S"), "s": (r"\d+", "%s"),
    "y": (r"\d{2}", "%y"), "Y": (r"\d{4}", "%Y"), "z": (r"[+-]\d{4}", "%z"), "Z": (r"[A-Za-z]+", "%Z"),
    "T": (r"\d{2}:\d{2}:\d{2}", "%T"), "F": (r"\d{4}-\d{2}-\d{2}", "%F"), "D": (r"\d{2}/\d{2}/\d{2}", "%D"),
    "R": (r"\d{2}:\d{2}", "%R"), "%": ("%", "%%"),
}  # fmt: skip
_DEFAULT_TIME = {"tl": "%d/%b/%Y:%H:%M:%S %z", "tg": "%d/%b/%Y:%H:%M:%S"}
_RE_SPECIAL = set("\\.^$|?*+()[]{}")
# log_mime_hdrs appends the request and reply headers to every format: accepted, not read
_MIME_HEADERS = r"(?:[ \t]+\[.*\][ \t]+\[.*\])?"
_RE_NO_EGRESS_STATUS = r"^NONE($|_)|_DENIED$|_HIT($|_)"  # hit, denied or error (used without %Sh)
MAX_US = 7258118400 * 1_000_000  # 2200-01-01T00:00:00Z: anything later is a corrupt time field


@dataclass(frozen=True)
class Token:
    code: str
    written: str  # as in the definition, for messages
    quote: str  # effective encoding: "" none, '"' quoted string, "[" mime blob, "#" URL, "'" raw, "/" shell
    left: bool
    zero: bool
    width: int | None
    precision: int | None
    arg: str | None


@dataclass(frozen=True)
class LogFormat:
    """A compiled definition: one anchored regex, and for each role its group and token."""

    label: str
    regex: str
    groups: dict[str, tuple[str, Token]]
    time: tuple[str, str] | None  # (role, Arrow strptime format) of a %tl/%tg time

    def get(self, m: pa.StructArray, role: str) -> pa.Array | None:
        if role not in self.groups:
            return None
        name, tok = self.groups[role]
        value = pc.struct_field(m, name)
        if tok.quote == '"':  # quoted-string encoding escapes quote and backslash
            value = pc.replace_substring_regex(value, r"\\(.)", r"\1")
        return value


def compile_logformat(spec: str) -> LogFormat | None:
    """The compiled definition (or built-in name); None for Squid's native format. UsageError if unusable."""
    if not isinstance(spec, str) or not spec.strip():
        raise UsageError("option 'logformat': expected a Squid logformat definition or a built-in name")
    definition = BUILTIN.get(spec.strip(), spec.strip())
    if " ".join(definition.split()) == BUILTIN["squid"]:
        return None
    label = spec.strip() if spec.strip() in BUILTIN else repr(definition)
    items = _tokenize(definition)
    groups: dict[str, tuple[str, Token]] = {}
    parts = ["^"]
    time: tuple[str, str] | None = None
    for i, item in enumerate(items):
        if isinstance(item, str):
            parts.append(_literal(item))
            continue
        pattern = _value_pattern(item)
        role = _role(item)
        if item.code in ("tl", "tg"):
            pattern, arrow_fmt = _strftime(item)
            if role not in groups and time is None:
                time = (role or item.code, arrow_fmt)
        if role is not None and role not in groups:
            groups[role] = (f"g{i}", item)
            pattern = f"(?P<g{i}>{pattern})"
        else:
            pattern = f"(?:{pattern})"
        if item.width and not item.zero and item.code not in ("tl", "tg"):  # space-padded to the width
            pattern = pattern + " *" if item.left else " *" + pattern
        parts.append(pattern)
    parts.append(_MIME_HEADERS + "$")
    if not any(r in groups for r in ("ts", "tl", "tg", "tS")):
        raise UsageError(f"option 'logformat': {label} has no time code (%ts, %tl, %tg or %tS)")
    if not any(r in groups for r in _DESTINATION):
        raise UsageError(
            f"option 'logformat': {label} names no destination (%ru, %>ru, %<ru, %>rd, %{{Host}}>h, %<a or %<A)"
        )
    regex = "".join(parts)
    try:
        pc.extract_regex(pa.array([], pa.string()), regex)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:  # pragma: no cover - a compiler bug
        raise UsageError(f"option 'logformat': {label} compiles to an invalid pattern: {exc}") from exc
    return LogFormat(label, regex, groups, time)


def _tokenize(definition: str) -> list[str | Token]:
    """Literal text and tokens, tracking the quoting a literal `"` or `[` puts its tokens in (as Squid does)."""
    items: list[str | Token] = []
    quoting = ""
    pos = 0
    while pos < len(definition):
        if definition[pos] != "%":
            end = definition.find("%", pos)
            end = len(definition) if end < 0 else end
            text = definition[pos:end]
            for ch in text:
                if ch == '"' and quoting in ("", '"'):
                    quoting = "" if quoting else '"'
                elif ch == "[" and not quoting:
                    quoting = "["
                elif ch == "]" and quoting == "[":
                    quoting = ""
            items.append(text)
            pos = end
            continue
        if definition.startswith("%%", pos):
            items.append("%")
            pos += 2
            continue
        tok, pos = _token(definition, pos, quoting)
        items.append(tok)
    return items


def _token(definition: str, start: int, quoting: str) -> tuple[Token, int]:
    m = _TOKEN.match(definition, start)
    if m is None:  # cannot happen: every part after "%" is optional
        raise UsageError(f"option 'logformat': cannot read {definition[start:]!r}")
    pos = m.end()
    arg = None
    if a := _ARG.match(definition, pos):
        arg, pos = a.group("arg"), a.end()
    if definition.startswith("http::", pos):
        pos += 6
    if ns := _NAMESPACED.match(definition, pos):
        code = ns.group(0)
    else:
        code = next((c for c in _BY_LENGTH if definition.startswith(c, pos)), "")
    if not code:
        bad = definition[start : start + 12].split(" ")[0]
        raise UsageError(
            f"option 'logformat': unknown format code {bad!r} at position {start + 1} of {definition!r} "
            "(see squid.conf's logformat directive for the codes)"
        )
    pos += len(code)
    if arg is None and (a := _ARG.match(definition, pos)):
        arg, pos = a.group("arg"), a.end()
    tok = Token(
        code=code,
        written=definition[start:pos],
        quote=m.group("enc") or quoting,
        left=bool(m.group("left")),
        zero=bool(m.group("zero")),
        width=int(m.group("width")) if m.group("width") else None,
        precision=int(m.group("prec")) if m.group("prec") else None,
        arg=arg,
    )
    return tok, pos


def _role(tok: Token) -> str | None:
    if tok.code in (">h", ">ha"):
        return "host" if tok.arg is not None and tok.arg.strip().lower() == "host" else None
    return _ROLES.get(tok.code)


def _literal(text: str) -> str:
    out = []
    for run in re.split(r"(\s+)", text):
        if run and run.isspace():
            out.append(r"[ \t]+")
        else:
            out.append("".join("\\" + ch if ch in _RE_SPECIAL else ch for ch in run))
    return "".join(out)


def _value_pattern(tok: Token) -> str:
    if tok.code == "tu":
        return r"\d+"
    if tok.code == "tS":
        return r"\d+(?:\.\d+)?"
    if tok.code in _NUMERIC:
        return r"-?\d+|-"
    if (tok.code in _FREE_TEXT or "::" in tok.code) and tok.quote in ('"', "["):
        return ".*?" if tok.quote == '"' else r"[^\]]*"
    return r"\S+"


def _strftime(tok: Token) -> tuple[str, str]:
    """(regex, Arrow strptime format) for a %tl/%tg token.

    %tg is UTC; %tl is local time, exact with %z (as in its default format), else read as UTC.
    """
    spec = tok.arg or _DEFAULT_TIME[tok.code]
    seen = set(re.findall(r"%(.)", spec))
    if unknown := sorted(seen - set(_STRFTIME)):
        raise UsageError(
            f"option 'logformat': strftime directive %{unknown[0]} in {tok.written!r} is not supported "
            f"(supported: {' '.join('%' + k for k in _STRFTIME)})"
        )
    regex = re.sub(r"%(.)|(.)", lambda d: _STRFTIME[d[1]][0] if d[1] else _literal(d[2]), spec, flags=re.S)
    arrow = re.sub(r"%(.)", lambda d: _STRFTIME[d[1]][1], spec)
    full_date = bool(seen & set("YyDF")) and bool(seen & set("mbhBDFj")) and bool(seen & set("deDFj"))
    if not (full_date or "s" in seen) or not (seen & set("HTRs")):
        raise UsageError(f"option 'logformat': {tok.written!r} does not give a full date and time")
    return regex, arrow


def parse_rows(
    fmt: LogFormat, text: pa.Array, nonblank: np.ndarray[Any, Any], quarantine: Quarantine
) -> tuple[np.ndarray[Any, Any], Rows]:
    """(indices of matched lines, their Rows): lines that do not match the definition are quarantined."""

    m = pc.extract_regex(text.take(pa.array(nonblank, pa.int64())), fmt.regex)
    ok = pc.is_valid(m).to_numpy(zero_copy_only=False)
    for i in nonblank[~ok].tolist():
        quarantine(i, f"line does not match logformat {fmt.label}", None)
    cand = nonblank[ok]
    m = m.filter(pa.array(ok))
    n = len(cand)
    r = Rows(n)

    def get(*roles: str) -> pa.Array | None:
        return next((v for v in (fmt.get(m, role) for role in roles) if v is not None), None)

    def dash(*roles: str) -> pa.Array:
        v = get(*roles)
        return dash_null(v) if v is not None else pa.nulls(n, STR)

    dashes = pa.repeat(pa.scalar("-", STR), n)
    _time(fmt, r, get, n)
    r.cols["source_ip"] = dash("client", "client_name")
    users = [dash_null(v) for v in (fmt.get(m, k) for k in ("user", "login", "ext_user", "ident")) if v is not None]
    r.cols["source_user"] = pc.coalesce(*users) if users else pa.nulls(n, STR)
    _status(r, get("status", "server_status"), n)
    r.cols["bytes_in"] = _bytes(r, get("bytes_in"), "bytes", n)
    r.cols["bytes_out"] = _bytes(r, get("bytes_out"), "request size", n)

    hier, peer = get("hierarchy"), get("server_ip", "server_name")
    # without %Sh the peer is taken for the origin: nothing says it is a cache peer
    joined = pc.binary_join_element_wise(
        hier if hier is not None else pa.scalar("HIER_DIRECT", STR),
        peer if peer is not None else dashes,
        pa.scalar("/", STR),
    )
    hp = per_unique(joined, hierarchy)
    r.cols["dest_ip"] = hp["dest_ip"]
    squid_status = get("squid_status")
    if hier is not None:
        r.cols["egress"] = hp["egress"]
    elif squid_status is not None:
        r.cols["egress"] = pc.invert(pc.match_substring_regex(squid_status, _RE_NO_EGRESS_STATUS))
    else:
        r.cols["egress"] = pc.not_equal(peer, "-") if peer is not None else pa.repeat(pa.scalar(True), n)

    method = get("method", "client_method", "server_method")
    method = dashes if method is None else method
    r.cols["method"] = dash_null(method)
    url = get("url", "client_url", "server_url")
    url = dashes if url is None else url
    origin = pc.invert(pc.match_substring_regex(hier, RE_CACHE_PEER)) if hier is not None else None
    fallback = _fallback_authority(fmt, get, dash, origin, n)
    scheme = pc.coalesce(pc.utf8_lower(dash("scheme")), pa.scalar("http", STR))
    pii_url = get("client_url", "url", "server_url")
    parse_target(r, method, url, pii_url=pii_url, fallback=(fallback, scheme))
    return cand, r


def _time(fmt: LogFormat, r: Rows, get: Callable[..., pa.Array | None], n: int) -> None:
    ts, tu = get("ts"), get("tu")
    if ts is not None:
        ok = pc.match_substring_regex(ts, r"^\d{1,12}$")
        r.check("time", ok, lambda j: f"field 'time': expected epoch seconds, got {ts[j].as_py()!r}")
        micros = pc.multiply(pc.cast(pc.if_else(ok, ts, "0"), pa.int64()), 1_000_000)
    elif fmt.time is not None:
        role, arrow_fmt = fmt.time
        value = _need(get(role))
        parsed = pc.strptime(value, format=arrow_fmt, unit="us", error_is_null=True)
        r.check(
            "time",
            pc.is_valid(parsed),
            lambda j: f"field 'time': expected a time in the form {arrow_fmt!r}, got {value[j].as_py()!r}",
        )
        # a local time without an offset (%tl without %z) is read as UTC
        micros = pc.fill_null(pc.cast(parsed, pa.int64()), 0)
    else:
        start = _need(get("tS"))
        ok = pc.match_substring_regex(start, r"^\d{1,12}(?:\.\d{1,9})?$")
        r.check("time", ok, lambda j: f"field 'time': expected epoch seconds, got {start[j].as_py()!r}")
        secs = pc.cast(pc.if_else(ok, start, "0"), pa.float64())
        micros = pc.cast(pc.round(pc.multiply(secs, 1e6)), pa.int64())
    if tu is not None and (ts is not None or fmt.time is not None):
        digits = fmt.groups["tu"][1].precision or 3  # %tu is milliseconds unless a precision says otherwise
        ok = pc.match_substring_regex(tu, r"^\d{1,9}$")
        r.check("time", ok, lambda j: f"field 'time': expected a sub-second count, got {tu[j].as_py()!r}")
        sub = pc.cast(pc.if_else(ok, tu, "0"), pa.int64())
        sub = pc.multiply(sub, 10 ** (6 - digits)) if digits <= 6 else pc.divide(sub, 10 ** (digits - 6))
        micros = pc.add(micros, sub)
    r.check("time", pc.less(micros, MAX_US), lambda j: "field 'time': the time is after the year 2200")
    r.cols["ts"] = pc.cast(micros, pa.timestamp("us", tz="UTC"))


def _need(value: pa.Array | None) -> pa.Array:
    if value is None:  # compile_logformat refuses a definition without a time code
        raise UsageError("option 'logformat': the definition has no time code")
    return value


def _status(r: Rows, status: pa.Array | None, n: int) -> None:
    if status is None:  # the schema's "0 when none"
        r.cols["status"] = pa.repeat(pa.scalar(0, pa.int32()), n)
        return
    ok = pc.match_substring_regex(status, r"^(?:\d{1,6}|-)$")
    r.check("status", ok, lambda j: f"field 'status': expected an HTTP status code, got {status[j].as_py()!r}")
    digits = pc.fill_null(pc.match_substring_regex(status, r"^\d{1,6}$"), False)
    r.cols["status"] = pc.cast(pc.if_else(digits, status, "0"), pa.int32())


def _bytes(r: Rows, value: pa.Array | None, name: str, n: int) -> pa.Array:
    if value is None:
        return pa.nulls(n, pa.int64())
    ok = pc.match_substring_regex(value, r"^(?:\d{1,18}|-)$")
    r.check(name, ok, lambda j: f"field '{name}': expected a byte count, got {value[j].as_py()!r}")
    digits = pc.fill_null(pc.match_substring_regex(value, r"^\d{1,18}$"), False)
    return pc.if_else(digits, pc.cast(pc.if_else(digits, value, "0"), pa.int64()), pa.scalar(None, pa.int64()))


def _fallback_authority(
    fmt: LogFormat,
    get: Callable[..., pa.Array | None],
    dash: Callable[..., pa.Array],
    origin: pa.Array | None,
    n: int,
) -> pa.Array:
    """Where an origin-form or missing URL leaves the destination: Host header, %>rd[:%>rP], then %<A."""
    found: list[pa.Array] = []
    if "host" in fmt.groups:
        found.append(dash("host"))
    if "domain" in fmt.groups:
        domain, port = dash("domain"), get("url_port")
        if port is not None:
            with_port = pc.binary_join_element_wise(domain, port, pa.scalar(":", domain.type))
            domain = pc.if_else(pc.fill_null(pc.match_substring_regex(port, r"^\d+$"), False), with_port, domain)
        found.append(domain)
    if "server_name" in fmt.groups:  # the server's name, unless the request went to a cache peer
        name = dash("server_name")
        found.append(name if origin is None else pc.if_else(origin, name, pa.scalar(None, name.type)))
    return pc.coalesce(*found) if found else pa.nulls(n, pa.large_string())
