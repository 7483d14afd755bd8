"""Envoy's request matching rules, for explaining where a request goes.

Virtual hosts: exact domain, then suffix wildcards (longest first), then prefix wildcards (longest first),
then "*". Routes: first match in order, on path (prefix, path, safe_regex, path_separated_prefix), headers
and query parameters. safe_regex is a full match with RE2 semantics (google-re2, as Envoy uses): linear time, so
a pattern from a config dump can never make a find-route call backtrack for minutes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import re2

from higress_ops.servers.ops.views import configdump as cd


@dataclass
class Request:
    host: str
    path: str = "/"
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    scheme: str = "http"

    def header(self, name: str) -> str | None:
        name = name.lower()
        pseudo = {":authority": self.host, "host": self.host, ":path": self.path, ":method": self.method,
                  ":scheme": self.scheme}
        if name in pseudo:
            return pseudo[name]
        return self.headers.get(name)

    @property
    def path_only(self) -> str:
        return self.path.split("?", 1)[0].split("#", 1)[0]

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.path.split("?", 1)[1], keep_blank_values=True)) if "?" in self.path else {}


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    try:
        return re2.compile(pattern)
    except re2.error:
        return None  # Envoy refuses such a config; here it simply matches nothing


def _full_match(pattern: str, value: str) -> bool:
    compiled = _compiled(pattern)
    return compiled is not None and compiled.fullmatch(value) is not None


def domain_kind(domain: str) -> tuple[int, int]:
    """(precedence, -length): exact 0, suffix wildcard 1, prefix wildcard 2, '*' 3; longer wins in a class."""
    if domain == "*":
        return 3, 0
    if domain.startswith("*"):
        return 1, -len(domain)
    if domain.endswith("*"):
        return 2, -len(domain)
    return 0, 0


def _domain_matches(domain: str, host: str) -> bool:
    d = domain.lower()
    if d == "*":
        return True
    if d.startswith("*"):
        return host.endswith(d[1:]) and len(host) > len(d) - 1
    if d.endswith("*"):
        return host.startswith(d[:-1]) and len(host) > len(d) - 1
    return host == d


def host_port(host: str) -> tuple[str, int | None]:
    """('name', port) of a Host header; an IPv6 literal keeps its brackets."""
    m = re.fullmatch(r"(.*?):(\d{1,5})", host)
    if m is None or (m.group(1).startswith("[") and not m.group(1).endswith("]")):
        return host, None
    return m.group(1), int(m.group(2))


def effective_host(hcm: Mapping[str, Any], route_config: cd.Json, host: str, listener_port: int) -> str:
    """The host Envoy matches domains against: the connection manager strips any port
    (`strip_any_host_port`) or the listener's own (`strip_matching_host_port`); the route configuration's
    `ignore_port_in_host_matching` ignores any port."""
    name, port = host_port(host)
    if port is None:
        return host
    if hcm.get("strip_any_host_port") or route_config.get("ignore_port_in_host_matching"):
        return name
    if hcm.get("strip_matching_host_port") and port == listener_port:
        return name
    return host


def select_virtual_host(route_config: cd.Json, host: str) -> tuple[cd.Json | None, str]:
    """The virtual host Envoy picks for `host` (already through `effective_host`), and the domain that won."""
    host = host.lower()
    best: tuple[tuple[int, int], int, cd.Json, str] | None = None
    for order, vh in enumerate(route_config.get("virtual_hosts") or []):
        if not isinstance(vh, Mapping):
            continue
        for domain in vh.get("domains") or []:
            domain = str(domain)
            if _domain_matches(domain, host):
                key = domain_kind(domain)
                if best is None or (key, order) < (best[0], best[1]):
                    best = (key, order, vh, domain)
    return (best[2], best[3]) if best else (None, "")


def string_match(matcher: Mapping[str, Any], value: str) -> bool:
    ignore = bool(matcher.get("ignore_case"))
    v = value.lower() if ignore else value

    def norm(s: Any) -> str:
        return str(s).lower() if ignore else str(s)

    if "exact" in matcher:
        return v == norm(matcher["exact"])
    if "prefix" in matcher:
        return v.startswith(norm(matcher["prefix"]))
    if "suffix" in matcher:
        return v.endswith(norm(matcher["suffix"]))
    if "contains" in matcher:
        return norm(matcher["contains"]) in v
    if isinstance(matcher.get("safe_regex"), Mapping):
        return _full_match(str(matcher["safe_regex"].get("regex", "")), value)
    return False


def header_matches(hm: Mapping[str, Any], req: Request) -> bool:
    value = req.header(str(hm.get("name", "")))
    if value is None and hm.get("treat_missing_header_as_empty"):
        value = ""
    if "present_match" in hm:
        result = (value is not None) == bool(hm["present_match"])
    elif value is None:
        return False  # Envoy: an absent header fails a value match even when inverted
    elif isinstance(hm.get("string_match"), Mapping):
        result = string_match(hm["string_match"], value)
    elif "exact_match" in hm:
        result = value == hm["exact_match"]
    elif "prefix_match" in hm:
        result = value.startswith(str(hm["prefix_match"]))
    elif "suffix_match" in hm:
        result = value.endswith(str(hm["suffix_match"]))
    elif "contains_match" in hm:
        result = str(hm["contains_match"]) in value
    elif isinstance(hm.get("safe_regex_match"), Mapping):
        result = _full_match(str(hm["safe_regex_match"].get("regex", "")), value)
    elif isinstance(hm.get("range_match"), Mapping):
        try:
            n = int(value)
            result = int(hm["range_match"].get("start", 0)) <= n < int(hm["range_match"].get("end", 0))
        except ValueError:
            result = False
    else:
        result = True  # only a name: present (the absent case was handled above)
    return result != bool(hm.get("invert_match"))


def path_matches(match: Mapping[str, Any], req: Request) -> bool:
    sensitive = match.get("case_sensitive", True) is not False
    path = req.path if sensitive else req.path.lower()
    only = req.path_only if sensitive else req.path_only.lower()

    def norm(s: Any) -> str:
        return str(s) if sensitive else str(s).lower()

    if "prefix" in match:
        return path.startswith(norm(match["prefix"]))
    if "path" in match:
        return only == norm(match["path"])
    if isinstance(match.get("safe_regex"), Mapping):
        return _full_match(str(match["safe_regex"].get("regex", "")), req.path_only)
    if "path_separated_prefix" in match:
        p = norm(match["path_separated_prefix"])
        return only == p or only.startswith(p + "/")
    return False


def why_not(route: cd.Json, req: Request) -> str:
    """'' when the route matches the request, else the first condition that failed."""
    raw = route.get("match")
    match: cd.Json = raw if isinstance(raw, Mapping) else {}
    if not path_matches(match, req):
        return "path"
    for hm in match.get("headers") or []:
        if isinstance(hm, Mapping) and not header_matches(hm, req):
            return f"header {hm.get('name', '')}"
    query = req.query
    for qm in match.get("query_parameters") or []:
        if not isinstance(qm, Mapping):
            continue
        value = query.get(str(qm.get("name", "")))
        if qm.get("present_match"):
            ok = value is not None
        elif isinstance(qm.get("string_match"), Mapping):
            ok = value is not None and string_match(qm["string_match"], value)
        else:
            ok = value is not None
        if not ok:
            return f"query parameter {qm.get('name', '')}"
    if isinstance(match.get("grpc"), Mapping) and not (req.header("content-type") or "").startswith(
            "application/grpc"):
        return "grpc content-type"
    return ""


def select_route(vh: cd.Json, req: Request) -> tuple[int, cd.Json | None, list[str]]:
    """(index, route) of the first matching route, and why each earlier one did not match."""
    skipped: list[str] = []
    for i, route in enumerate(vh.get("routes") or []):
        if not isinstance(route, Mapping):
            continue
        reason = why_not(route, req)
        if not reason:
            return i, route, skipped
        skipped.append(reason)
    return -1, None, skipped
