"""Config loading: where the file comes from, all-at-once validation with file:line, store URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor import yamlsrc
from monitor.errors import ConfigError, Problem, UsageError
from monitor.settings import CONFIG_ENV, Settings, load_config

STARTER = Path(__file__).resolve().parents[2] / "monitor" / "starter_config.yaml"

BASE = """\
organisation:
  name: Test GmbH
  country: DE
store:
  url: sqlite:///x.db
reports_dir: out
alerts:
  channels:
    - name: soc-hook
      type: webhook
      url: https://soc.example/hook
      timeout_s: 5
    - name: soc-syslog
      type: syslog
      transport: tcp
systems:
  - name: a
    sources: [10.0.0.0/24]
    data_categories: [hr]
  - name: b
    sources: [10.1.0.0/24]
    data_categories: [none]
  - name: c
    data_categories: [none]
vendors:
  - name: V
    seat: US
    mechanisms:
      - type: dpf
        certified_since: 2024-01-01
      - type: scc
        module: 2
        signed: 2024-01-01
      - {type: bcr, approved_on: 2024-03-01}
"""

# name: (old text in BASE, new text with a #name# marker on the line the problem belongs to,
#        fragment of the message, expected hint fragment or None)
MISTAKES: dict[str, tuple[str, str, str, str | None]] = {
    "top-typo": ("reports_dir: out", "systms: []  #top-typo#", "unknown key 'systms'", "did you mean 'systems'?"),
    "nested-typo": (
        "  url: sqlite:///x.db",
        "  uri: sqlite:///x.db  #nested-typo#",
        "unknown key 'uri'",
        "did you mean 'url'?",
    ),
    "cidr": ("sources: [10.0.0.0/24]", "sources: [10.0.0.0/33]  #cidr#", "10.0.0.0/33", None),
    "missing": (
        "  - name: b\n    sources: [10.1.0.0/24]\n    data_categories: [none]\n",
        "  - name: b  #missing#\n    sources: [10.1.0.0/24]\n",
        "data_categories",
        None,
    ),
    "duplicate": ("  - name: c", "  - name: a  #duplicate#", "defined twice", None),
    "mechanism-type": ("      - type: dpf", "      - type: dfp  #mechanism-type#", "'dfp'", None),
    "scc-module": ("        module: 2", "        module: 5  #scc-module#", "module", None),
    "date": (
        "approved_on: 2024-03-01}",
        "approved_on: 2024-03-1st}  #date#",
        "approved_on",
        None,
    ),
    "seat": ("    seat: US", "    seat: USA  #seat#", "'USA'", None),
    "norway": ("  country: DE", "  country: NO  #norway#", "organisation.country", "quote"),
    "channel-key": ("      timeout_s: 5", "      timout_s: 5  #channel-key#", "unknown key 'timout_s'", "timeout_s"),
    "channel-transport": ("      transport: tcp", "      transport: tpc  #channel-transport#", "'tpc'", None),
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.delenv("XBORDER_DB_URL", raising=False)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _with(names: list[str]) -> str:
    text = BASE
    for name in names:
        old, new, _, _ = MISTAKES[name]
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def _marker_line(text: str, name: str) -> int:
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if f"#{name}#" in line]
    assert len(hits) == 1
    return hits[0]


def _problem_at(problems: list[Problem], file: Path, line: int, fragment: str) -> Problem:
    hits = [
        p
        for p in problems
        if p.location is not None and p.location.file == str(file) and p.location.line == line and fragment in p.message
    ]
    assert len(hits) == 1, f"expected one problem at {file}:{line} with {fragment!r}; got:\n" + "\n".join(
        str(p) for p in problems
    )
    return hits[0]


# --------------------------------------------------------------------------- starter config


def test_starter_config_validates() -> None:
    settings = yamlsrc.validate(yamlsrc.load(STARTER), Settings)
    assert [s.name for s in settings.systems] == ["checkout", "build-farm"]
    assert settings.vendors[0].seat == "US"
    assert settings.organisation.country == "DE"


def test_starter_config_through_load_config() -> None:
    cfg = load_config(str(STARTER))
    assert cfg.path == STARTER
    assert cfg.base == STARTER.parent
    assert cfg.source is not None
    assert cfg.register.systems[0].name == "checkout"


def test_base_of_these_tests_is_valid(tmp_path: Path) -> None:
    cfg = load_config(str(_write(tmp_path / "x.yaml", BASE)))
    assert [s.name for s in cfg.settings.systems] == ["a", "b", "c"]
    assert len(cfg.settings.vendors[0].mechanisms) == 3


# --------------------------------------------------------------------------- where the config comes from


@pytest.fixture
def three_configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path, Path]]:
    explicit = _write(tmp_path / "a" / "explicit.yaml", "organisation: {name: from-explicit}\n")
    env = _write(tmp_path / "b" / "env.yaml", "organisation: {name: from-env}\n")
    cwd = _write(tmp_path / "c" / "xborder.yaml", "organisation: {name: from-cwd}\n")
    monkeypatch.chdir(cwd.parent)
    monkeypatch.setenv(CONFIG_ENV, str(env))
    yield explicit, env, cwd


def test_explicit_path_comes_first(three_configs: tuple[Path, Path, Path]) -> None:
    explicit, _, _ = three_configs
    cfg = load_config(str(explicit))
    assert cfg.settings.organisation.name == "from-explicit"
    assert cfg.base == explicit.parent.resolve()


def test_environment_comes_second(three_configs: tuple[Path, Path, Path]) -> None:
    cfg = load_config(None)
    assert cfg.settings.organisation.name == "from-env"


def test_working_directory_comes_third(three_configs: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV)
    cfg = load_config(None)
    assert cfg.settings.organisation.name == "from-cwd"
    assert cfg.base == three_configs[2].parent.resolve()


def test_no_config_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None)
    assert cfg.path is None
    assert cfg.settings == Settings()
    with pytest.raises(UsageError):
        load_config(None, required=True)


def test_missing_explicit_file(three_configs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    # an explicit path that does not exist is an error, not a reason to use the others
    with pytest.raises(UsageError, match="config file not found"):
        load_config(str(tmp_path / "nope.yaml"))


def test_missing_file_named_by_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "xborder.yaml", "{}\n")
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "gone.yaml"))
    with pytest.raises(UsageError, match=CONFIG_ENV):
        load_config(None)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("name", list(MISTAKES))
def test_each_mistake_alone(tmp_path: Path, name: str) -> None:
    text = _with([name])
    path = _write(tmp_path / "xborder.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    _, _, fragment, hint = MISTAKES[name]
    (problem,) = err.value.problems
    _problem_at([problem], path, _marker_line(text, name), fragment)
    if hint:
        assert problem.hint is not None and hint in problem.hint


def test_ten_mistakes_in_one_error(tmp_path: Path) -> None:
    text = _with(list(MISTAKES))
    path = _write(tmp_path / "xborder.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    problems = err.value.problems
    for name, (_, _, fragment, hint) in MISTAKES.items():
        p = _problem_at(problems, path, _marker_line(text, name), fragment)
        if hint:
            assert p.hint is not None and hint in p.hint, (name, p)
    assert len(problems) == len(MISTAKES), "\n".join(str(p) for p in problems)


def test_impossible_calendar_date(tmp_path: Path) -> None:
    # shaped like a YAML timestamp, so the YAML parser itself chokes on it
    text = BASE.replace("approved_on: 2024-03-01}", "approved_on: 2024-02-30}  #bad-day#")
    path = _write(tmp_path / "xborder.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    (problem,) = err.value.problems
    assert problem.location is not None
    assert (problem.location.file, problem.location.line) == (str(path), _marker_line(text, "bad-day"))


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "xborder.yaml", "store:\n  url: [unclosed\nsystems: []\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    (problem,) = err.value.problems
    assert problem.message.startswith("YAML syntax")
    assert problem.location is not None
    assert problem.location.file == str(path)
    assert problem.location.line == 3


def test_tab_indentation_is_a_syntax_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "xborder.yaml", "store:\n\turl: sqlite:///x.db\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    (problem,) = err.value.problems
    assert problem.location is not None and problem.location.line == 2


def test_not_a_mapping(tmp_path: Path) -> None:
    path = _write(tmp_path / "xborder.yaml", "- just\n- a list\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    assert len(err.value.problems) == 1


# --------------------------------------------------------------------------- store URL


def test_relative_sqlite_url_resolves_against_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "etc" / "xborder.yaml", "store: {url: 'sqlite:///data/x.db'}\n")
    monkeypatch.chdir(_write(tmp_path / "elsewhere" / "f", "").parent)
    cfg = load_config(str(path))
    assert cfg.store_url == f"sqlite:///{(tmp_path / 'etc').resolve() / 'data' / 'x.db'}"


def test_relative_config_path_still_resolves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / "etc" / "xborder.yaml", "store: {url: 'sqlite:///x.db'}\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config("etc/xborder.yaml")
    monkeypatch.chdir(tmp_path / "etc")  # a later chdir does not move the database
    assert cfg.store_url == f"sqlite:///{tmp_path.resolve() / 'etc' / 'x.db'}"


@pytest.mark.parametrize("url", ["sqlite:////var/lib/xborder/x.db", "sqlite:///:memory:", "postgresql+psycopg://db/x"])
def test_absolute_and_other_urls_unchanged(tmp_path: Path, url: str) -> None:
    path = _write(tmp_path / "xborder.yaml", f"store: {{url: '{url}'}}\n")
    assert load_config(str(path)).store_url == url


def test_db_url_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "xborder.yaml", "store: {url: 'sqlite:///x.db'}\n")
    monkeypatch.setenv("XBORDER_DB_URL", "postgresql+psycopg://xborder@db.internal/xborder")
    assert load_config(str(path)).store_url == "postgresql+psycopg://xborder@db.internal/xborder"


def test_default_store_url_without_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(None).store_url == f"sqlite:///{tmp_path.resolve() / 'xborder.db'}"
