"""`istioctl proxy-config routes`: NAME, VHOST NAME, DOMAINS, MATCH, VIRTUAL SERVICE (its default, verbose)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard, overload

from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views.table import Table

HEADERS = ("NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE")
RouteAt = tuple[str, cd.Json, int, cd.Json]  # (route config name, virtual host, index in it, route)


def all_routes(dump: cd.Json) -> Iterator[RouteAt]:
    """Every route of every route configuration (RDS and inline ones: Envoy dumps both), in order."""
    for rc in cd.route_configs(dump):
        for vh in rc.get("virtual_hosts") or []:
            if isinstance(vh, Mapping):
                for i, route in enumerate(vh.get("routes") or []):
                    if isinstance(route, Mapping):
                        yield str(rc.get("name", "")), vh, i, route


@dataclass(frozen=True)
class RouteFilter:
    name: str = ""

    def verify(self, rc: cd.Json) -> bool:
        return not self.name or self.name == rc.get("name", "")


def _numeric_less(a: cd.Json, b: cd.Json) -> bool:
    try:
        return int(str(a.get("name", ""))) < int(str(b.get("name", "")))
    except ValueError:
        return False


def matching(dump: cd.Json, flt: RouteFilter) -> list[cd.Json]:
    """Route configs in istioctl's order: numeric names ascending, others left where they are.

    istioctl sorts with a "both names are numbers" comparator; this is Go's insertion sort with that
    comparator, which is what sort.Slice runs for up to 12 elements.
    """
    items = cd.route_configs(dump)
    for i in range(1, len(items)):
        j = i
        while j > 0 and _numeric_less(items[j], items[j - 1]):
            items[j], items[j - 1] = items[j - 1], items[j]
            j -= 1
    return [rc for rc in items if flt.verify(rc)]


def describe_match(match: Any) -> str:
    """A route's path condition as istioctl shows it (headers are ignored there too)."""
    if not isinstance(match, Mapping):
        return ""
    conds = []
    if match.get("prefix"):
        conds.append(f"{match['prefix']}*")
    if match.get("path_separated_prefix"):
        conds.append(f"PathPrefix:{match['path_separated_prefix']}")
    if match.get("path"):
        conds.append(str(match["path"]))
    regex = match.get("safe_regex")
    if isinstance(regex, Mapping):
        conds.append(f"regex {regex.get('regex', '')}")
    return " ".join(conds)


def _unexpand(domains: Sequence[str]) -> list[str]:
    unique = set(domains)
    drop = set()
    for h in domains:
        for suffix in (".svc.cluster.local", ".svc"):
            stripped = h.removesuffix(suffix)
            if stripped != h and stripped in unique:
                drop.add(h)
    return [h for h in domains if h not in drop]


def describe_domains(domains: Any) -> str:
    """istioctl's DOMAINS cell: the domains without ports, short forms only, at most two then '+ N more...'."""
    if not isinstance(domains, list) or not domains:
        return ""
    if len(domains) == 1:
        return str(domains[0])
    kept = []
    for d in map(str, domains):
        if ":" not in d or (d.count(":") > 2 and d.endswith("]")):
            kept.append(d)
    kept = _unexpand(kept)
    if len(kept) > 2:
        return f"{', '.join(kept[:2])} + {len(kept) - 2} more..."
    return ", ".join(kept)


def is_passthrough(route: cd.Json) -> bool:
    action = route.get("route")
    return _is_map(action) and action.get("cluster") == "PassthroughCluster"


def _is_map(value: Any) -> TypeGuard[Mapping[str, Any]]:
    """isinstance(value, Mapping), a dict (what JSON gives) first: the ABC's check costs 0.1 us, twice per route."""
    return type(value) is dict or isinstance(value, Mapping)


class RouteRows(Sequence[dict[str, Any]]):
    """The table's rows in istioctl's order, each made when it is read: a page of a 6,000-route table makes its
    50 rows, while one pass over the routes (a skip test each) gives the order and the count."""

    def __init__(self, dump: cd.Json, flt: RouteFilter = RouteFilter()) -> None:
        self._at: list[tuple[str, cd.Json, cd.Json | None]] = []  # (route config, virtual host, route or None)
        self._bases: dict[int, dict[str, str]] = {}
        for rc in matching(dump, flt):
            name = str(rc.get("name", ""))
            for vh in rc.get("virtual_hosts") or []:
                if not isinstance(vh, Mapping):
                    continue
                routes = [r for r in vh.get("routes") or [] if _is_map(r)]
                self._at += [(name, vh, r) for r in routes if not is_passthrough(r)]
                if not routes:
                    self._at.append((name, vh, None))

    def __len__(self) -> int:
        return len(self._at)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self._row(*at) for at in self._at[index]]
        return self._row(*self._at[index])

    def _row(self, name: str, vh: cd.Json, route: cd.Json | None) -> dict[str, Any]:
        base = self._bases.get(id(vh))  # a virtual host's cells, made once for all its routes
        if base is None:
            base = self._bases[id(vh)] = {"NAME": name, "VHOST NAME": str(vh.get("name", "")),
                                          "DOMAINS": describe_domains(vh.get("domains"))}
        if route is None:  # a virtual host without routes: istioctl's 404 row
            return {**base, "MATCH": "/*", "VIRTUAL SERVICE": "404"}
        return {**base, "MATCH": describe_match(route.get("match")),
                "VIRTUAL SERVICE": cd.describe_management(route.get("metadata"))}


