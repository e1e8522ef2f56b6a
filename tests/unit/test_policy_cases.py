"""The policy case files in rules/tests/ through `xborder rules test`, and that command's failure modes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.cli.main import run
from monitor.settings import default_rules_dir

CASE_DIR = default_rules_dir() / "tests"
CASE_FILES = sorted(CASE_DIR.glob("*.yaml"))
MIN_TOTAL_CASES = 80


def _n_cases(path: Path) -> int:
    return len(yaml.safe_load(path.read_text(encoding="utf-8"))["cases"])


@pytest.fixture(autouse=True)
def _no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ./xborder.yaml and no $XBORDER_CONFIG: the rules dir is the one beside the package."""
    monkeypatch.delenv("XBORDER_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def _run_json(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = run(["rules", "test", str(path), "--format", "json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ the shipped case files


def test_case_files_hold_enough_passing_cases(capsys: pytest.CaptureFixture[str]) -> None:
    assert CASE_FILES, f"no case files in {CASE_DIR}"
    total = sum(_n_cases(p) for p in CASE_FILES)
    assert total >= MIN_TOTAL_CASES, f"{total} cases in {CASE_DIR}, want at least {MIN_TOTAL_CASES}"
    passed = sum(_run_json(p, capsys)[1]["passed"] for p in CASE_FILES)
    assert passed >= MIN_TOTAL_CASES, f"{passed} passing cases in {CASE_DIR}, want at least {MIN_TOTAL_CASES}"


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: p.name)
def test_case_file_passes(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = _run_json(path, capsys)
    failures = [
        {"name": c["name"], "where": c["where"], "expected": c["expected"],
         "got": {k: c["actual"][k] for k in ("outcome", "article", "rule_id", "severity")}}
        for c in doc["cases"] if not c["passed"]
    ]  # fmt: skip
    assert failures == [], json.dumps(failures, indent=2)
    assert doc["failed"] == 0
    assert code == 0
    assert doc["passed"] >= _n_cases(path)
    assert len(doc["cases"]) == _n_cases(path)


def test_case_names_are_unique_within_each_file() -> None:
    for path in CASE_FILES:
        names = [c["name"] for c in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]]
        dupes = sorted({n for n in names if names.count(n) > 1})
        assert dupes == [], f"{path.name}: duplicate case names {dupes}"


def test_eea_region_of_a_us_provider_records_third_country_access_risk(capsys: pytest.CaptureFixture[str]) -> None:
    """EDPB 05/2021: EU-region hosting by a US-seated provider is no transfer, but the risk is recorded."""
    code, doc = _run_json(CASE_DIR / "catalog.yaml", capsys)
    assert code == 0
    (case,) = [c for c in doc["cases"] if "bedrock-runtime.eu-central-1" in c["name"]]
    assert case["passed"] is True
    assert case["actual"]["outcome"] == "permitted"
    assert case["actual"]["rule_id"] == "gdpr.no-transfer.eea"
    assert "country DE is in the EEA" in case["actual"]["basis"]
    assert "third-country access risk" in case["actual"]["basis"]
    assert "seated in US" in case["actual"]["basis"]


# ------------------------------------------------------------------ a failing expectation

WRONG = """\
cases:
  - name: EEA recipient wrongly expected unauthorized
    date: 2025-03-01
    system: {name: shop-backend, data_categories: [customer-personal]}
    destination: {host: api.de-vendor.example, located_country: DE}
    expect: {outcome: unauthorized, article: "44", severity: high}
  - name: EEA recipient rightly expected permitted
    date: 2025-03-01
    system: {name: shop-backend, data_categories: [customer-personal]}
    destination: {host: api.de-vendor.example, located_country: DE}
    expect: {outcome: permitted, article: "", rule_id: gdpr.no-transfer.eea}
"""


def test_wrong_expectation_json_shows_expected_vs_actual(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "wrong.yaml", WRONG)
    code, doc = _run_json(path, capsys)
    assert code == 1
    assert (doc["passed"], doc["failed"]) == (1, 1)
    bad, good = doc["cases"]
    assert bad["name"] == "EEA recipient wrongly expected unauthorized"
    assert bad["passed"] is False
    assert bad["expected"] == {"outcome": "unauthorized", "article": "44", "severity": "high"}
    assert bad["actual"]["outcome"] == "permitted"
    assert bad["actual"]["article"] is None
    assert bad["actual"]["severity"] == "info"
    assert bad["actual"]["rule_id"] == "gdpr.no-transfer.eea"
    assert bad["actual"]["steps"][-1]["result"] == "match"
    assert bad["where"] == f"{path}:2:5"
    assert good["passed"] is True


def test_wrong_expectation_table_shows_expected_and_got(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "wrong.yaml", WRONG)
    code = run(["rules", "test", str(path)])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  EEA recipient wrongly expected unauthorized" in out
    assert "PASS  EEA recipient rightly expected permitted" in out
    assert "outcome: expected unauthorized, got permitted" in out
    assert "article: expected 44, got none" in out
    assert "severity: expected high, got info" in out
    assert f"[{path}:2:5; decided by gdpr.no-transfer.eea at " in out
    assert "1 passed, 1 failed" in out


def test_all_passing_file_exits_0_in_table_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = WRONG.split("  - name: EEA recipient rightly")[0]
    path = _write(
        tmp_path,
        "ok.yaml",
        first.replace('{outcome: unauthorized, article: "44", severity: high}', "{outcome: permitted}"),
    )
    code = run(["rules", "test", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "1 passed, 0 failed" in out


# ------------------------------------------------------------------ malformed case files: exit 2, file:line


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        pytest.param(
            """\
cases:
  - name: typo in a case key
    date: 2025-03-01
    system: {name: s, data_categories: [customer-personal]}
    destination: {host: x.example, located_country: DE}
    expectation: {outcome: permitted}
""",
            6,
            "unknown key 'expectation'",
            id="unknown-key",
        ),
        pytest.param(
            """\
cases:
  - name: typo in a destination field
    date: 2025-03-01
    system: {name: s, data_categories: [customer-personal]}
    destination: {host: x.example, located_contry: DE}
    expect: {outcome: permitted}
""",
            5,
            "unknown destination field 'located_contry'",
            id="unknown-destination-field",
        ),
        pytest.param(
            """\
cases:
  - name: impossible date
    date: 2025-13-01
    system: {name: s, data_categories: [customer-personal]}
    destination: {host: x.example, located_country: DE}
    expect: {outcome: permitted}
""",
            3,
            "'2025-13-01' is not a valid date",
            id="bad-date",
        ),
        pytest.param(
            """\
cases:
  - name: outcome that does not exist
    date: 2025-03-01
    system: {name: s, data_categories: [customer-personal]}
    destination: {host: x.example, located_country: DE}
    expect: {outcome: allowed}
""",
            6,
            "",
            id="bad-outcome",
        ),
    ],
)
@pytest.mark.parametrize("fmt", ["table", "json"])
def test_malformed_case_file_exits_2_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, message: str, fmt: str
) -> None:
    path = _write(tmp_path, "bad.yaml", text)
    code = run(["rules", "test", str(path), "--format", fmt])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""  # no partial results
    assert f"{path}:{line}:" in captured.err, captured.err
    assert message in captured.err
