"""Keeping a result within `maxResponseBytes`, cutting where a model can still read what is left.

JSON is cut at item boundaries (whole list entries, whole object members, long strings shortened),
deepest-largest first, and every cut is recorded with its JSON pointer so the note can say what is
missing. Text is cut at line boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from higress_ops import jsonfast

_ELLIPSIS = "…"
_FAIR_SHARE_ITEMS = 16  # lists this short are parts of a whole (dump sections), not rows


def dumps(value: Any) -> str:
    return jsonfast.dumps(value).decode()


def size(value: Any) -> int:
    return len(jsonfast.dumps(value))


@dataclass
class Cuts:
    """What was left out, for the note."""

    items: list[str] = field(default_factory=list)

    def add(self, pointer: str, kept: int, total: int, unit: str) -> None:
        self.items.append(f"{pointer or '/'}: kept {kept:,} of {total:,} {unit}")

    def __bool__(self) -> bool:
        return bool(self.items)

    def describe(self, limit: int = 8) -> str:
        shown = "; ".join(self.items[:limit])
        more = len(self.items) - limit
        return shown + (f"; and {more} more cuts" if more > 0 else "")


def fit_json(value: Any, budget: int) -> tuple[Any, Cuts]:
    cuts = Cuts()
    return _fit(value, max(budget, 64), "", cuts), cuts


def fit_json_text(value: Any, budget: int) -> tuple[Any, str, Cuts]:
    """(value cut to the budget, its JSON text, the cuts); serialises once when it already fits."""
    encoded = jsonfast.dumps(value)
    if len(encoded) <= budget:
        return value, encoded.decode(), Cuts()
    fitted, cuts = fit_json(value, budget)
    return fitted, dumps(fitted), cuts


def _fit(value: Any, budget: int, pointer: str, cuts: Cuts) -> Any:
    if isinstance(value, str):
        encoded = value.encode()
        if len(encoded) + 2 <= budget:
            return value
        keep = max(0, budget - 8)
        cuts.add(pointer, keep, len(encoded), "bytes of text")
        return encoded[:keep].decode(errors="ignore") + _ELLIPSIS
    if isinstance(value, list):
        return _fit_list(value, budget, pointer, cuts)
    if isinstance(value, dict):
        return _fit_dict(value, budget, pointer, cuts)
    return value


def _fit_list(items: list[Any], budget: int, pointer: str, cuts: Cuts) -> list[Any]:
    sizes = [size(item) + 1 for item in items]
    if sum(sizes) + 2 <= budget:
        return items
    if len(items) <= _FAIR_SHARE_ITEMS:
        return _share(items, sizes, budget, pointer, cuts)
    kept: list[Any] = []
    used = 2
    for index, (item, item_size) in enumerate(zip(items, sizes, strict=True)):
        if used + item_size <= budget:
            kept.append(item)
            used += item_size
            continue
        if not kept and budget - used > 64:  # one huge first item: shrink it rather than show nothing
            kept.append(_fit(item, budget - used - 1, f"{pointer}/{index}", cuts))
        break
    cuts.add(pointer, len(kept), len(items), "items")
    return kept


def _share(items: list[Any], sizes: list[int], budget: int, pointer: str, cuts: Cuts) -> list[Any]:
    """A short list of big parts (a config dump's sections): every part gets a fair share, small ones whole."""
    result = list(items)
    remaining = budget - 2
    order = sorted(range(len(items)), key=lambda i: sizes[i])
    for rank, index in enumerate(order):
        share = remaining // (len(items) - rank)
        if sizes[index] <= share:
            remaining -= sizes[index]
            continue
        result[index] = _fit(items[index], max(share - 1, 64), f"{pointer}/{index}", cuts)
        remaining -= size(result[index]) + 1
    return result


def _fit_dict(obj: dict[str, Any], budget: int, pointer: str, cuts: Cuts) -> dict[str, Any]:
    sizes = {key: size(key) + size(value) + 2 for key, value in obj.items()}
    total = sum(sizes.values()) + 2
    if total <= budget:
        return obj
    # Shrink the largest members first, each down to what the others leave it.
    result = dict(obj)
    for key in sorted(obj, key=lambda k: sizes[k], reverse=True):
        if total <= budget:
            break
        others = total - sizes[key]
        room = budget - others - size(key) - 2
        child = f"{pointer}/{_escape(key)}"
        if room < 32:
            del result[key]
            cuts.add(child, 0, 1, "member (dropped)")
            total = others
            continue
        result[key] = _fit(obj[key], room, child, cuts)
        sizes[key] = size(key) + size(result[key]) + 2
        total = others + sizes[key]
    return result


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def fit_text(text: str, budget: int) -> tuple[str, int, int]:
    """(text cut at a line boundary, lines kept, lines in all)."""
    encoded = text.encode()
    if len(encoded) <= budget:
        return text, -1, -1
    lines = text.splitlines(keepends=True)
    kept: list[str] = []
    used = 0
    for line in lines:
        line_size = len(line.encode())
        if used + line_size > budget:
            break
        kept.append(line)
        used += line_size
    if not kept:  # a single enormous line
        return encoded[:budget].decode(errors="ignore") + _ELLIPSIS, 0, len(lines)
    return "".join(kept), len(kept), len(lines)
