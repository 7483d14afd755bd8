"""Tables printed like Go's text/tabwriter, so our output lines up with istioctl's byte for byte."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


def tabwrite(lines: Sequence[Sequence[str]], padding: int) -> str:
    """Render cells as tabwriter(minwidth=0, tabwidth=8, padding, ' ', flags=0) does.

    Every cell but a line's last is padded to its column's widest cell plus `padding`; the last cell
    is written as is. Columns are computed per block of consecutive lines that have that column.
    """
    widths: list[list[int]] = [[0] * max(len(line) - 1, 0) for line in lines]
    col = 0
    while True:
        start = None
        found = False
        for i, line in enumerate([*lines, []]):
            has = len(line) - 1 > col
            if has:
                found = True
                if start is None:
                    start = i
            elif start is not None:
                block = range(start, i)
                width = max(len(lines[j][col]) for j in block) + padding
                for j in block:
                    widths[j][col] = width
                start = None
        if not found:
            break
        col += 1
    out = []
    for line, w in zip(lines, widths, strict=True):
        cells = [cell.ljust(w[k]) if k < len(w) else cell for k, cell in enumerate(line)]
        out.append("".join(cells))
    return "\n".join(out) + ("\n" if out else "")


@dataclass
class Table:
    """Rows under istioctl's headers; `rows` are dicts keyed by header for JSON-minded callers."""

    headers: tuple[str, ...]
    rows: list[dict[str, Any]] = field(default_factory=list)
    padding: int = 5
    note: str = ""  # printed before the table, as istioctl prints its own notes

    def cells(self, row: dict[str, Any]) -> list[str]:
        return [_fmt(row.get(h, "")) for h in self.headers]

    def render(self, rows: Sequence[dict[str, Any]] | None = None) -> str:
        if not self.headers:  # a table that is only its note, as istioctl prints an empty secret list
            return self.note + "\n" if self.note else ""
        body = [list(self.headers)] + [self.cells(r) for r in (self.rows if rows is None else rows)]
        return (self.note + "\n" if self.note else "") + tabwrite(body, self.padding)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


# `istioctl proxy-config all` names each row's resource in a NAME column: <type>/<name>.
_NAME_FROM = {"clusters": ("cluster/", "NAME", ""), "listeners": ("listener/", "NAME", ""),
              "routes": ("route/", "NAME", "NAME"), "secrets": ("secret/", "RESOURCE NAME", "RESOURCE NAME"),
              "endpoints": ("endpoint/", "ENDPOINT", "ENDPOINT")}


def with_config_type(kind: str, t: Table) -> Table:
    """The table as `proxy-config all` prints it: NAME first, holding `<type>/<resource name>`, in place of
    the column that named the resource (routes, secrets, endpoints) or ahead of the others."""
    if kind not in _NAME_FROM or not t.headers:
        return t
    prefix, source, replaced = _NAME_FROM[kind]
    headers = ("NAME", *(h for h in t.headers if h != replaced))
    rows = [{**r, "NAME": prefix + str(r.get(source, ""))} for r in t.rows]
    return Table(headers, rows, t.padding, t.note)
