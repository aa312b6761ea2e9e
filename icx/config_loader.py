"""Typed TOML loading: a dict from ``tomllib`` becomes a frozen dataclass, or a list of problems.

A caller declares a section as a frozen dataclass whose fields carry type hints (str, int,
bool, float, Decimal, Literal[...], tuple[T, ...], dict[str, T], nested dataclasses, ``X | None``)
and, optionally, ``field(metadata={"check": fn})`` where ``fn(value) -> str | None`` returns a
problem text. :func:`build` collects *every* problem (unknown keys, wrong types, bad values) as
``file:key: message`` so the operator fixes the file in one pass.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

T = TypeVar("T")
_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")


@dataclasses.dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong in a config file."""

    file: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.key}: {self.message}"


class ConfigError(Exception):
    """Raised with every problem found; ``str()`` gives one ``file:key: message`` per line."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def check(fn: Callable[[Any], str | None]) -> dict[str, Any]:
    """Field metadata helper: ``port: int = field(default=3868, metadata=check(port_range))``."""
    return {"check": fn}


def in_range(lo: float, hi: float) -> Callable[[Any], str | None]:
    """A check that a number lies in [lo, hi]."""

    def _check(value: Any) -> str | None:
        if not lo <= value <= hi:
            return f"must be between {lo} and {hi}, got {value}"
        return None

    return _check


def non_empty(value: Any) -> str | None:
    """A check that a string or collection is not empty."""
    return "must not be empty" if len(value) == 0 else None


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; a syntax error becomes a ConfigError ``file:line: invalid TOML``."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError([ConfigProblem(str(p), "-", "file not found")]) from exc
    except tomllib.TOMLDecodeError as exc:
        line = _TOML_LINE.search(str(exc))  # "... (at line 17, column 15)"
        raise ConfigError([ConfigProblem(str(p), line.group(1) if line else "-",
                                         f"invalid TOML: {exc}")]) from exc


def build(cls: type[T], data: Any, *, file: str, prefix: str = "") -> T:
    """Build dataclass *cls* from *data*; raise ConfigError listing every problem found."""
    problems: list[ConfigProblem] = []
    result = _build_dataclass(cls, data, file, prefix, problems)
    if problems:
        raise ConfigError(problems)
    return typing.cast(T, result)


def _key(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _build_dataclass(
    cls: type, data: Any, file: str, prefix: str, problems: list[ConfigProblem]
) -> Any:
    if not isinstance(data, dict):
        problems.append(ConfigProblem(file, prefix or "-", f"expected a table, got {_tname(data)}"))
        return None
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for unknown in sorted(set(data) - set(fields)):
        problems.append(ConfigProblem(file, _key(prefix, unknown), "unknown key"))
    kwargs: dict[str, Any] = {}
    before = len(problems)
    for name, f in fields.items():
        key = _key(prefix, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.append(ConfigProblem(file, key, "required key is missing"))
            continue
        n = len(problems)
        value = _convert(hints[name], data[name], file, key, problems)
        if len(problems) == n:
            fn = f.metadata.get("check")
            msg = fn(value) if fn else None
            if msg:
                problems.append(ConfigProblem(file, key, msg))
            else:
                kwargs[name] = value
    if len(problems) != before:
        return None
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        problems.append(ConfigProblem(file, prefix or "-", str(exc)))
        return None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        for key, msg in validate():
            problems.append(ConfigProblem(file, _key(prefix, key), msg))
    return obj


def _tname(value: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean",
            int: "an integer", float: "a float"}.get(type(value), type(value).__name__)


def _convert(tp: Any, value: Any, file: str, key: str, problems: list[ConfigProblem]) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        if len(args) == 1:
            return _convert(args[0], value, file, key, problems)
        for arg in args:
            trial: list[ConfigProblem] = []
            out = _convert(arg, value, file, key, trial)
            if not trial:
                return out
        problems.append(ConfigProblem(file, key, f"unexpected value {value!r}"))
        return None
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            problems.append(
                ConfigProblem(file, key, f"must be one of {', '.join(map(repr, allowed))}, got {value!r}")
            )
        return value
    if origin in (tuple, list):
        if not isinstance(value, list):
            problems.append(ConfigProblem(file, key, f"expected an array, got {_tname(value)}"))
            return None
        (item_tp, *_) = get_args(tp) or (Any,)
        items = [_convert(item_tp, v, file, f"{key}[{i}]", problems) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(ConfigProblem(file, key, f"expected a table, got {_tname(value)}"))
            return None
        _, val_tp = get_args(tp)
        return {k: _convert(val_tp, v, file, f"{key}.{k}", problems) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build_dataclass(typing.cast(type, tp), value, file, key, problems)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            problems.append(ConfigProblem(file, key, f"expected a boolean, got {_tname(value)}"))
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(ConfigProblem(file, key, f"expected an integer, got {_tname(value)}"))
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(ConfigProblem(file, key, f"expected a number, got {_tname(value)}"))
            return None
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            problems.append(ConfigProblem(file, key, f"expected a string, got {_tname(value)}"))
        return value
    if tp is Decimal:
        # Money is written as a string ("0.12") so TOML never turns it into a float.
        if not isinstance(value, str | int) or isinstance(value, bool):
            problems.append(
                ConfigProblem(file, key, f"expected a decimal string like \"0.12\", got {_tname(value)}")
            )
            return None
        try:
            return Decimal(str(value))
        except InvalidOperation:
            problems.append(ConfigProblem(file, key, f"not a decimal number: {value!r}"))
            return None
    return value
