"""Filters applied here, on the parsed answer, for upstreams that serve their whole document and take no filter
(istiod's configz, registryz and endpointz; Envoy's /clusters): a catalog entry declares where the answer's items
are and which field each filter argument looks at, and `select` is the one step that applies any of them.

Where the items are: `items` names the member that holds the list (`cluster_statuses`), '' when the document is
the list, or `{}` once per level of nested maps (endpointz is hostname -> namespace -> shards: `{}{}`); a text
answer's items are its lines, keyed by group 1 of the RE2 `lines` (the cluster before `::` on each line of
/clusters, the metric name on each line of Prometheus text).
A field is a dotted path into an item, `[]` for each element of a list, `{N}` for the item's key at map level N
(`{0}` is also a text line's key).
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import re2

Match = Literal["exact", "nocase", "host", "re2"]
SHOWN = 5  # values named when a filter keeps nothing


@dataclass(frozen=True)
class By:
    """One filter argument and the fields of an item it is compared with (any of them may match)."""

    arg: str
    fields: tuple[str, ...]
    match: Match = "exact"


@dataclass(frozen=True)
class Select:
    what: str  # the items' name, for the note: "configs", "services", "clusters"
    by: tuple[By, ...]
    items: str = ""  # see the module docstring
    lines: str = ""  # text answers: an RE2 whose group 1 is a line's item key (lines without one are dropped)

    def args(self) -> tuple[str, ...]:
        return tuple(b.arg for b in self.by)

    def key(self, line: str) -> str:
        """A text line's item key: group 1 of the `lines` pattern ('' when the line has none)."""
        found = _re2(self.lines).search(line) if self.lines else None
        return str(found.group(1)) if found else ""


@functools.lru_cache(maxsize=256)
def _re2(pattern: str) -> Any:
    return re2.compile(pattern)


def re2_problem(value: Any) -> str | None:
    """Why `value` is no RE2 pattern (Envoy's regex engine), or None."""
    try:
        _re2(str(value))
    except re2.error as exc:
        return f"is not a valid regular expression (RE2, as Envoy: {exc})"
    return None


def host_matches(configured: str, asked: str) -> bool:
    """Whether a host as a config writes it (`*.example.com`, `ns/host` in a Gateway, `*`) covers the host asked
    for, or the reverse when the caller asks with a wildcard: both name the same requests."""
    a, b = configured.lower().rpartition("/")[2], asked.lower()
    if a == b or a == "*" or b == "*":
        return True
    return (a.startswith("*.") and b.endswith(a[1:])) or (b.startswith("*.") and a.endswith(b[1:]))


def _matches(how: Match, value: str, asked: str) -> bool:
    if how == "re2":
        return _re2(asked).fullmatch(value) is not None
    if how == "host":
        return host_matches(value, asked)
    if how == "nocase":
        return value.lower() == asked.lower()
    return value == asked


def _values(item: Any, path: str, keys: tuple[str, ...]) -> Iterator[str]:
    """The strings at `path` in `item` (dotted, `[]` for every element, `{N}` for the item's key at level N)."""
    if path.startswith("{") and path.endswith("}"):
        yield from keys[int(path[1:-1]):][:1]
        return
    found = [item]
    for step in path.split("."):
        each = step.endswith("[]")
        step = step.removesuffix("[]")
        found = [v.get(step) for v in found if isinstance(v, Mapping)]
        if each:
            found = [e for v in found if isinstance(v, list) for e in v]
    yield from (str(v) for v in found if isinstance(v, str | int) and not isinstance(v, bool))


def _keeps(sel: Select, args: Mapping[str, Any], item: Any, keys: tuple[str, ...] = ()) -> bool:
    return all(any(_matches(b.match, v, str(args[b.arg])) for f in b.fields for v in _values(item, f, keys))
               for b in sel.by if b.arg in args)


def _near(sel: Select, args: Mapping[str, Any], items: list[tuple[tuple[str, ...], Any]]) -> str:
    """What the items have for the argument that kept nothing (the first one that alone keeps nothing)."""
    for b in sel.by:
        if b.arg not in args or any(_keeps(sel, {b.arg: args[b.arg]}, item, keys) for keys, item in items):
            continue
        have = sorted({v for keys, item in items for f in b.fields for v in _values(item, f, keys)})
        if len(have) > SHOWN * 2:
            close = difflib.get_close_matches(str(args[b.arg]), have, n=SHOWN, cutoff=0.5)
            return f"; {b.arg} values like it: {', '.join(close)}" if close else f"; {len(have)} {b.arg} values"
        return f"; {b.arg} values there: {', '.join(have) or '(none)'}"
    return ""


def _note(sel: Select, args: Mapping[str, Any], kept: int, total: int,
          items: list[tuple[tuple[str, ...], Any]]) -> str:
    asked = ", ".join(f"{a}={args[a]}" for a in sel.args() if a in args)
    near = _near(sel, args, items) if not kept else ""
    return f"[{kept:,} of {total:,} {sel.what} match {asked}{near}]"


def _levels(sel: Select) -> int:
    return sel.items.count("{}")


def _flatten(value: Any, depth: int, keys: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if depth == 0:
        yield keys, value
        return
    for key, inner in value.items() if isinstance(value, Mapping) else ():
        yield from _flatten(inner, depth - 1, (*keys, str(key)))


def _nest(pairs: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for keys, item in pairs:
        at = out
        for key in keys[:-1]:
            at = at.setdefault(key, {})
        at[keys[-1]] = item
    return out


def _unshaped(sel: Select, args: Mapping[str, Any]) -> str:
    asked = ", ".join(f"{a}={args[a]}" for a in sel.args() if a in args)
    return f"[not filtered by {asked}: the answer does not hold its {sel.what} where this tool expects them]"


def select(sel: Select, value: Any, args: Mapping[str, Any]) -> tuple[Any, str]:
    """(the answer with only the items every given argument matches, a note saying how many); the answer as it
    came when no filter argument was given, or with a note saying the filter could not apply when the answer
    is not of the declared shape."""
    if not any(a in args for a in sel.args()):
        return value, ""
    if _levels(sel):
        if not isinstance(value, Mapping):
            return value, _unshaped(sel, args)
        pairs = list(_flatten(value, _levels(sel)))
        kept = [(keys, item) for keys, item in pairs if _keeps(sel, args, item, keys)]
        return _nest(kept), _note(sel, args, len(kept), len(pairs), pairs)
    holder = value.get(sel.items) if sel.items and isinstance(value, Mapping) else value
    if not isinstance(holder, list):
        return value, _unshaped(sel, args)
    chosen = [item for item in holder if _keeps(sel, args, item)]
    note = _note(sel, args, len(chosen), len(holder), [((), item) for item in holder])
    return ({**value, sel.items: chosen} if sel.items else chosen), note


def select_lines(sel: Select, text: str, args: Mapping[str, Any]) -> tuple[str, str]:
    """The text answer's lines whose item key matches, and a note."""
    if not sel.lines or not any(a in args for a in sel.args()):
        return text, ""
    keyed = [(sel.key(line), line) for line in text.splitlines(keepends=True)]
    names = list(dict.fromkeys(key for key, _ in keyed if key))
    wanted = {name for name in names if _keeps(sel, args, {}, (name,))}
    kept = "".join(line for key, line in keyed if key in wanted)
    return kept, _note(sel, args, len(wanted), len(names), [((name,), {}) for name in names])
