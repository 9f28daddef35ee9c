"""Turn parsed TOML tables into frozen dataclasses, collecting every problem.

Spec dataclasses declare their keys as fields; field metadata may carry
``min``/``max`` bounds (inclusive) and ``help`` text. A spec may define
``problems(self) -> list[tuple[str, str]]`` for cross-field rules, returning
(relative dotted key, message) pairs.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

from harness.registry import did_you_mean


@dataclass(frozen=True)
class Problem:
    """One configuration mistake, located as precisely as it can be."""

    path: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(Exception):
    """All problems found in one or more config files; str() has one line each."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class KeyLines:
    """Maps dotted keys of one TOML file to the line they are written on."""

    _TABLE = re.compile(r"^\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"^([A-Za-z0-9_\-\.\"' ]+?)\s*=")

    def __init__(self, text: str) -> None:
        self.lines: dict[str, int] = {}
        table = ""
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if match := self._TABLE.match(line):
                table = self._normalise(match.group(1))
                parts = table.split(".")
                for depth in range(1, len(parts) + 1):  # [a.b.c] also defines a and a.b
                    self.lines.setdefault(".".join(parts[:depth]), number)
            elif match := self._KEY.match(line):
                key = self._normalise(match.group(1))
                self.lines.setdefault(f"{table}.{key}" if table else key, number)

    @staticmethod
    def _normalise(dotted: str) -> str:
        return ".".join(part.strip().strip("\"'") for part in dotted.split("."))

    def find(self, key: str) -> int | None:
        """Line of `key`, else of its nearest written parent, else None."""
        parts = re.sub(r"\[\d+\]", "", key).split(".")
        while parts:
            if (line := self.lines.get(".".join(parts))) is not None:
                return line
            parts.pop()
        return None


class Collector:
    """Gathers problems for one file so that every mistake is reported at once."""

    def __init__(self, path: Path | str, key_lines: KeyLines | None = None) -> None:
        self.path = str(path)
        self.key_lines = key_lines
        self.problems: list[Problem] = []

    def add(self, key: str, message: str) -> None:
        line = self.key_lines.find(key) if self.key_lines else None
        self.problems.append(Problem(self.path, line, key, message))


_TYPE_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a table",
}


def _describe(value: Any) -> str:
    return f"{_TYPE_NAMES.get(type(value), type(value).__name__)} ({value!r})"


class FrozenDict(dict):
    """A read-only dict for spec tables (e.g. data.fields): specs stay immutable, yet pickle, so a cell
    can be shipped whole to another process or node."""

    def _readonly(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("spec tables are read-only")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=lambda item: str(item[0]))))

    def __reduce__(self):
        return (FrozenDict, (dict(self),))


def _convert(value: Any, hint: Any, key: str, out: Collector) -> Any:
    """Check `value` against the type `hint`; report and return None on mismatch."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(value, options[0], key, out) if len(options) == 1 else value
    if hint is Any:
        return value
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            hint_text = did_you_mean(str(value), [str(c) for c in choices])
            out.add(key, f"must be one of {', '.join(map(repr, choices))}, got {value!r}{hint_text}")
            return None
        return value
    if origin is tuple:
        (item_hint, _) = typing.get_args(hint)
        if not isinstance(value, list):
            out.add(key, f"expected a list, got {_describe(value)}")
            return None
        return tuple(_convert(v, item_hint, f"{key}[{i}]", out) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            out.add(key, f"expected a table, got {_describe(value)}")
            return None
        _, value_hint = typing.get_args(hint)
        return FrozenDict({k: _convert(v, value_hint, f"{key}.{k}", out) for k, v in value.items()})
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return build(hint, value, key, out)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not (
        isinstance(value, hint) and not (hint is int and isinstance(value, bool))
    ):
        out.add(key, f"expected {_TYPE_NAMES[hint]}, got {_describe(value)}")
        return None
    return value


def build(cls: type, raw: Any, prefix: str, out: Collector) -> Any:
    """Build dataclass `cls` from `raw`; problems go to `out`, keys under `prefix`."""
    if not isinstance(raw, dict):
        out.add(prefix, f"expected a table, got {_describe(raw)}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}

    def dotted(name: str) -> str:  # "" names the table itself (a cross-field rule)
        return f"{prefix}.{name}" if prefix and name else prefix or name

    for name in raw:
        if name not in fields:
            out.add(
                dotted(name), f"unknown key{did_you_mean(name, list(fields))}; allowed: {', '.join(sorted(fields))}"
            )
    values: dict[str, Any] = {}
    ok = True
    for name, field in fields.items():
        if name not in raw or raw[name] is None:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                if name not in raw:
                    out.add(dotted(name), "is required but missing")
                    ok = False
                    continue
            if name in raw:  # explicit None from a layer that lifts a limit
                values[name] = None
            continue
        before = len(out.problems)
        value = _convert(raw[name], hints[name], dotted(name), out)
        if len(out.problems) > before:
            ok = False
            continue
        low, high = field.metadata.get("min"), field.metadata.get("max")
        if low is not None and value < low:
            out.add(dotted(name), f"must be >= {low}, got {value!r}")
            ok = False
        elif high is not None and value > high:
            out.add(dotted(name), f"must be <= {high}, got {value!r}")
            ok = False
        values[name] = value
    if not ok:
        return None
    spec = cls(**values)
    for key, message in getattr(spec, "problems", lambda: [])():
        out.add(dotted(key), message)
        ok = False
    return spec if ok else None


def field(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    min: float | None = None,
    max: float | None = None,
    factory: Any = dataclasses.MISSING,
) -> Any:
    """A documented spec field with optional inclusive bounds."""
    return dataclasses.field(default=default, default_factory=factory, metadata={"help": help, "min": min, "max": max})


def to_plain(value: Any) -> Any:
    """A JSON-ready copy of a spec (dataclasses, mappings, tuples, paths)."""
    if dataclasses.is_dataclass(value):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (dict, types.MappingProxyType)):  # FrozenDict is a dict
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
