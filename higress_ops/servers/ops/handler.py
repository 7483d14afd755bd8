"""The one handler behind every catalog entry: check arguments, GET the allowlisted path, shape the body
into a result within the size budget. The fetch runs on the event loop; shaping a small body is cheaper
than any hop, and a large one is shaped in a separate process so it never stalls the loop."""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import re
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from higress_ops import jsonfast, spans
from higress_ops.servers.base import CallContext, ToolResult
from higress_ops.servers.ops.budget import Cuts, first_item_cut, fit_json_text, fit_text
from higress_ops.servers.ops.catalog import CATALOG, SECTIONS, Entry
from higress_ops.servers.ops.selection import select, select_lines
from higress_ops.servers.ops.upstream import Fetched, UpstreamError, Upstreams

BY_NAME = {entry.name: entry for entry in CATALOG}
LARGE_BODY = 256 << 10  # above this, parse and cut in the shaper process (below: < 1 ms on the loop)
SHAPER_PROCESSES = 2


def query_of(entry: Entry, args: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Only the entry's declared keys, in catalog order; values are URL-encoded by the client."""
    return [pair for param in entry.params if param.name in args for pair in param.to_query(args[param.name], args)]


async def run(entry: Entry, args: Mapping[str, Any], upstreams: Upstreams, ctx: CallContext) -> ToolResult:
    for param in entry.params:
        if param.check is not None and param.name in args:
            problem = param.check(args[param.name])
            if problem:
                return ToolResult.error(f"{entry.name}: {param.name} {problem}; nothing was sent to the upstream")
    problem = entry.validate(args) if entry.validate is not None else None
    if problem:
        return ToolResult.error(f"{entry.name}: {problem}; nothing was sent to the upstream")
    try:
        fetched = await upstreams.fetch(entry.upstream, entry.path, query_of(entry, args), ctx,
                                        ok=entry.ok_statuses)
    except UpstreamError as exc:
        if entry.fallbacks and "HTTP 404" in str(exc):
            return await _fallback(entry, upstreams, ctx)
        return ToolResult.error(f"{entry.name}: {exc}")
    if len(fetched.body) > LARGE_BODY:
        # Parsing and cutting megabytes are single C calls that hold the GIL for tens of milliseconds, which
        # would stall every other session on this event loop: a separate process does it and returns the cut.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_shapers(), shape, entry.name, fetched, dict(args), upstreams.max_bytes)
    result = shape(entry.name, fetched, args, upstreams.max_bytes)
    spans.mark("shape")
    return result


def shape(name: str, fetched: Fetched, args: Mapping[str, Any], budget: int) -> ToolResult:
    """A body as a result within the budget; runs here or in the shaper process (hence names, not objects)."""
    entry = BY_NAME[name]
    kind = entry.kind
    if kind == "by-format":
        kind = "json" if args.get("format") == "json" else "text"
    if kind == "text":
        text, note = _text_of(entry, fetched), ""
        if entry.select is not None:
            text, note = select_lines(entry.select, text, args)
        return text_result(entry, text, budget, note, args)
    return shape_json(name, fetched.body, args, budget)


def shape_json(name: str, body: bytes, args: Mapping[str, Any], budget: int) -> ToolResult:
    entry = BY_NAME[name]
    try:
        value, note = entry.parse(body, args) if entry.parse is not None else (jsonfast.loads(body), "")
    except ValueError:
        text = body[:120].decode("utf-8", errors="replace").strip()
        return ToolResult.error(f"{entry.name}: {entry.upstream} returned invalid JSON for {entry.path}: {text!r}")
    if entry.select is not None:  # the filters the upstream does not take, on the parsed answer
        value, picked = select(entry.select, value, args)
        note = " ".join(n for n in (picked, note) if n)
    section = args.get("resource")
    if entry.name == "get-envoy-config-dump" and section in SECTIONS:
        extra = ("endpoints",) if args.get("include_eds") and section != "endpoints" else ()
        return select_section(entry, value, section, budget, extra, args)
    return json_result(entry, value, budget, note=note, args=args)


@functools.cache
def _shapers() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=SHAPER_PROCESSES, mp_context=multiprocessing.get_context("spawn"))


def _text_of(entry: Entry, fetched: Fetched) -> str:
    text = fetched.text()
    if fetched.status != 200:  # an accepted non-200, e.g. /ready's 503 with the state
        return f"HTTP {fetched.status}: {text.strip()}"
    return text


def select_section(entry: Entry, dump: Any, section: str, budget: int, extra: tuple[str, ...] = (),
                   args: Mapping[str, Any] | None = None) -> ToolResult:
    """One README section of the dump; `extra` sections travel with it (include_eds with resource=clusters
    keeps the endpoints Envoy added)."""
    configs = dump.get("configs", []) if isinstance(dump, dict) else []
    wanted = SECTIONS[section]
    kinds = tuple("." + SECTIONS[k] for k in (section, *extra))
    chosen = [c for c in configs if isinstance(c, dict) and str(c.get("@type", "")).endswith(kinds)]
    if not chosen:
        present = sorted({str(c.get("@type", "")).rsplit(".", 1)[-1] for c in configs if isinstance(c, dict)})
        return ToolResult.text(f"Envoy's config dump has no {section} section ({wanted}); it has: "
                               f"{', '.join(present) or 'nothing'}")
    return json_result(entry, {"configs": chosen}, budget, args=args)