def table(dump: cd.Json, flt: RouteFilter = RouteFilter()) -> Table:
    return Table(HEADERS, RouteRows(dump, flt)[:])


def route_targets(route: cd.Json) -> tuple[str, list[tuple[str, int]]]:
    """(action kind, [(cluster, weight)]) of a route: `route` with its clusters, `redirect`, `direct_response`,
    or a request-time choice (`cluster from request header x`) with none."""
    action = route.get("route")
    if isinstance(action, Mapping):
        if "cluster" in action:
            return "route", [(str(action["cluster"]), 100)]
        weighted = action.get("weighted_clusters")
        if isinstance(weighted, Mapping):
            return "route", [(str(c.get("name", "")), int(c.get("weight", 0) or 0))
                             for c in weighted.get("clusters") or [] if isinstance(c, Mapping)]
        if "cluster_header" in action:
            return f"cluster from request header {action['cluster_header']}", []
        return "route", []
    return ("redirect" if isinstance(route.get("redirect"), Mapping)
            else "direct_response" if isinstance(route.get("direct_response"), Mapping) else "unknown"), []


DEFAULT_ROUTE_TIMEOUT = "15s"  # RouteAction.timeout's default (envoy/config/route/v3/route_components.proto)


def timeout_of(route: cd.Json) -> str:
    """The upstream timeout Envoy applies to a routed request: the route's own, `15s (default)`, or `none`
    (0s disables it). Redirects and direct responses have no upstream and no timeout: ''."""
    action = route.get("route")
    if not isinstance(action, Mapping):
        return ""
    if "timeout" not in action:
        return f"{DEFAULT_ROUTE_TIMEOUT} (default)"
    value = str(action["timeout"])
    return "none (0s disables it)" if value in ("0s", "0") else value


def describe_conditions(match: Any) -> str:
    """A route's header, query parameter, gRPC and runtime conditions, as find-route prints them."""
    m = match if isinstance(match, Mapping) else {}
    out = [describe_header(h) for h in m.get("headers") or [] if isinstance(h, Mapping)]
    out += [describe_query(q) for q in m.get("query_parameters") or [] if isinstance(q, Mapping)]
    if isinstance(m.get("grpc"), Mapping):
        out.append("grpc (content-type application/grpc)")
    runtime = m.get("runtime_fraction")
    if isinstance(runtime, Mapping):
        pct = cd.mapping(runtime.get("default_value"))
        out.append(f"runtime_fraction {runtime.get('runtime_key', '')} {pct.get('numerator', 0)}/"
                   f"{str(pct.get('denominator', 'HUNDRED')).lower()}")
    return ", ".join(out)


def _string_match(m: Any) -> str:
    sm = m if isinstance(m, Mapping) else {}
    for key in ("exact", "prefix", "suffix", "contains"):
        if key in sm:
            return f"{key} {sm[key]}" + (" (ignore case)" if sm.get("ignore_case") else "")
    if isinstance(sm.get("safe_regex"), Mapping):
        return f"regex {sm['safe_regex'].get('regex', '')}"
    return "present"


def describe_header(h: cd.Json) -> str:
    name = str(h.get("name", ""))
    if "present_match" in h:
        cond = "present" if h["present_match"] else "absent"
    elif isinstance(h.get("string_match"), Mapping):
        cond = _string_match(h["string_match"])
    elif isinstance(h.get("range_match"), Mapping):
        cond = f"in [{h['range_match'].get('start', 0)}, {h['range_match'].get('end', 0)})"
    else:
        legacy = next((k for k in ("exact_match", "prefix_match", "suffix_match", "contains_match") if k in h), "")
        regex = h.get("safe_regex_match")
        cond = (f"{legacy.removesuffix('_match')} {h[legacy]}" if legacy else
                f"regex {regex.get('regex', '')}" if isinstance(regex, Mapping) else "present")
    return f"header {name} " + ("not " if h.get("invert_match") else "") + cond


def describe_query(q: cd.Json) -> str:
    cond = "present" if q.get("present_match") or not isinstance(q.get("string_match"), Mapping) else \
        _string_match(q["string_match"])
    return f"query {q.get('name', '')} {cond}"
