"""The rule pack loader: the shipped pack, its hash, rule locations, and all-at-once validation."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from monitor.errors import ConfigError, Problem
from monitor.policy.rulepack import RulePack, load_pack, pack_hash
from monitor.settings import default_rules_dir

RULES = default_rules_dir()


@pytest.fixture(scope="module")
def pack() -> RulePack:
    return load_pack(RULES)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A private copy of the shipped pack, still in a folder named rules/ (as shipped)."""
    dst = tmp_path / "rules"
    shutil.copytree(RULES, dst)
    for p in dst.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


def _edit(root: Path, rel: str, old: str, new: str) -> int:
    """Replace `old` (exactly once) in a rule file; returns the 1-based line the edit is on."""
    path = root / rel
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {rel}"
    text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    return text[: text.index(new)].count("\n") + 1


def _line_of(root: Path, rel: str, needle: str) -> int:
    lines = (root / rel).read_text(encoding="utf-8").splitlines()
    hits = [i + 1 for i, line in enumerate(lines) if needle in line]
    assert len(hits) == 1, f"{needle!r} on lines {hits} of {rel}"
    return hits[0]


def _at(problems: list[Problem], file: str, line: int, fragment: str) -> Problem:
    hits = [
        p
        for p in problems
        if p.location is not None
        and p.location.file == f"rules/{file}"
        and p.location.line == line
        and fragment in p.message
    ]
    assert hits, f"no problem at rules/{file}:{line} containing {fragment!r}; got:\n" + "\n".join(
        str(p) for p in problems
    )
    return hits[0]


# --------------------------------------------------------------------------- shipped pack


def test_shipped_pack_loads(pack: RulePack) -> None:
    assert pack.info.name == "xborder-gdpr-chapter-v"
    assert len(pack.eea) == 30
    assert {"DE", "NO", "IS", "LI", "GR"} <= pack.eea
    assert "EL" not in pack.eea and "GB" not in pack.eea
    assert pack.procedure[0].check == "no_personal_data"
    assert pack.procedure[-1].check == "always"
    assert set(pack.scc) == {"2021/914", "2010/87", "2001/497", "2004/915"}
    assert "payment" not in pack.non_personal and "none" in pack.non_personal


def test_in_eea_members_territories_and_others(pack: RulePack) -> None:
    assert pack.in_eea("DE") is True
    assert pack.in_eea("AX") is True  # Åland: part of FI, inside the EU
    assert pack.in_eea("GL") is False  # Greenland: OCT
    assert pack.in_eea("SJ") is None  # Svalbard: review
    assert pack.in_eea("US") is False


def test_hash_is_stable(pack: RulePack) -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", pack.hash)
    assert load_pack(RULES).hash == pack.hash
    assert pack_hash(RULES) == pack.hash


def test_hash_does_not_depend_on_where_the_pack_is(pack: RulePack, copy: Path) -> None:
    assert load_pack(copy).hash == pack.hash


def test_hash_changes_when_one_byte_changes(pack: RulePack, copy: Path) -> None:
    path = copy / "gdpr" / "scc.yaml"
    data = bytearray(path.read_bytes())
    i = data.index(b"repealed")
    data[i] = ord("R")  # inside a comment: the pack still loads and means the same
    path.write_bytes(bytes(data))
    changed = load_pack(copy)
    assert changed.hash != pack.hash
    assert changed.hash == pack_hash(copy)


def test_hash_covers_every_yaml_file(pack: RulePack, copy: Path) -> None:
    (copy / "gdpr" / "extra.yaml").write_text("# not read by the loader, still part of the pack\n")
    assert load_pack(copy).hash != pack.hash


def test_every_rule_has_a_location(pack: RulePack) -> None:
    ids = {d.id for d in pack.decisions} | {s.id for s in pack.procedure} | {c.id for c in pack.clocks}
    ids.add(pack.nis2.supplier_check.id)
    assert set(pack.locations) == ids


def test_locations_point_at_the_rule_line(pack: RulePack) -> None:
    assert pack.locations
    wrong = []
    for rule_id, where in pack.locations.items():
        m = re.fullmatch(r"(rules/[\w/.-]+\.yaml):(\d+)", where)
        assert m, where
        path = RULES.parent / m.group(1)
        line = path.read_text(encoding="utf-8").splitlines()[int(m.group(2)) - 1]
        # the whole id: adequacy.GB must not be satisfied by a line about adequacy.GB.2021
        if not re.search(rf"\bid: {re.escape(rule_id)}(?![\w.-])", line):
            wrong.append((rule_id, where, line))
    assert wrong == []


def test_locations_of_two_known_rules(pack: RulePack) -> None:
    assert (
        pack.locations["adequacy.JP"]
        == f"rules/gdpr/adequacy.yaml:{_line_of(RULES, 'gdpr/adequacy.yaml', 'id: adequacy.JP')}"
    )
    assert pack.locations["gdpr.art44.unauthorized"].startswith("rules/gdpr/chapter5.yaml:")


# --------------------------------------------------------------------------- validation

