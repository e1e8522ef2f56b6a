"""Reads YAML (config, rule packs) keeping file:line:column for every value, and validates it whole."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from monitor.errors import ConfigError, Location, Problem

PathKey = tuple[str | int, ...]
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
M = TypeVar("M", bound=BaseModel)


class Sourced:
    """Plain data loaded from one YAML file plus where each value stood."""

    def __init__(
        self, file: str, data: Any, marks: dict[PathKey, Location], problems: list[Problem] | None = None
    ) -> None:
        self.file = file
        self.data = data
        self.marks = marks
        # found while reading (e.g. 2021-02-30): reported with, not instead of, validation problems
        self.problems = problems or []

    def where(self, path: Sequence[str | int]) -> Location:
        """The location of `path`, or of its nearest ancestor that has one."""
        key: PathKey = tuple(path)
        while key and key not in self.marks:
            key = key[:-1]
        return self.marks.get(key, Location(self.file, 1, 1))


def _mark(file: str, node: yaml.Node) -> Location:
    return Location(file, node.start_mark.line + 1, node.start_mark.column + 1)


def _walk(file: str, node: yaml.Node, path: PathKey, marks: dict[PathKey, Location]) -> None:
    marks[path] = _mark(file, node)
    if isinstance(node, yaml.MappingNode):
        for knode, vnode in node.value:
            key = knode.value
            marks[path + (key,)] = _mark(file, knode)
            _walk(file, vnode, path + (key,), marks)
            # keep the key's own position for "unknown key" errors
            marks[path + (key,)] = _mark(file, knode)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(file, item, path + (i,), marks)


def load(path: Path, text: str | None = None, display: str | None = None) -> Sourced:
    """Parse one YAML file; a syntax error becomes a located ConfigError (named `display` if given)."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8") if text is None else text
    except OSError as exc:
        raise ConfigError([Problem(f"cannot read: {exc.strerror}", Location(name))]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem("not UTF-8 text", Location(name))]) from exc
    node: yaml.Node | None = None
    try:
        # Parsed once (by libyaml when PyYAML has it: the rule packs and catalog took 1.4 s to
        # start in pure Python), then built from the nodes, which keep every value's position.
        node = yaml.compose(text, Loader=_LOADER)
        data = yaml.SafeLoader("").construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        loc = Location(name, mark.line + 1, mark.column + 1) if mark else Location(name)
        raise ConfigError([Problem(f"YAML syntax: {exc.problem}", loc)]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(f"YAML syntax: {exc}", Location(name))]) from exc
    except ValueError as exc:
        # PyYAML builds dates itself and raises a bare ValueError for e.g. 2021-02-30: note each
        # bad date, read it as text, and go on so every other problem is found in the same run
        bad = _bad_timestamps(name, node, retag=True)
        if not bad:
            raise ConfigError([Problem(str(exc), Location(name))]) from exc
        loader = yaml.SafeLoader("")
        data = loader.construct_document(node)
        marks = _marks(name, node)
        return Sourced(name, data if data is not None else {}, marks, bad)
    return Sourced(name, data if data is not None else {}, _marks(name, node))


def _marks(name: str, node: yaml.Node | None) -> dict[PathKey, Location]:
    marks: dict[PathKey, Location] = {}
    if node is not None:
        _walk(name, node, (), marks)
    return marks


def _bad_timestamps(file: str, node: yaml.Node | None, *, retag: bool = False) -> list[Problem]:
    """Located problems for every date-looking scalar that is not a real calendar date."""
    out: list[Problem] = []
    stack = [node] if node is not None else []
    constructor = yaml.SafeLoader("")
    while stack:
        n = stack.pop()
        if isinstance(n, yaml.MappingNode):
            stack.extend(v for kv in n.value for v in kv)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
        elif isinstance(n, yaml.ScalarNode) and n.tag == "tag:yaml.org,2002:timestamp":
            try:
                constructor.construct_yaml_timestamp(n)
            except ValueError as exc:
                out.append(Problem(f"'{n.value}' is not a valid date ({exc})", _mark(file, n), "use YYYY-MM-DD"))
                if retag:
                    n.tag = "tag:yaml.org,2002:str"
    return sorted(out, key=lambda p: (p.location.line or 0) if p.location else 0)


def duplicates(src: Sourced, list_key: str, field: str, what: str) -> list[Problem]:
    """A problem at each repeat of `field` among the items of the top-level list `list_key`."""
    items = src.data.get(list_key) if isinstance(src.data, dict) else None
    out: list[Problem] = []
    first: dict[object, Location] = {}
    for i, item in enumerate(items if isinstance(items, list) else []):
        value = item.get(field) if isinstance(item, dict) else None
        if value is None:
            continue
        if value in first:
            out.append(
                Problem(f"{what} '{value}' is defined twice", src.where((list_key, i)), f"first at {first[value]}")
            )
        else:
            first[value] = src.where((list_key, i))
    return out


def _data_path(data: Any, loc: Sequence[str | int]) -> list[str | int]:
    """`loc` without parts that are not keys in the data (pydantic adds union tags such as 'scc')."""
    out: list[str | int] = []
    cur = data
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            cur = cur[part]
        elif isinstance(cur, dict) and isinstance(part, str) and out and part not in cur and cur.get("type") == part:
            continue  # a discriminated-union tag
        else:
            out.append(part)
            cur = None
            continue
        out.append(part)
    return out


def _fields_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """Field names allowed at `loc` (the parent of an unknown key), for did-you-mean hints."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        current = _model_in(fields[part].annotation)
    return list(getattr(current, "model_fields", {}) or [])


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def problems_from(exc: ValidationError, src: Sourced, model: type[BaseModel]) -> list[Problem]:
    """Every pydantic error as a located Problem with a hint."""
    out: list[Problem] = []
    for err in exc.errors():
        loc = _data_path(src.data, [p for p in err["loc"] if isinstance(p, (str, int))])
        dotted = ".".join(str(p) for p in loc) or "(top)"
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            allowed = _fields_at(model, loc[:-1])
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(allowed)}"
            parent = ".".join(str(p) for p in loc[:-1]) or "the top level"
            out.append(Problem(f"unknown key '{key}' in {parent}", src.where(loc), hint))
        elif err["type"] == "missing":
            out.append(Problem(f"missing required key '{dotted}'", src.where(loc[:-1])))
        else:
            got = err.get("input")
            shown = repr(got) if not isinstance(got, (dict, list)) else type(got).__name__
            hint = None
            if isinstance(got, bool):
                hint = "YAML reads yes/no/on/off (and NO, Norway's code) as booleans: quote the value"
            out.append(Problem(f"{dotted}: {err['msg']} (got {shown})", src.where(loc), hint))
    return out


def validate(src: Sourced, model: type[M]) -> M:
    """Validate all of `src` against `model`; every error at once, each located."""
    try:
        value = model.model_validate(src.data)
    except ValidationError as exc:
        # a bad date is already reported at its line; pydantic would report the same field again
        seen = {(p.location.file, p.location.line) for p in src.problems if p.location}
        later = [
            p
            for p in problems_from(exc, src, model)
            if not p.location or (p.location.file, p.location.line) not in seen
        ]
        raise ConfigError(src.problems + later) from exc
    if src.problems:
        raise ConfigError(src.problems)
    return value
