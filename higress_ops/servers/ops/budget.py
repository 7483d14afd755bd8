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


@dataclass(frozen=True)
class Cut:
    pointer: str  # JSON pointer of the list, object or string that was shortened
    kept: int
    total: int
    unit: str

    def line(self, value: Any = None) -> str:
        return f"{named_pointer(value, self.pointer) if value is not None else self.pointer or '/'}: kept " \
               f"{self.kept:,} of {self.total:,} {self.unit}"


@dataclass
class Cuts:
    """What was left out, for the note."""

    cuts: list[Cut] = field(default_factory=list)

    def add(self, pointer: str, kept: int, total: int, unit: str) -> None:
        self.cuts.append(Cut(pointer, kept, total, unit))

    def __bool__(self) -> bool:
        return bool(self.cuts)

    def describe(self, value: Any = None, limit: int = 8) -> str:
        """The cuts, each pointer naming the items it goes through when `value` (the uncut answer) is given:
        `/cluster_statuses/3 (outbound|80||cart)/host_statuses: kept 40 of 900 items`."""
        shown = "; ".join(c.line(value) for c in self.cuts[:limit])
        more = len(self.cuts) - limit
        return shown + (f"; and {more} more cuts" if more > 0 else "")


def item_name(item: Any) -> str:
    """The name an item of a list goes by: its own `name`/`hostname`, metadata.name (Kubernetes objects), or the
    name of the one resource it wraps (a config dump entry's `cluster`, `active_state.listener`, ...)."""
    if not isinstance(item, dict):
        return ""
    for key in ("name", "hostname"):
        if isinstance(item.get(key), str):
            return str(item[key])
    if isinstance(item.get("metadata"), dict) and isinstance(item["metadata"].get("name"), str):
        return str(item["metadata"]["name"])
    inner = [v for v in item.values() if isinstance(v, dict)]
    return item_name(inner[0]) if len(inner) == 1 else ""


def _steps(pointer: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]] if pointer else []


def named_pointer(value: Any, pointer: str) -> str:
    """`pointer` with the name of each named list item it goes through: /configs/1/dynamic_active_clusters/0
    (outbound|80||cart)/cluster/load_assignment."""
    out, at = "", value
    for step in _steps(pointer):
        out += "/" + step.replace("~", "~0").replace("/", "~1")
        if isinstance(at, list) and step.isdigit() and int(step) < len(at):
            at = at[int(step)]
            name = item_name(at)
            out += f" ({name})" if name else ""
        elif isinstance(at, dict):
            at = at.get(step)
        else:
            at = None
    return out or "/"


def first_item_cut(value: Any, cuts: Cuts) -> dict[str, str] | None:
    """For the first cut inside a named item of a list: the item's name, the list's member name and the dotted
    path from the item to the cut part, so a note can say how to ask for that part alone."""
    for cut in cuts.cuts:
        at, steps = value, _steps(cut.pointer)
        for i, step in enumerate(steps):
            if isinstance(at, list) and step.isdigit() and int(step) < len(at):
                name = item_name(at[int(step)])
                if name and i + 1 < len(steps):
                    rest = steps[i + 1:]
                    inner = rest[:next((j for j, s in enumerate(rest) if s.isdigit()), len(rest))]
                    return {"name": name, "list": steps[i - 1] if i else "", "inner": ".".join(inner)}
                at = at[int(step)]
            elif isinstance(at, dict):
                at = at.get(step)
            else:
                break
    return None


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
