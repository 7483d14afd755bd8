"""get-envoy-server-info's answer: Envoy's /server_info with node.extensions summarised (and the same summary
for the bootstrap's node in get-envoy-config-dump, where that list is 95% of a default answer).

/server_info is ~124 KB, 98% of it node.extensions: 500+ entries with type URLs that never change while Envoy
runs. By default they come as names by category (every extension still named, a fifth of the size). Parsing
and summarising that list is most of a call's own cost (0.35 ms of ~0.45), so the summary is kept and reused
while Envoy sends the very same bytes for it: the rest of the document (state, uptime, options) is parsed on
every call, the list only when its bytes differ (a byte comparison, not a hash). Anything unexpected in the
document's layout falls back to parsing it whole, so the answer never depends on the shortcut.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from higress_ops import jsonfast

MODES = ("names", "counts", "full")
_KEY = b'"extensions": ['
_PLACEHOLDER = "<higress-ops:node.extensions>"
_PLACEHOLDER_JSON = b'"' + _PLACEHOLDER.encode() + b'"'


@dataclass(frozen=True)
class Summary:
    total: int
    names: dict[str, list[str]]
    disabled: list[str]

    def note(self, mode: str) -> str:
        shown = "names by category" if mode == "names" else "counts by category"
        return (f"[node.extensions: {self.total} extensions in {len(self.names)} categories, shown as {shown}; "
                "extensions=full gives Envoy's complete entries with type URLs.]")


def summarise(extensions: list[Any]) -> Summary:
    by_category: dict[str, list[str]] = {}
    disabled: list[str] = []
    for ext in extensions:
        if isinstance(ext, dict):
            name = str(ext.get("name", ""))
            by_category.setdefault(str(ext.get("category") or "uncategorised"), []).append(name)
            if ext.get("disabled"):
                disabled.append(name)
    names = {category: sorted(by_category[category]) for category in sorted(by_category)}
    return Summary(len(extensions), names, sorted(disabled))


def apply(info: Any, summary: Summary, mode: str) -> tuple[Any, str]:
    node = info["node"]
    node["extensions"] = summary.names if mode == "names" else {c: len(v) for c, v in summary.names.items()}
    if summary.disabled:
        node["disabled_extensions"] = summary.disabled
    return info, summary.note(mode)


def reshape(info: Any, args: Mapping[str, Any]) -> tuple[Any, str]:
    """The parsed document with node.extensions summarised (unless extensions=full); and the note saying so."""
    mode = args.get("extensions", "names")
    node = info.get("node") if isinstance(info, dict) else None
    extensions = node.get("extensions") if isinstance(node, dict) else None
    if mode == "full" or not isinstance(extensions, list):
        return info, ""
    return apply(info, summarise(extensions), mode)


class _Cache:
    """The last extension list seen from one target, as Envoy's bytes and as its summary. One entry per target
    (a gateway pod, or envoyAdminURL): pods of different builds do not evict each other's summary."""

    def __init__(self) -> None:
        self.raw = b""
        self.indent = b""
        self.summary: Summary | None = None


MAX_TARGETS = 64  # a fleet larger than this only re-parses more often
_caches: dict[str, _Cache] = {}


def _cache_of(target: str) -> _Cache:
    cache = _caches.get(target)
    if cache is None:
        if len(_caches) >= MAX_TARGETS:
            _caches.pop(next(iter(_caches)))
        cache = _caches[target] = _Cache()
    return cache


def parse(body: bytes, args: Mapping[str, Any]) -> tuple[Any, str]:
    """The body parsed and reshaped; raises ValueError when it is not JSON (as jsonfast.loads)."""
    mode = args.get("extensions", "names")
    if mode != "full":
        fast = _parse_reusing_extensions(body, mode, _cache_of(str(args.get("pod", ""))))
        if fast is not None:
            return fast
    return reshape(jsonfast.loads(body), args)


def _parse_reusing_extensions(body: bytes, mode: str, cache: _Cache) -> tuple[Any, str] | None:
    located = _locate(body)
    if located is None:
        return None
    opening, indent = located
    summary = cache.summary
    if summary is not None and indent == cache.indent and body.startswith(cache.raw, opening):
        closing = opening + len(cache.raw)  # the same bytes as last time: no copy, no second scan
    else:
        end = body.find(b"\n" + indent + b"]", opening)
        if end < 0:
            return None
        closing = end + len(indent) + 2
        raw = body[opening:closing]
        try:
            extensions = jsonfast.loads(raw)
        except ValueError:
            return None
        if not isinstance(extensions, list):
            return None
        summary = summarise(extensions)
        cache.raw, cache.indent, cache.summary = raw, indent, summary
    try:
        info = jsonfast.loads(body[:opening] + _PLACEHOLDER_JSON + body[closing:])
    except ValueError:
        return None
    node = info.get("node") if isinstance(info, dict) else None
    if not isinstance(node, dict) or node.get("extensions") != _PLACEHOLDER:
        return None  # the bytes found were not node.extensions: parse the whole document instead
    return apply(info, summary, mode)


def _locate(body: bytes) -> tuple[int, bytes] | None:
    """Where the extensions array opens, and its key's indentation, in Envoy's pretty-printed layout.

    JSON strings cannot hold raw newlines, so the array ends at the first newline followed by the key's own
    indentation and a closing bracket; a key that does not start its line is not that layout (parsed whole)."""
    start = body.find(_KEY)
    if start < 0:
        return None
    indent = body[body.rfind(b"\n", 0, start) + 1:start]
    if indent.strip(b" "):
        return None
    return start + len(_KEY) - 1, indent


def parse_config_dump(body: bytes, args: Mapping[str, Any]) -> tuple[Any, str]:
    """A /config_dump body with the bootstrap's node.extensions summarised, unless extensions=full."""
    dump = jsonfast.loads(body)
    mode = args.get("extensions", "names")
    configs = dump.get("configs") if isinstance(dump, dict) else None
    if mode == "full" or not isinstance(configs, list):
        return dump, ""
    for section in configs:
        bootstrap = section.get("bootstrap") if isinstance(section, dict) else None
        node = bootstrap.get("node") if isinstance(bootstrap, dict) else None
        if isinstance(node, dict) and isinstance(node.get("extensions"), list):
            _, note = apply({"node": node}, summarise(node["extensions"]), mode)
            return dump, note.replace("node.extensions", "bootstrap node.extensions", 1)
    return dump, ""