def how_to_ask(entry: Entry, args: Mapping[str, Any] | None, part: dict[str, str] | None = None) -> str:
    """What the caller can send to get what a cut left out: the requests for the one item the cut went into
    (those that are not the request already made), then the entry's ways to ask for less; a tool with neither
    says that only a larger maxResponseBytes shows more."""
    asks, args = [], args or {}
    if part is not None:
        listed = part["list"]
        if listed == "configs" and args.get("resource"):  # a dump of one field has its items under configs
            listed = str(args["resource"])
        for way in entry.one:
            one = way.format(name=part["name"], name_re=re.escape(part["name"]), list=listed, inner=part["inner"])
            if not all(str(args.get(k)) == v for k, v in re.findall(r"(\w+)=(\S+)", one)):
                asks.append(one)
    asks.append(entry.narrow or "This tool has no narrower form: a larger maxResponseBytes (server config) shows "
                                "more.")
    return " ".join(asks)


def json_result(entry: Entry, value: Any, budget: int, *, prefix: str = "", note: str = "",
                args: Mapping[str, Any] | None = None) -> ToolResult:
    structured = entry.output_schema is not None
    if structured and not isinstance(value, dict):
        value = {"items": value}
    # With structured content the body travels twice (text + structuredContent): each gets half the budget.
    # Notes around the body count against it too.
    room = budget - len(prefix.encode()) - len(note.encode())
    fitted, text, cuts = fit_json_text(value, room // 2 if structured else room)
    content: list[dict[str, Any]] = []
    if prefix:
        content.append({"type": "text", "text": prefix})
    content.append({"type": "text", "text": text})
    if note:
        content.append({"type": "text", "text": note})
    if cuts:
        content.append({"type": "text", "text": f"[cut to the {budget:,}-byte budget (maxResponseBytes): "
                                                f"{cuts.describe(value)}. "
                                                f"{how_to_ask(entry, args, _cut_item(entry, value, cuts))}]"})
    return ToolResult(content=content, structured=fitted if structured else None)


def _cut_item(entry: Entry, value: Any, cuts: Cuts) -> dict[str, str] | None:
    """The item the first cut went into: a named list item, or, in a document of nested maps (endpointz), the
    first level's key."""
    if entry.select is not None and entry.select.items.startswith("{}") and cuts.cuts:
        key = cuts.cuts[0].pointer.split("/")[1:2]
        return {"name": key[0].replace("~1", "/").replace("~0", "~"), "list": "", "inner": ""} if key else None
    return first_item_cut(value, cuts)


def text_result(entry: Entry, text: str, budget: int, note: str = "",
                args: Mapping[str, Any] | None = None) -> ToolResult:
    """Text cut at a line end; with a note (a filter's count) after it. When the entry's lines are items (the
    `cluster::...` lines of /clusters), the cut names the item it went into and the items left out."""
    fitted, kept, total = fit_text(text, max(budget - len(note.encode()), 64))
    content = [{"type": "text", "text": text if kept < 0 else fitted}]
    if note:
        content.append({"type": "text", "text": note})
    if kept < 0:
        return ToolResult(content=content)
    what, part = f"kept {kept:,} of {total:,} lines", None
    if entry.select is not None and entry.select.lines:
        keys = [entry.select.key(line) for line in text.splitlines()]
        cut_in, left = keys[kept] if kept < len(keys) else "", dict.fromkeys(k for k in keys[kept:] if k)
        if cut_in:
            whole = cut_in not in keys[:kept]
            what += (f"; {len(left):,} {entry.select.what} left out from {cut_in}" if whole else
                     f"; {cut_in} is cut inside ({keys.count(cut_in) - keys[:kept].count(cut_in):,} of its lines "
                     f"left out), {len(left) - 1:,} more {entry.select.what} after it")
            part = {"name": cut_in, "list": "", "inner": ""}
    content.append({"type": "text", "text": f"[cut to the {budget:,}-byte budget (maxResponseBytes): {what}. "
                                            f"{how_to_ask(entry, args, part)}]"})
    return ToolResult(content=content)


async def _fallback(entry: Entry, upstreams: Upstreams, ctx: CallContext) -> ToolResult:
    """istiod has no /debug/vars: read its real debug state and say so."""
    state: dict[str, Any] = {}
    failed: list[str] = []
    for path in entry.fallbacks:
        try:
            state[path] = await upstreams.fetch_json(entry.upstream, path, (), ctx)
        except UpstreamError as exc:
            failed.append(f"{path}: {exc}")
    if not state:
        return ToolResult.error(f"{entry.name}: istiod serves no {entry.path} (404), and its debug state could "
                                f"not be read either: {'; '.join(failed)}")
    read = ", ".join(state)
    prefix = (f"istiod serves no {entry.path} (HTTP 404, as every istiod); this is its debug state from {read} "
              "instead." + (f" Not readable: {'; '.join(failed)}" if failed else ""))
    return json_result(entry, state, upstreams.max_bytes, prefix=prefix)
