"""Keeping answers small: offset/limit over rows, and a byte budget that cuts at line ends and says so."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from higress_ops.servers.ops.budget import fit_json_text

T = TypeVar("T")

DEFAULT_LIMIT = 100


def page(items: Sequence[T], offset: int = 0, limit: int = DEFAULT_LIMIT) -> tuple[list[T], str]:
    """The slice and a footer telling how to get the next one (empty when everything fit)."""
    offset = max(offset, 0)
    limit = max(limit, 1)
    chunk = list(items[offset:offset + limit])
    total = len(items)
    if offset == 0 and len(chunk) == total:
        return chunk, ""
    end = offset + len(chunk)
    more = f"; next page: offset={end}" if end < total else ""
    return chunk, f"[rows {offset + 1 if chunk else offset}-{end} of {total}{more}]"


def fit(text: str, max_bytes: int, hint: str = "narrow it with a filter or a smaller limit") -> str:
    """`text` within max_bytes (UTF-8), cut at a line end with a note saying how much was left out."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    note_room = 200
    cut = data[: max(max_bytes - note_room, 0)].decode("utf-8", "ignore")
    if "\n" in cut:
        cut = cut[: cut.rindex("\n") + 1]
    shown = len(cut.encode())
    return cut + f"[cut at {shown} of {len(data)} bytes (maxResponseBytes {max_bytes}); {hint}]\n"


def fit_page(render: Callable[[list[T], str], str], items: Sequence[T], offset: int, limit: int,
             max_bytes: int, hint: str) -> tuple[str, list[T]]:
    """A page of rows rendered within max_bytes, and the rows shown. When the page does not fit, fewer whole rows
    (never a row cut in half), and the footer gives the offset and limit of the next page."""
    rows, footer = page(items, offset, limit)
    text = render(rows, footer)
    if len(text.encode()) <= max_bytes or len(rows) <= 1:
        return fit(text, max_bytes, hint), rows

    def shorter(n: int) -> str:
        end = offset + n
        return render(rows[:n], f"[rows {offset + 1}-{end} of {len(items)}, fewer to stay within maxResponseBytes "
                                f"{max_bytes}; next page: offset={end} limit={n}]")

    lo, hi = 1, len(rows) - 1  # the most rows that fit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if len(shorter(mid).encode()) <= max_bytes else (lo, mid - 1)
    return fit(shorter(lo), max_bytes, hint), rows[:lo]


def structured_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k.lower().replace(" ", "_"): v for k, v in r.items()} for r in rows]


def json_content(value: Any, max_bytes: int, hint: str, footer: str = "") -> list[dict[str, str]]:
    """JSON cut to the budget at item boundaries, so it stays valid JSON (jq works on it); the paging footer
    and the note about any cut travel in content items of their own."""
    _, text, cuts = fit_json_text(value, max(max_bytes - 400, 256))
    content = [{"type": "text", "text": text}]
    if footer:
        content.append({"type": "text", "text": footer})
    if cuts:  # each pointer names the items it goes through (`/3 (outbound|80||cart...)/cluster/...`)
        content.append({"type": "text", "text": f"[cut to the {max_bytes:,}-byte budget (maxResponseBytes): "
                                                f"{cuts.describe(value)}; {hint}]"})
    return content
