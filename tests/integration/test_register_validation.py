"""`xborder rules check` on the register: every mistake located at file:line:column, lint warnings apart."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from monitor.cli.main import run
from monitor.settings import CONFIG_ENV

BASE = """\
organisation:
  name: Test GmbH
  country: DE
  nis2: important
store:
  url: sqlite:///x.db
alerts: {jsonl: null, stderr: false}
overrides:
  - {host: api.acme.example, country: US}
systems:
  - name: crm
    sources: [10.0.0.0/24]
    data_categories: [customer-personal]
  - name: payroll
    sources: [10.1.0.0/24]
    data_categories: [hr]
  - name: build
    data_categories: [none]
vendors:
  - name: Acme
    domains: [acme.example]
    seat: US
    mechanisms:
      - type: scc
        module: 2
        signed: 2024-01-01
        tia: 2024-01-01
      - type: dpf
        certified_since: 2024-01-01
        scope: non-hr
      - type: bcr
        approved_on: 2024-03-01
  - name: Beta
    domains: [beta.example]
  - name: Gamma
    domains: [gamma.example]
waivers:
  - system: crm
    destination: Gamma
    justification: pilot project
    approved_by: DPO
    granted: 2024-01-01
    expires: 2024-12-31
approved_suppliers:
  - vendor: Acme
    approved_on: 2024-01-01
"""

# name: (text in BASE, replacement with a #name# marker on the offending line,
#        fragment of the message, what the column points at, fragment of the hint or None)
MISTAKES: dict[str, tuple[str, str, str, str, str | None]] = {
    "typo": (
        "    domains: [beta.example]",
        "    domians: [beta.example]  #typo#",
        "unknown key 'domians'",
        "domians",
        "did you mean 'domains'?",
    ),
    "seat": ("    seat: US", "    seat: USA  #seat#", "vendors.0.seat", "seat", None),
    "bad-date": (
        "        approved_on: 2024-03-01",
        "        approved_on: 2024-02-30  #bad-date#",
        "'2024-02-30' is not a valid date",
        "2024-02-30",
        "YYYY-MM-DD",
    ),
    "scc-module": ("        module: 2", "        module: 5  #scc-module#", "(got 5)", "module", None),
    "mechanism-type": (
        "      - type: bcr",
        "      - type: brc  #mechanism-type#",
        "'brc'",
        "type: brc",
        None,
    ),
    "dpf-scope": ("        scope: non-hr", "        scope: employees  #dpf-scope#", "'employees'", "scope", None),
    "waiver-system": (
        "  - system: crm",
        "  - system: crn  #waiver-system#",
        "waiver names unknown system 'crn'",
        "system",
        "systems: ",
    ),
    "supplier": (
        "  - vendor: Acme",
        "  - vendor: Acme Corp  #supplier#",
        "approved supplier 'Acme Corp' is not a vendor",
        "vendor",
        None,
    ),
    "domain-twice": (
        "    domains: [gamma.example]",
        "    domains: [acme.example]  #domain-twice#",
        "domain 'acme.example' belongs to vendors 'Acme' and 'Gamma'",
        "acme.example",
        None,
    ),
    "duplicate-system": (
        "  - name: build",
        "  - name: payroll  #duplicate-system#",
        "system 'payroll' is defined twice",
        "name: payroll",
        "first at",
    ),
    "norway": ("  country: DE", "  country: NO  #norway#", "organisation.country", "country", "quote the value"),
    "cidr": (
        "    sources: [10.1.0.0/24]",
        "    sources: [10.1.0.0/33]  #cidr#",
        "'10.1.0.0/33' is not an IP address or CIDR",
        "sources",
        None,
    ),
    "missing-key": (
        "  - name: crm\n    sources: [10.0.0.0/24]\n    data_categories: [customer-personal]\n",
        "  - name: crm  #missing-key#\n    sources: [10.0.0.0/24]\n",
        "missing required key 'systems.0.data_categories'",
        "name: crm",
        None,
    ),
    "override-target": (
        "  - {host: api.acme.example, country: US}",
        "  - {host: api.acme.example, cidr: 10.9.0.0/16, country: US}  #override-target#",
        "give exactly one of 'cidr' or 'host'",
        "{host",
        None,
    ),
}

# Ten kinds that today are all reported from one file (schema errors and name clashes).
TEN_TOGETHER = [
    "typo", "seat", "scc-module", "mechanism-type", "dpf-scope",
    "duplicate-system", "norway", "cidr", "missing-key", "override-target",
]  # fmt: skip
# The ten of the brief, including reference errors and an impossible date, all reported in one run.
TEN_WITH_REFERENCES = [
    "typo", "seat", "bad-date", "scc-module", "mechanism-type",
    "dpf-scope", "waiver-system", "supplier", "domain-twice", "duplicate-system",
]  # fmt: skip
REFERENCES = ["waiver-system", "supplier", "domain-twice", "duplicate-system"]

LOCATED = re.compile(r"^  (?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<msg>.*)$")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.delenv("XBORDER_DB_URL", raising=False)


def with_mistakes(names: list[str]) -> str:
    text = BASE
    for name in names:
        old, new = MISTAKES[name][:2]
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def marker_line(text: str, name: str) -> int:
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if f"#{name}#" in line]
    assert len(hits) == 1, name
    return hits[0]


def check_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], names: list[str]) -> list[str]:
    """Run `rules check` on BASE with `names` planted; assert one located problem per mistake at its line."""
    text = with_mistakes(names)
    cfg = tmp_path / "xborder.yaml"
    cfg.write_text(text, encoding="utf-8")
    capsys.readouterr()
    assert run(["-c", str(cfg), "rules", "check"]) == 2
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    lines = cap.err.splitlines()
    n = len(names)
    assert lines[0] == f"error: {n} problem{'s' if n != 1 else ''} in configuration or rules:", cap.err
    problems = lines[1:]
    assert len(problems) == n, cap.err
    located = [LOCATED.match(p) for p in problems]
    assert all(m and m["file"] == str(cfg) for m in located), cap.err
    src = text.splitlines()
    for name in names:
        _, _, fragment, at_column, hint = MISTAKES[name]
        line = marker_line(text, name)
        hits = [m for m in located if m and int(m["line"]) == line and fragment in m["msg"]]
        assert len(hits) == 1, f"{name}: expected one problem at {cfg}:{line} with {fragment!r}:\n{cap.err}"
        col = int(hits[0]["col"])
        assert src[line - 1][col - 1 :].startswith(at_column), (name, src[line - 1], col)
        if hint:
            msg = hits[0]["msg"]
            assert "(hint: " in msg and hint in msg.split("(hint: ", 1)[1], (name, msg)
    return problems


# --------------------------------------------------------------------------- errors (exit 2)


def test_base_register_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "xborder.yaml"
    cfg.write_text(BASE, encoding="utf-8")
    capsys.readouterr()
    assert run(["-c", str(cfg), "rules", "check"]) == 0
    out = capsys.readouterr().out
    assert "register: 3 systems, 3 vendors: OK" in out


@pytest.mark.parametrize("name", list(MISTAKES))
def test_each_mistake_alone_is_one_located_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    check_errors(tmp_path, capsys, [name])


def test_ten_mistakes_in_one_file_are_ten_located_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert len(set(TEN_TOGETHER)) == 10
    problems = check_errors(tmp_path, capsys, TEN_TOGETHER)
    # reported in file order, except that name clashes follow the schema problems
    assert any("did you mean 'domains'?" in p for p in problems)
    assert any("quote the value" in p for p in problems)


def test_reference_mistakes_are_reported_together(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check_errors(tmp_path, capsys, REFERENCES)


def test_ten_mistakes_including_references_and_a_bad_date(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert len(set(TEN_WITH_REFERENCES)) == 10
    check_errors(tmp_path, capsys, TEN_WITH_REFERENCES)


def test_bad_date_does_not_hide_schema_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check_errors(tmp_path, capsys, ["bad-date", "seat"])


def test_reference_errors_are_reported_with_schema_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check_errors(tmp_path, capsys, ["seat", "waiver-system", "supplier", "domain-twice"])


# --------------------------------------------------------------------------- lint warnings (exit 0)

LINT = """\
organisation: {name: Test GmbH, country: DE, nis2: important}
store: {url: 'sqlite:///x.db'}
alerts: {jsonl: null, stderr: false}
overrides:
  - {host: api.acme.example, country: US}
  - {host: www.beta.example, country: US}