# (file, old, new, fragment of the expected message)
MISTAKES = {
    "typo": (
        "gdpr/adequacy.yaml",
        '{id: adequacy.AD, country: AD, instrument: "Commission Decision 2010/625/EU"',
        '{id: adequacy.AD, country: AD, instrumnet: "Commission Decision 2010/625/EU"',
        "unknown key 'instrumnet'",
    ),
    "bad-date": (
        "gdpr/adequacy.yaml",
        "in_force_from: 2003-06-30",
        "in_force_from: 30.06.2003",
        "decisions.1.in_force_from",
    ),
    "bad-country": (
        "gdpr/adequacy.yaml",
        "{id: adequacy.FO, country: FO,",
        "{id: adequacy.FO, country: USA,",
        "'USA'",
    ),
    "unknown-check": (
        "gdpr/chapter5.yaml",
        "check: bcr_on_file",
        "check: bcr_in_file",
        "'bcr_in_file'",
    ),
    "unquoted-no": (
        "gdpr/eea.yaml",
        '{code: "NO", name: Norway',
        "{code: NO, name: Norway",
        "eea.members.29.code",
    ),
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_each_mistake_alone_is_located(copy: Path, name: str) -> None:
    rel, old, new, fragment = MISTAKES[name]
    line = _edit(copy, rel, old, new)
    with pytest.raises(ConfigError) as err:
        load_pack(copy)
    problem = _at(err.value.problems, rel, line, fragment)
    if name == "typo":
        assert problem.hint == "did you mean 'instrument'?"
    if name == "unquoted-no":
        assert problem.hint is not None and "quote" in problem.hint


def test_duplicate_rule_id_alone(copy: Path) -> None:
    first = _edit(copy, "gdpr/adequacy.yaml", "{id: adequacy.GG,", "{id: adequacy.CH,")
    second = _line_of(copy, "gdpr/adequacy.yaml", "{id: adequacy.CH, country: CH")
    with pytest.raises(ConfigError) as err:
        load_pack(copy)
    (problem,) = err.value.problems
    _at([problem], "gdpr/adequacy.yaml", second, "rule id 'adequacy.CH' is used twice")
    assert problem.hint == f"first at rules/gdpr/adequacy.yaml:{first}"


def test_all_mistakes_in_one_error(copy: Path) -> None:
    """Six mistakes in three files: one ConfigError naming every one, each at its own line."""
    lines = {name: _edit(copy, rel, old, new) for name, (rel, old, new, _) in MISTAKES.items()}
    dup_first = _edit(copy, "gdpr/adequacy.yaml", "{id: adequacy.GG,", "{id: adequacy.CH,")
    dup_second = _line_of(copy, "gdpr/adequacy.yaml", "{id: adequacy.CH, country: CH")

    with pytest.raises(ConfigError) as err:
        load_pack(copy)
    problems = err.value.problems

    for name, (rel, _, _, fragment) in MISTAKES.items():
        _at(problems, rel, lines[name], fragment)
    typo = _at(problems, "gdpr/adequacy.yaml", lines["typo"], "unknown key 'instrumnet'")
    assert typo.hint == "did you mean 'instrument'?"
    dup = _at(problems, "gdpr/adequacy.yaml", dup_second, "rule id 'adequacy.CH' is used twice")
    assert dup.hint == f"first at rules/gdpr/adequacy.yaml:{dup_first}"
    # every problem is located and the message carries each one
    assert all(p.location is not None and p.location.line for p in problems)
    for p in problems:
        assert str(p) in str(err.value)


def test_impossible_calendar_date_is_a_located_problem(copy: Path) -> None:
    # 2021-02-30 has the shape of a YAML timestamp, so the YAML parser itself rejects it
    line = _edit(copy, "gdpr/adequacy.yaml", "in_force_from: 2021-06-28", "in_force_from: 2021-02-30")
    with pytest.raises(ConfigError) as err:
        load_pack(copy)
    (problem,) = err.value.problems
    assert problem.location is not None
    assert (problem.location.file, problem.location.line) == ("rules/gdpr/adequacy.yaml", line)


def test_last_step_must_be_catch_all(copy: Path) -> None:
    line = _line_of(copy, "gdpr/chapter5.yaml", "check: always")
    _edit(copy, "gdpr/chapter5.yaml", "check: always", "check: derogation_on_file")
    with pytest.raises(ConfigError) as err:
        load_pack(copy)
    (problem,) = err.value.problems
    assert "catch-all" in problem.message
    assert problem.location is not None
    # located at the last step, which starts one line above its `check:`
    assert (problem.location.file, problem.location.line) == ("rules/gdpr/chapter5.yaml", line - 1)


def test_inconsistent_decision(copy: Path) -> None:
    line = _edit(copy, "gdpr/adequacy.yaml", "in_force_until: 2015-10-05", "in_force_until: 1999-10-05")
    with pytest.raises(ConfigError) as err:
        load_pack(copy)
    (problem,) = err.value.problems
    assert "in_force_until is before in_force_from" in problem.message
    assert problem.location is not None
    assert problem.location.file == "rules/gdpr/adequacy.yaml"
    assert problem.location.line is not None and problem.location.line < line  # the decision's first line


def test_missing_rule_file(copy: Path) -> None:
    (copy / "gdpr" / "scc.yaml").unlink()
    with pytest.raises(ConfigError) as err:
        load_pack(copy)
    (problem,) = err.value.problems
    assert problem.message == "rule file missing"
    assert problem.location is not None and problem.location.file.endswith("scc.yaml")


def test_pack_outside_a_rules_folder_names_real_paths(tmp_path: Path) -> None:
    root = tmp_path / "mypack"
    shutil.copytree(RULES, root)
    pack = load_pack(root)
    where = pack.locations["adequacy.CH"]
    assert where.startswith(str(root / "gdpr" / "adequacy.yaml") + ":")
