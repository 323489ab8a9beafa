"""A config file that cannot be used, told in a few lines an administrator can act on.

``ConfigError`` carries the message: the file, the line (or the environment variable,
or the key), what is wrong and an example of a right value, e.g.::

    config.toml, line 2: unknown section [databse]; did you mean [database]?
    config.toml, line 7: schedule.weekly_time: use HH:MM, e.g. 08:00
      for example: weekly_time = "08:00"

The values themselves are never repeated (a line may hold a token or a password, and
the message can end up in a service's journal). ``bot.config.load_config`` raises it;
every ``havainto`` command prints it and exits with status 2 (``bot.cli.common``).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
import types
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

ENV_PREFIX = "HAVAINTO_"
ENV_DELIMITER = "__"
# Errors shown at most; the rest are counted ("and 2 more problems").
SHOWN = 3

Loc = tuple[str | int, ...]


class ConfigError(Exception):
    """The configuration cannot be used; ``str(error)`` is the message to show."""


# --- reading the file ----------------------------------------------------------------------


def read_toml(path: Path) -> tuple[dict[str, Any], str]:
    """The file's tables and its text; a ``ConfigError`` when it cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; give the config file (e.g. config.toml)") from None
    except PermissionError:
        raise ConfigError(f"{path}: not readable by this user") from None
    except UnicodeDecodeError as error:
        line = text_line_of_offset(path.read_bytes(), error.start)
        raise ConfigError(f"{path}, line {line}: not UTF-8 text; save the file as UTF-8") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(explain_toml_error(path, text, error)) from None


def text_line_of_offset(data: bytes, offset: int) -> int:
    return data[:offset].count(b"\n") + 1


_AT = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)\s*$")

# What a right line looks like, by the parser's complaint.
_SYNTAX_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("table declaration", "[database]"),
    ("array of tables", "[[teams]]"),
    ("after a key", 'url = "sqlite:///havainto.db"'),
    ("twice", "each [section] once; [[teams]] for each team"),
    ("overwrite", "each key once in a section"),
    ("string", 'name = "Helsingin etsivät"'),
    ("inline table", "chats = { telegram = -1001234567890 }"),
    ("array", 'areas = [{ id = "kallio", name = "Kallio" }]'),
)
_VALUE_EXAMPLE = 'name = "Helsingin etsivät"  (text in quotes; numbers, true and false without)'


def explain_toml_error(path: Path, text: str, error: tomllib.TOMLDecodeError) -> str:
    message = str(error)
    found = _AT.search(message)
    what = _AT.sub("", message) if found else message
    if found and found.group(1):
        where = f"line {found.group(1)}, column {found.group(2)}"
    else:
        where = f"line {max(1, len(text.splitlines()))} (the end of the file)"
    lowered = what.lower()
    example = next((ex for key, ex in _SYNTAX_EXAMPLES if key in lowered), _VALUE_EXAMPLE)
    if "value" in lowered and "overwrite" not in lowered:
        example = _VALUE_EXAMPLE
    return f"{path}, {where}: not valid TOML: {what}\n  for example: {example}"


# --- where a key is written ----------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")
_NAME = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_KEY = re.compile(rf"^\s*({_NAME}(?:\s*\.\s*{_NAME})*)\s*=")


def _key_parts(dotted: str) -> list[str]:
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", dotted)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