systems:
  - name: crm
    sources: [10.0.0.0/24]
    data_categories: [customer-personal]
vendors:
  - name: Acme
    domains: [acme.example]
    seat: US
    mechanisms:
      - type: scc  #expired-scc#
        module: 2
        signed: 2021-10-01
        tia: 2021-10-01
        expires: 2022-12-31
      - type: scc  #no-tia#
        module: 3
        signed: 2023-01-01
      - type: dpf  #old-dpf-check#
        certified_since: 2023-08-01
        checked_on: 2023-08-01
  - name: Beta
    domains:
      - beta.example
      - beta-legacy.example  #unreached#
    mechanisms:
      - type: dpf  #dpf-never-checked#
        certified_since: 2023-08-01
waivers:
  - system: crm
    destination: Beta
    justification: pilot project
    approved_by: DPO
    granted: 2023-01-01
    expires: 2023-06-30  #waiver-expired#
approved_suppliers:
  - vendor: Acme
    approved_on: 2023-01-01
    review_due: 2024-01-01  #review-overdue#
"""

# marker: fragment of the warning, fragment of its hint or None
WARNINGS: dict[str, tuple[str, str | None]] = {
    "expired-scc": ("vendor 'Acme': SCC module 2 expired on 2022-12-31", None),
    "no-tia": ("vendor 'Acme': SCC without a transfer impact assessment date (Clause 14)", None),
    "old-dpf-check": ("vendor 'Acme': DPF check of 2023-08-01 is older than a year", "check the DPF List again"),
    "dpf-never-checked": ("vendor 'Beta': DPF certification never checked (checked_on)", "look the entity up"),
    "waiver-expired": ("waiver for crm → Beta expired on 2023-06-30", None),
    "review-overdue": ("approved supplier 'Acme': review was due 2024-01-01", None),
    "unreached": ("vendor 'Beta': no system has reached domain 'beta-legacy.example'", "not yet ingested"),
}

SQUID = (
    "1763300000.000 10 10.0.0.5 TCP_TUNNEL/200 100 CONNECT api.acme.example:443 - HIER_DIRECT/54.187.174.169 -\n"
    "1763300001.000 10 10.0.0.5 TCP_TUNNEL/200 100 CONNECT www.beta.example:443 - HIER_DIRECT/54.187.174.170 -\n"
)

WARNING_LINE = re.compile(r"^  warning: (?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<msg>.*)$")


def lint_table(cfg: Path, capsys: pytest.CaptureFixture[str]) -> list[re.Match[str]]:
    capsys.readouterr()
    assert run(["-c", str(cfg), "rules", "check"]) == 0
    cap = capsys.readouterr()
    assert cap.err == ""
    lines = cap.out.splitlines()
    assert lines[0].startswith("rules: xborder-gdpr-chapter-v ") and lines[0].endswith(": OK"), cap.out
    warned = [WARNING_LINE.match(x) for x in lines[2:]]
    assert all(m and m["file"] == str(cfg) for m in warned), cap.out
    assert lines[1] == f"register: 1 systems, 2 vendors: OK, {len(warned)} warnings", cap.out
    return [m for m in warned if m]


def assert_warned(text: str, warned: list[re.Match[str]], names: list[str]) -> None:
    assert len(warned) == len(names), "\n".join(m.string for m in warned)
    for name in names:
        fragment, hint = WARNINGS[name]
        line = marker_line(text, name)
        hits = [m for m in warned if int(m["line"]) == line and fragment in m["msg"]]
        assert len(hits) == 1, f"{name}: no warning at line {line} with {fragment!r}:\n" + "\n".join(
            m.string for m in warned
        )
        if hint:
            assert hint in hits[0]["msg"], hits[0]["msg"]


def test_lint_warnings_are_located_and_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "xborder.yaml"
    cfg.write_text(LINT, encoding="utf-8")

    # no evidence store yet: nothing can be said about unreached domains
    assert not (tmp_path / "x.db").exists()
    before = [n for n in WARNINGS if n != "unreached"]
    assert_warned(LINT, lint_table(cfg, capsys), before)

    # once traffic was ingested, a vendor domain that no system reached is a warning
    log = tmp_path / "access.log"
    log.write_text(SQUID, encoding="utf-8")
    assert run(["-c", str(cfg), "ingest", "squid", str(log)]) == 0
    assert (tmp_path / "x.db").exists()
    assert_warned(LINT, lint_table(cfg, capsys), list(WARNINGS))

    capsys.readouterr()
    assert run(["-c", str(cfg), "rules", "check", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["errors"], doc["warnings"]) == (0, len(WARNINGS))
    assert (doc["systems"], doc["vendors"]) == (1, 2)
    assert doc["rule_pack"].startswith("xborder-gdpr-chapter-v ") and len(doc["pack_hash"]) == 64
    assert len(doc["rows"]) == len(WARNINGS)
    assert {r["level"] for r in doc["rows"]} == {"warning"}
    lines = {marker_line(LINT, n) for n in WARNINGS}
    assert {int(r["where"].split(":")[-2]) for r in doc["rows"]} == lines
    assert all(r["where"].startswith(f"{cfg}:") for r in doc["rows"])
    hints = {r["message"]: r["hint"] for r in doc["rows"]}
    assert hints["vendor 'Acme': SCC module 2 expired on 2022-12-31"] == ""
    assert "DPF List" in hints["vendor 'Beta': DPF certification never checked (checked_on)"]


def test_clean_register_has_no_warnings_after_ingest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = """\
store: {url: 'sqlite:///x.db'}
alerts: {jsonl: null, stderr: false}
overrides:
  - {host: api.acme.example, country: US}
systems:
  - {name: crm, sources: [10.0.0.0/24], data_categories: [customer-personal]}
vendors:
  - name: Acme
    domains: [acme.example]
    mechanisms:
      - {type: scc, module: 2, signed: 2024-01-01, tia: 2024-01-01}
"""
    cfg = tmp_path / "xborder.yaml"
    cfg.write_text(text, encoding="utf-8")
    log = tmp_path / "access.log"
    log.write_text(SQUID.splitlines(keepends=True)[0], encoding="utf-8")
    assert run(["-c", str(cfg), "ingest", "squid", str(log)]) == 0
    capsys.readouterr()
    assert run(["-c", str(cfg), "rules", "check", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["errors"], doc["warnings"], doc["rows"]) == (0, 0, [])
