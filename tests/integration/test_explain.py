"""`xborder explain`: the verdict for one system and destination, every step with its rule file:line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from monitor.cli.main import run
from monitor.policy.rulepack import RulePack, load_pack
from monitor.settings import CONFIG_ENV, default_rules_dir

CONFIG = """\
organisation: {{name: Test GmbH, country: DE, nis2: {nis2}}}
store: {{url: 'sqlite:///x.db'}}
alerts: {{jsonl: null, stderr: false}}
overrides:
  - {{host: api.dpfco.example, country: US}}
  - {{host: eu.storage.example, country: DE}}
  - {{cidr: 81.2.69.0/24, country: IN}}
systems:
  - name: crm
    sources: [10.20.0.0/16]
    data_categories: [customer-personal]
  - name: payroll
    sources: [10.30.0.0/16]
    data_categories: [hr]
vendors:
  - name: DPF Co
    domains: [dpfco.example]
    seat: US
    mechanisms:
      - type: dpf
        certified_since: 2024-03-15
        checked_on: 2024-03-15
  - name: Ledger Ltd
    domains: [ledger.example]
    seat: IN
    mechanisms:
      - type: scc
        module: 2
        signed: 2023-05-01
        tia: 2023-05-01
{extra}"""
DPF_LINE = 20  # "- type: dpf" in CONFIG
OVERRIDE_DPF = "5:5"  # the api.dpfco.example override
OVERRIDE_CIDR = "7:5"
STEP_LINE = re.compile(r"^ (->|\+ |  ) +(\d+)\. (\S+) \((rules/[\w/.]+\.yaml:\d+)\): (.*)$")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)


@pytest.fixture(scope="module")
def pack() -> RulePack:
    return load_pack(default_rules_dir())


def write(tmp_path: Path, nis2: str = "none", extra: str = "") -> Path:
    cfg = tmp_path / "xborder.yaml"
    cfg.write_text(CONFIG.format(nis2=nis2, extra=extra), encoding="utf-8")
    assert cfg.read_text().splitlines()[DPF_LINE - 1].strip() == "- type: dpf"
    return cfg


def explain(capsys: pytest.CaptureFixture[str], cfg: Path, *args: str) -> str:
    capsys.readouterr()
    assert run(["-c", str(cfg), "explain", *args]) == 0
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    return cap.out


def explain_json(capsys: pytest.CaptureFixture[str], cfg: Path, *args: str) -> dict[str, Any]:
    docs = json.loads(explain(capsys, cfg, *args, "--format", "json"))
    assert isinstance(docs, list) and len(docs) == 1
    doc: dict[str, Any] = docs[0]
    return doc


def field(out: str, name: str) -> str:
    (line,) = [x for x in out.splitlines() if x.startswith(f"{name}: ")]
    return line[len(name) + 2 :]


def reasoning(out: str) -> list[re.Match[str]]:
    lines = out.splitlines()
    start = lines.index("Reasoning:") + 1
    steps = [STEP_LINE.match(x) for x in lines[start:] if not x.startswith("Data: ")]
    assert all(steps), out
    return [m for m in steps if m]


def check_steps(pack: RulePack, out: str, decided_by: str) -> list[re.Match[str]]:
    """Numbered steps with their rule file:line, exactly one marked `->`: the deciding one."""
    steps = reasoning(out)
    assert [int(m[2]) for m in steps] == list(range(1, len(steps) + 1))
    assert [m[3] for m in steps if m[1] == "->"] == [decided_by], out
    for m in steps:
        assert m[4] == pack.locations[m[3]], m.string
    return steps


def id_line(location: str) -> str:
    """The text at a rules file:line."""
    file, line = location.rsplit(":", 1)
    text = (default_rules_dir().parent / file).read_text(encoding="utf-8").splitlines()
    return text[int(line) - 1]


# --------------------------------------------------------------------------- the text a DPO reads


def test_system_and_host_unauthorized_the_day_before_dpf_certification(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pack: RulePack
) -> None:
    cfg = write(tmp_path)
    out = explain(capsys, cfg, "--system", "crm", "--dest", "api.dpfco.example", "--date", "2024-03-14")
    assert field(out, "Transfer") == "crm (customer-personal) -> api.dpfco.example, as of 2024-03-14"
    assert field(out, "Destination") == f"country US (override:{cfg}:{OVERRIDE_DPF}; confidence high)"
    assert field(out, "Vendor in register") == "DPF Co"
    assert field(out, "Verdict") == "UNAUTHORIZED — GDPR Art. 44 (severity high)"
    assert field(out, "Basis") == "No adequacy decision, safeguard or derogation covers this transfer"
    loc = pack.locations["gdpr.art44.unauthorized"]
    assert field(out, "Rule") == (
        f"gdpr.art44.unauthorized ({loc}); rule pack {pack.info.name} {pack.info.version}, hash {pack.hash[:16]}"
    )
    assert id_line(loc).strip() == "- id: gdpr.art44.unauthorized"
    steps = check_steps(pack, out, "gdpr.art44.unauthorized")
    assert [m[3] for m in steps] == [s.id for s in pack.procedure]  # every step tried, in order
    by = {m[3]: m[5] for m in steps}
    assert by["gdpr.art45.adequacy"] == "no: no adequacy decision in force on 2024-03-14 covers this recipient in US"
    assert by["gdpr.no-transfer.eea"] == "no: US is not in the EEA"
    assert field(out, "Data").startswith("iptocc@")


def test_dpf_vendor_on_the_day_of_certification_is_permitted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pack: RulePack
) -> None:
    cfg = write(tmp_path)
    out = explain(capsys, cfg, "--system", "crm", "--dest", "api.dpfco.example", "--date", "2024-03-15")
    assert field(out, "Verdict") == "PERMITTED — GDPR Art. 45 (severity info)"
    assert f"DPF Co DPF-certified (eu-us, scope non-hr) since 2024-03-15 ({cfg}:{DPF_LINE}:" in field(out, "Basis")
    rule = field(out, "Rule")
    m = re.match(r"(\S+) \((rules/gdpr/adequacy\.yaml:\d+)\); ", rule)
    assert m and m[1] == "adequacy.US.dpf" and m[2] == pack.locations["adequacy.US.dpf"], rule
    assert "id: adequacy.US.dpf" in id_line(m[2])
    assert rule.endswith(f"hash {pack.hash[:16]}")
    steps = check_steps(pack, out, "gdpr.art45.adequacy")
    assert len(steps) == 7 and steps[-1][5].startswith("Adequacy decision in force on the day of the transfer")


def test_hr_data_is_not_covered_by_a_non_hr_dpf_certification(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write(tmp_path)
    doc = explain_json(capsys, cfg, "--system", "payroll", "--dest", "api.dpfco.example", "--date", "2024-06-01")
    assert (doc["verdict"]["outcome"], doc["verdict"]["article"]) == ("unauthorized", "44")
    assert doc["system"] == {"name": "payroll", "data_categories": ["hr"]}


def test_source_ip_and_host_ip_destination(tmp_path: Path, capsys: pytest.CaptureFixture[str], pack: RulePack) -> None:
    cfg = write(tmp_path)
    args = ("--source", "10.20.1.15", "--dest", "api.ledger.example,81.2.69.142", "--date", "2024-06-01")
    out = explain(capsys, cfg, *args)
    assert field(out, "Transfer") == "crm (customer-personal) -> api.ledger.example [81.2.69.142], as of 2024-06-01"
    assert field(out, "Destination") == f"country IN (override:{cfg}:{OVERRIDE_CIDR}; confidence high)"
    assert field(out, "Vendor in register") == "Ledger Ltd"
    assert field(out, "Verdict") == "PERMITTED — GDPR Art. 46(2)(c) (severity info)"
    assert "module 2, signed 2023-05-01" in field(out, "Basis")
    assert field(out, "Rule").startswith(f"gdpr.art46.2.c.scc ({pack.locations['gdpr.art46.2.c.scc']}); ")
    check_steps(pack, out, "gdpr.art46.2.c.scc")


def test_unknown_source_is_judged_as_unattributed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pack: RulePack
) -> None:
    cfg = write(tmp_path)
    out = explain(capsys, cfg, "--source", "10.99.0.1", "--dest", "81.2.69.142", "--date", "2024-06-01")
    assert field(out, "Verdict").startswith("REVIEW")
    check_steps(pack, out, "gdpr.review.unattributed-source")


def test_json_has_the_verdict_and_every_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pack: RulePack
) -> None:
    cfg = write(tmp_path)
    doc = explain_json(capsys, cfg, "--system", "crm", "--dest", "api.dpfco.example", "--date", "2024-03-15")
    v = doc["verdict"]
    assert (v["outcome"], v["article"], v["rule_id"], v["severity"]) == ("permitted", "45", "adequacy.US.dpf", "info")
    assert v["rule_location"] == pack.locations["adequacy.US.dpf"]
    assert [s["result"] for s in v["steps"]] == ["pass"] * 6 + ["match"]
    assert all(set(s) == {"rule_id", "location", "result", "text"} for s in v["steps"])
    assert doc["date"] == "2024-03-15" and doc["vendor"] == "DPF Co"
    assert doc["destination"]["country"] == "US" and doc["destination"]["host"] == "api.dpfco.example"
    assert doc["rule_pack"] == {"name": pack.info.name, "version": pack.info.version, "hash": pack.hash}

    before = explain_json(capsys, cfg, "--system", "crm", "--dest", "api.dpfco.example", "--date", "2024-03-14")
    assert (before["verdict"]["outcome"], before["verdict"]["article"]) == ("unauthorized", "44")
    assert before["verdict"]["rule_id"] == "gdpr.art44.unauthorized"
    assert len(before["verdict"]["steps"]) == len(pack.procedure)


# --------------------------------------------------------------------------- usage errors

ONE_OF = "give exactly one of --source IP or --system NAME"
BAD_DATE = "--date must be YYYY-MM-DD"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--system", "crm", "--source", "10.20.1.1", "--dest", "x.example"], ONE_OF),
        (["--dest", "x.example"], ONE_OF),
        (["--system", "nope", "--dest", "x.example"], "no system 'nope' in the inventory; known: crm, payroll"),
        (["--system", "crm", "--dest", "x.example", "--date", "2024-13-01"], f"{BAD_DATE}, got '2024-13-01'"),
        (["--system", "crm", "--dest", "x.example", "--date", "yesterday"], f"{BAD_DATE}, got 'yesterday'"),
        (["--system", "crm", "--dest", "x.example,not-an-ip"], "'not-an-ip' in 'x.example,not-an-ip' is not an IP"),
    ],
)  # fmt: skip
def test_bad_usage_exits_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    cfg = write(tmp_path)
    capsys.readouterr()
    assert run(["-c", str(cfg), "explain", *args]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    assert cap.err.startswith("error: ") and message in cap.err, cap.err
    assert "Traceback" not in cap.err


def test_missing_dest_is_a_click_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write(tmp_path)
    capsys.readouterr()
    assert run(["-c", str(cfg), "explain", "--system", "crm"]) == 2
    assert "--dest" in capsys.readouterr().err


# --------------------------------------------------------------------------- NIS2 Art. 21(2)(d)

NIS2_DAY = "2025-01-10"  # NIS2 measures apply from 2024-10-18


def test_nis2_unapproved_supplier_turns_permitted_into_review(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pack: RulePack
) -> None:
    cfg = write(tmp_path, nis2="important")
    sc = "nis2.art21.2.d.unapproved-supplier"
    # an EEA recipient (no GDPR transfer) and a vendor under SCCs: both otherwise permitted
    for dest, gdpr_rule in (
        ("eu.storage.example", "gdpr.no-transfer.eea"),
        ("api.ledger.example,81.2.69.142", "gdpr.art46.2.c.scc"),
    ):
        doc = explain_json(capsys, cfg, "--system", "crm", "--dest", dest, "--date", NIS2_DAY)
        v = doc["verdict"]
        assert (v["outcome"], v["article"], v["rule_id"]) == ("review", "NIS2 21(2)(d)", sc), dest
        assert v["rule_location"] == pack.locations[sc]
        assert "id: " + sc in id_line(pack.locations[sc])
        assert v["steps"][-1]["rule_id"] == sc and v["steps"][-1]["result"] == "match"
        assert v["steps"][-2]["rule_id"] == gdpr_rule and v["steps"][-2]["result"] == "match"
        assert "not on the approved-supplier list" in v["basis"] and "important entity, system crm" in v["basis"]
        assert "(GDPR: " in v["basis"]

    out = explain(capsys, cfg, "--system", "crm", "--dest", "eu.storage.example", "--date", NIS2_DAY)
    assert field(out, "Verdict") == "REVIEW — NIS2 21(2)(d) (severity medium)"
    assert field(out, "Rule").startswith(f"{sc} ({pack.locations[sc]}); ")
    steps = reasoning(out)
    # the GDPR step that decided is "->", the NIS2 finding on top of it "+ "
    assert [m[3] for m in steps if m[1] == "->"] == ["gdpr.no-transfer.eea"]
    assert [m[3] for m in steps if m[1] == "+ "] == [sc]


def test_nis2_does_not_apply_before_its_date_nor_to_non_entities(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write(tmp_path, nis2="important")
    doc = explain_json(capsys, cfg, "--system", "crm", "--dest", "eu.storage.example", "--date", "2024-10-17")
    assert doc["verdict"]["outcome"] == "permitted"
    assert not any(s["rule_id"].startswith("nis2.") for s in doc["verdict"]["steps"])
    cfg = write(tmp_path, nis2="none")
    doc = explain_json(capsys, cfg, "--system", "crm", "--dest", "eu.storage.example", "--date", NIS2_DAY)
    assert doc["verdict"]["outcome"] == "permitted" and doc["verdict"]["article"] is None


def test_nis2_approved_supplier_is_permitted_with_a_pass_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pack: RulePack
) -> None:
    extra = "approved_suppliers:\n  - {vendor: DPF Co, approved_on: 2024-11-01, review_due: 2025-11-01}\n"
    cfg = write(tmp_path, nis2="essential", extra=extra)
    supplier_at = f"{cfg}:{CONFIG.count(chr(10)) + 2}:"  # the entry's line
    sc = "nis2.art21.2.d.unapproved-supplier"
    doc = explain_json(capsys, cfg, "--system", "crm", "--dest", "api.dpfco.example", "--date", NIS2_DAY)
    v = doc["verdict"]
    assert (v["outcome"], v["article"], v["rule_id"]) == ("permitted", "45", "adequacy.US.dpf")
    last = v["steps"][-1]
    assert (last["rule_id"], last["result"], last["location"]) == (sc, "pass", pack.locations[sc])
    assert last["text"].startswith("approved supplier since 2024-11-01 (" + supplier_at), last["text"]

    out = explain(capsys, cfg, "--system", "crm", "--dest", "api.dpfco.example", "--date", NIS2_DAY)
    assert field(out, "Verdict") == "PERMITTED — GDPR Art. 45 (severity info)"
    steps = reasoning(out)
    assert steps[-1][1] == "  " and steps[-1][3] == sc

    # the same vendor past its review date, and before its approval: a NIS2 review again
    late = explain_json(capsys, cfg, "--system", "crm", "--dest", "api.dpfco.example", "--date", "2025-11-02")
    assert (late["verdict"]["outcome"], late["verdict"]["article"]) == ("review", "NIS2 21(2)(d)")
    assert "review was due 2025-11-01" in late["verdict"]["basis"]
    early = explain_json(capsys, cfg, "--system", "crm", "--dest", "api.dpfco.example", "--date", "2024-10-31")
    assert (early["verdict"]["outcome"], early["verdict"]["article"]) == ("review", "NIS2 21(2)(d)")
    assert "not on the approved-supplier list" in early["verdict"]["basis"]


def test_nis2_finding_is_added_to_an_unauthorized_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write(tmp_path, nis2="important")
    doc = explain_json(capsys, cfg, "--system", "payroll", "--dest", "api.dpfco.example", "--date", NIS2_DAY)
    v = doc["verdict"]
    # GDPR decides (HR data, non-HR DPF scope); NIS2 is recorded on top, not instead
    assert (v["outcome"], v["article"], v["rule_id"]) == ("unauthorized", "44", "gdpr.art44.unauthorized")
    assert "; also NIS2 Art. 21(2)(d)" in v["basis"]
    assert v["steps"][-1]["rule_id"] == "nis2.art21.2.d.unapproved-supplier"


def test_host_only_uses_the_address_last_seen_in_the_evidence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "xborder.yaml"
    cfg.write_text(
        "store: {url: 'sqlite:///x.db'}\nalerts: {jsonl: null, stderr: false}\n"
        "systems: [{name: crm, sources: [10.0.0.0/8], data_categories: [customer-personal]}]\n",
        encoding="utf-8",
    )
    log = tmp_path / "a.log"
    log.write_text(
        "1763300000.000 9 10.1.1.1 TCP_TUNNEL/200 9 CONNECT api.cn-vendor.example:443 - HIER_DIRECT/175.16.199.1 -\n",
        encoding="utf-8",
    )
    assert run(["-c", str(cfg), "ingest", "squid", str(log)]) == 0
    capsys.readouterr()
    assert run(["-c", str(cfg), "explain", "--system", "crm", "--dest", "api.cn-vendor.example"]) == 0
    out = capsys.readouterr().out
    assert "-> api.cn-vendor.example [175.16.199.1]" in out
    assert "Verdict: UNAUTHORIZED — GDPR Art. 44" in out
