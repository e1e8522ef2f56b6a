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
M = TypeVar("M", bound=BaseModel)


class Sourced:
    """Plain data loaded from one YAML file plus where each value stood."""

    def __init__(self, file: str, data: Any, marks: dict[PathKey, Location]) -> None:
        self.file = file
        self.data = data
        self.marks = marks

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


def load(path: Path, text: str | None = None) -> Sourced:
    """Parse one YAML file; a syntax error becomes a located ConfigError."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8") if text is None else text
    except OSError as exc:
        raise ConfigError([Problem(f"cannot read: {exc.strerror}", Location(name))]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem("not UTF-8 text", Location(name))]) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        loc = Location(name, mark.line + 1, mark.column + 1) if mark else Location(name)
        raise ConfigError([Problem(f"YAML syntax: {exc.problem}", loc)]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(f"YAML syntax: {exc}", Location(name))]) from exc
    marks: dict[PathKey, Location] = {}
    if node is not None:
        _walk(name, node, (), marks)
    return Sourced(name, data if data is not None else {}, marks)


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
        loc = [p for p in err["loc"] if isinstance(p, (str, int))]
        dotted = ".".join(str(p) for p in loc) or "(top)"
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            allowed = _fields_at(model, loc[:-1])
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(allowed)}"
            out.append(Problem(f"unknown key '{key}' in {dotted}", src.where(loc), hint))
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
        return model.model_validate(src.data)
    except ValidationError as exc:
        raise ConfigError(problems_from(exc, src, model)) from exc
