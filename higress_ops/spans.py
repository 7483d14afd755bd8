"""Wall-clock time per step of an MCP request, so the benchmark can show where a call's time goes and each step's
share stays visible as the code changes (bench P1's span table; docs/benchmarks.md).

Off unless `serve --spans`; off, a mark is one global read and a return. On, each request keeps a list of
(step, time) marks in a context variable (a tool call's task inherits it), and the time from one mark to the
next is charged to the later mark's step. The admin port serves the totals at /spans (GET: the table; the
totals start again after each GET), never the MCP port.
"""

from __future__ import annotations

import statistics
from contextvars import ContextVar
from itertools import pairwise
from time import perf_counter
from typing import Any

MAX_SAMPLES = 20_000  # per step: enough for a stable median, bounded however long serve runs
_enabled = False
_marks: ContextVar[list[tuple[str, float]] | None] = ContextVar("higress_ops_spans", default=None)
_samples: dict[str, list[float]] = {}
# The steps of a streamable HTTP tools/call, in the order it meets them: the table reads like the code path
# (a step not listed here, from another path, follows them).
STEPS = ("gate", "read", "parse", "session", "validate", "call-setup", "target", "prepare", "upstream",
         "upstream-metrics", "shape", "tool", "result", "save", "respond", "send", "log+metrics")


def enable(on: bool = True) -> None:
    global _enabled
    _enabled = on


def enabled() -> bool:
    return _enabled


def begin() -> None:
    """A request starts: its marks start here."""
    if _enabled:
        _marks.set([("", perf_counter())])


def mark(step: str) -> None:
    """The time since the previous mark was spent in `step`."""
    if _enabled:
        marks = _marks.get()
        if marks is not None:
            marks.append((step, perf_counter()))


def end() -> None:
    """The request is answered: add its steps to the totals (a step met twice in a request counts once, summed)."""
    if not _enabled:
        return
    marks = _marks.get()
    _marks.set(None)
    if not marks or len(marks) < 2:
        return
    spent: dict[str, float] = {}
    for (_, before), (step, at) in pairwise(marks):
        spent[step] = spent.get(step, 0.0) + (at - before)
    spent["total"] = marks[-1][1] - marks[0][1]
    for step, seconds in spent.items():
        samples = _samples.setdefault(step, [])
        if len(samples) < MAX_SAMPLES:
            samples.append(seconds)


def table(reset: bool = True) -> dict[str, Any]:
    """{"steps": [{"step", "n", "median_us", "mean_us"}...]} in code-path order, "total" last."""
    rows = []
    rank = {step: index for index, step in enumerate(STEPS)}
    for step in sorted(_samples, key=lambda s: (s == "total", rank.get(s, len(STEPS)))):
        samples = _samples[step]
        rows.append({"step": step, "n": len(samples), "median_us": round(statistics.median(samples) * 1e6, 1),
                     "mean_us": round(statistics.fmean(samples) * 1e6, 1)})
    if reset:
        _samples.clear()
    return {"enabled": _enabled, "steps": rows}