def key_lines(text: str) -> dict[Loc, int]:
    """Where each table, array-of-tables element and key is written (1-based lines).

    A plain line scan, enough to point at a line: keys inside inline tables and
    multi-line arrays are not listed (their parent key's line is used instead).
    """
    lines: dict[Loc, int] = {}
    counts: dict[Loc, int] = {}  # arrays of tables: the index of their last element
    table: Loc = ()
    in_string: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if in_string is not None:
            if line.count(in_string) % 2 == 1:
                in_string = None
            continue
        header = _HEADER.match(line)
        if header:
            parts = _key_parts(header.group(2))
            resolved: list[str | int] = []
            for part in parts[:-1]:
                resolved.append(part)
                if tuple(resolved) in counts:
                    resolved.append(counts[tuple(resolved)])
            resolved.append(parts[-1])
            if header.group(1) == "[[":
                key = tuple(resolved)
                lines.setdefault(key, number)
                counts[key] = counts.get(key, -1) + 1
                resolved.append(counts[key])
            table = tuple(resolved)
            lines.setdefault(table, number)
            continue
        found = _KEY.match(line)
        if found:
            lines.setdefault((*table, *_key_parts(found.group(1))), number)
            rest = line[found.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    in_string = quote
    return lines


def _line_of(lines: Mapping[Loc, int], loc: Loc) -> tuple[int, Loc] | None:
    """The line of ``loc`` or of its nearest written parent, and that parent."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]], loc[:end]
    return None


# --- the model behind a key ----------------------------------------------------------------


def _strip_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _walk(model: type[BaseModel], loc: Loc) -> Iterator[tuple[Any, Any]]:
    """For each step of ``loc``: (the annotation there, its pydantic field or None)."""
    annotation: Any = model
    for part in loc:
        annotation = _strip_optional(annotation)
        origin = get_origin(annotation)
        field = None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            annotation = field.annotation if field is not None else None
        elif origin in (list, tuple, Sequence) and isinstance(part, int):
            annotation = get_args(annotation)[0] if get_args(annotation) else None
        elif origin in (dict, Mapping):
            annotation = get_args(annotation)[1] if get_args(annotation) else None
        else:
            annotation = None
        yield annotation, field


def _parent_model(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    steps = list(_walk(model, loc[:-1]))
    annotation = _strip_optional(steps[-1][0]) if steps else model
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def example_value(model: type[BaseModel], loc: Loc) -> Any:
    """A right value for the key at ``loc``: its documented example, else its default."""
    steps = list(_walk(model, loc))
    if not steps:
        return None
    annotation, field = steps[-1]
    if field is not None:
        if field.examples:
            return field.examples[0]
        default = field.get_default(call_default_factory=True)
        if default is not PydanticUndefined and default not in ("", None, [], {}):
            return default.model_dump() if isinstance(default, BaseModel) else default
    annotation = _strip_optional(annotation)
    if get_origin(annotation) is Literal:
        return get_args(annotation)[0]
    return None


# --- the message -----------------------------------------------------------------------------


def env_name(loc: Sequence[str | int]) -> str:
    return ENV_PREFIX + ENV_DELIMITER.join(str(p).upper() for p in loc)


def _env_source(loc: Loc, environ: Mapping[str, str]) -> str | None:
    """The environment variable the value at ``loc`` came from, if any."""
    upper = {k.upper(): k for k in environ}
    for end in range(len(loc), 0, -1):
        if any(isinstance(p, int) for p in loc[:end]):
            continue
        name = env_name(loc[:end])
        if name in upper:
            return upper[name]
    return None


def _dotted(loc: Loc, data: Any = None) -> str:
    """``teams[id=hki].language``: a list element by its id when it has one, else by its
    number counted from 1 (``areas[#2]``)."""
    text = ""
    node = data
    for part in loc:
        try:
            node = node[part] if node is not None else None
        except (KeyError, IndexError, TypeError):
            node = None
        if isinstance(part, int):
            ident = node.get("id") if isinstance(node, dict) else None
            text += f"[id={ident}]" if isinstance(ident, str) and ident else f"[#{part + 1}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _suggest(word: str, known: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word.lower(), list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def _known_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    parent = _parent_model(model, loc)
    return list(parent.model_fields) if parent is not None else []


def _problem(
    error: Mapping[str, Any],
    model: type[BaseModel],
    path: Path | None,
    lines: Mapping[Loc, int],
    data: Mapping[str, Any],
    environ: Mapping[str, str],
) -> tuple[int, str]:
    """The line (0 when none) and the text of one problem."""
    loc: Loc = tuple(error.get("loc", ()))
    kind = error.get("type", "")
    message = re.sub(r"^(Value|Assertion) error, ", "", str(error.get("msg", "")))
    env = _env_source(loc, environ) if loc else None
    placed = _line_of(lines, loc) if (path is not None and env is None and loc) else None
    line = placed[0] if placed is not None else 0
    return line, _text(kind, loc, message, model, path, placed, env, data)


def _text(
    kind: str,
    loc: Loc,
    message: str,
    model: type[BaseModel],
    path: Path | None,
    placed: tuple[int, Loc] | None,
    env: str | None,
    data: Mapping[str, Any],
) -> str:
    if env is not None:
        where = f"environment variable {env}"
    elif placed is not None:
        where = f"{path}, line {placed[0]}"
    elif path is not None:
        where = str(path)
    else:
        where = "configuration"
    key = loc[-1] if loc else ""

    if kind == "extra_forbidden" and isinstance(key, str):
        known = _known_keys(model, loc)
        nearest = _suggest(key, known)
        is_table = _is_table(data, loc)
        if env is not None:
            text = f"{where}: unknown key {_dotted(loc, data)}"
            if nearest:
                return f"{text}; did you mean {env_name((*loc[:-1], nearest))}?"
            return text
        if len(loc) == 1 and is_table:
            text = f"{where}: unknown section [{key}]"
            return f"{text}; did you mean [{nearest}]?" if nearest else text
        section = _dotted(loc[:-1], data)
        text = f"{where}: unknown key {key}" + (f" in {section}" if section else "")
        if nearest:
            return f"{text}; did you mean {nearest}?"
        if known:
            return f"{text}; known keys: {', '.join(known)}"
        return text

    subject = _dotted(loc, data)
    text = f"{where}: {subject + ': ' if subject else ''}{message}"
    if kind == "missing":
        text = f"{where}: {_dotted(loc[:-1], data) or 'the file'} needs {key}"
    example = example_value(model, loc) if loc else None
    if example is not None and isinstance(key, str):
        if env is not None:
            shown = example if isinstance(example, str) else _toml_value(example)
            text += f"\n  for example: {env}={shown}"
        else:
            text += f"\n  for example: {key} = {_toml_value(example)}"
    return text


def _is_table(data: Mapping[str, Any], loc: Loc) -> bool:
    node: Any = data
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    return isinstance(node, dict | list)


def explain_validation_error(
    error: ValidationError,
    model: type[BaseModel],
    path: Path | None = None,
    text: str = "",
    data: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The short message for a config that does not validate (at most ``SHOWN`` problems)."""
    lines = key_lines(text) if text else {}
    errors = list(error.errors())
    # A misspelt key explains the "missing" error of the key it was meant to be.
    meant = {
        (*e["loc"][:-1], nearest)
        for e in errors
        if e["type"] == "extra_forbidden"
        and e["loc"]
        and isinstance(e["loc"][-1], str)
        and (nearest := _suggest(e["loc"][-1], _known_keys(model, tuple(e["loc"]))))
    }
    errors = [e for e in errors if not (e["type"] == "missing" and tuple(e["loc"]) in meant)]
    found = [
        (
            e["type"] != "extra_forbidden",
            *_problem(
                e, model, path, lines, data or {}, os.environ if environ is None else environ
            ),
        )
        for e in errors
    ]
    problems = [text for _, _, text in sorted(found, key=lambda p: (p[0], p[1]))]
    shown = "\n".join(problems[:SHOWN])
    if len(problems) > SHOWN:
        more = len(problems) - SHOWN
        shown += f"\n({more} more problem{'s' if more > 1 else ''}: fix these and run again)"
    return shown
