"""The view tools the ops server lists: spec + async run(arguments, upstreams, ctx) -> ToolResult.

The server runs them in the view process (offload.py), so parsing a dump, which may be megabytes, and every
computation over it never take the GIL from its event loop; there, the computations run in a worker thread.
Results are text tables within the size budget, with rows as structured content.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import anyio

from higress_ops.servers.base import CallContext, ToolResult
from higress_ops.servers.ops import detectors
from higress_ops.servers.ops.detectors.facts import SECTION_FIELDS, Facts
from higress_ops.servers.ops.views import (
    analyze,
    certs,
    clusters,
    compare,
    describe_cluster,
    ecds,
    endpoints,
    listeners,
    proxy_status,
    routes,
    secrets,
    what_changed,
)
from higress_ops.servers.ops.views import find_route as fr
from higress_ops.servers.ops.views import gateway_health as gh
from higress_ops.servers.ops.views.matching import Request
from higress_ops.servers.ops.views.paging import DEFAULT_LIMIT, fit, fit_page, json_content, page, structured_rows
from higress_ops.servers.ops.views.source import Source, UpstreamError
from higress_ops.servers.ops.views.table import Table, with_config_type
from higress_ops.servers.ops.views.toolkit import PAGING as _PAGING
from higress_ops.servers.ops.views.toolkit import PORT as _PORT
from higress_ops.servers.ops.views.toolkit import S as _S
from higress_ops.servers.ops.views.toolkit import ViewTool
from higress_ops.servers.ops.views.toolkit import int_arg as _int
from higress_ops.servers.ops.views.toolkit import spec as _spec
from higress_ops.servers.ops.views.toolkit import str_arg as _str

RESOURCE_TYPES = ("clusters", "listeners", "routes", "endpoints", "secrets", "ecds", "all")
_PROXY_ID = re.compile(r"^[A-Za-z0-9._~:-]{1,253}$")
_TYPES = re.compile(r"^[A-Za-z0-9._/,-]{1,500}$")


def _paged_result(t: Table, args: Mapping[str, Any], src: Source, title: str = "", extra: str = "",
                  lazy_rows: Sequence[dict[str, Any]] | None = None) -> ToolResult:
    """A page of the table's rows, or of `lazy_rows` (each made when it is read) in their place."""
    def render(rows: list[dict[str, Any]], footer: str) -> str:
        return (title + "\n" if title else "") + t.render(rows) + (footer + "\n" if footer else "") + extra

    every = t.rows if lazy_rows is None else lazy_rows
    text, shown = fit_page(render, every, _int(args, "offset", 0), _int(args, "limit", DEFAULT_LIMIT, 1, 1000),
                           src.max_bytes, "use offset/limit or a filter")
    return ToolResult.text(text, structured={"rows": structured_rows(shown), "total": len(every)})


# ---------------------------------------------------------------- get-envoy-proxy-config

def _proxy_config_text(kind: str, args: Mapping[str, Any], dump: Any, clusters_json: Any) -> tuple[Table, list[Any]]:
    if kind == "clusters":
        f = clusters.ClusterFilter(_str(args, "fqdn"), _int(args, "port", 0, 0, 65535), _str(args, "subset"),
                                   _str(args, "direction", "", ("", "inbound", "outbound")))
        return clusters.table(dump, f), clusters.matching(dump, f)
    if kind == "listeners":
        lf = listeners.ListenerFilter(_str(args, "address"), _int(args, "port", 0, 0, 65535),
                                      _str(args, "listenerType", "", ("", "HTTP", "TCP", "HTTP+TCP", "UNKNOWN")))
        return listeners.table(dump, lf), listeners.matching(dump, lf)
    if kind == "routes":
        rf = routes.RouteFilter(_str(args, "name"))
        return routes.table(dump, rf), routes.matching(dump, rf)
    if kind == "endpoints":
        ef = endpoints.EndpointFilter(_str(args, "address"), _int(args, "port", 0, 0, 65535), _str(args, "cluster"),
                                      _str(args, "status"))
        return endpoints.table(clusters_json, ef), endpoints.matching(clusters_json, ef)
    return secrets.table(dump), secrets.matching(dump)


async def _proxy_config(args: Mapping[str, Any], src: Source, ctx: CallContext) -> ToolResult:
    kind = _str(args, "type", "all", RESOURCE_TYPES)
    output = _str(args, "output", "short", ("short", "json"))
    if kind == "ecds":
        return await _ecds(args, output, src, ctx)
    kinds = ["clusters", "listeners", "routes", "endpoints", "secrets"] if kind == "all" else [kind]
    # One section only: ask Envoy for just its fields (a FieldMask keeps the section's @type), so a 12 MB dump
    # of a big gateway shrinks to the part the table needs before it is parsed.
    mask = {"mask": SECTION_FIELDS[kind]} if kind in SECTION_FIELDS else None
    dump = await src.envoy_json("/config_dump", mask, ctx) if kinds != ["endpoints"] else None
    clusters_json = await src.envoy_json("/clusters", {"format": "json"}, ctx) if "endpoints" in kinds else None
    if dump is not None and kinds == ["routes"] and output == "short":
        # A page makes its rows alone, after one pass over the routes (1 ms for 6,000): no thread hop for that.
        every = routes.RouteRows(dump, routes.RouteFilter(_str(args, "name")))
        return _paged_result(Table(routes.HEADERS), args, src, lazy_rows=every)
    built = await anyio.to_thread.run_sync(
        lambda: {k: _proxy_config_text(k, args, dump, clusters_json) for k in kinds})
    if output == "json":
        raw = {k: v[1] for k, v in built.items()} if kind == "all" else built[kind][1]
        items, footer = page(raw if isinstance(raw, list) else list(raw.items()),
                             _int(args, "offset", 0), _int(args, "limit", DEFAULT_LIMIT, 1, 1000))
        return ToolResult(content=json_content(items if isinstance(raw, list) else dict(items), src.max_bytes,
                                               "use a filter, offset/limit, or output=short", footer))
    if len(kinds) == 1:
        return _paged_result(built[kind][0], args, src)
    text = _every_type(built, src.max_bytes)
    return ToolResult.text(text, structured={k: {"total": len(t.rows)} for k, (t, _) in built.items()})


def _every_type(built: Mapping[str, tuple[Table, Any]], max_bytes: int) -> str:
    """type=all: each table whole while they fit; the first that does not gets the rows that fit, and it and every
    table after it say what was left out and the request that shows it."""
    out, cut = "", False
    for i, (k, (t, _)) in enumerate(built.items()):
        table = with_config_type(k, t)
        room = max_bytes - len(out.encode()) - 100 * (len(built) - i - 1)  # the notes of the tables after it
        whole = f"--- {k} ---\n{table.render()}\n"
        if not cut and len(whole.encode()) <= room:
            out += whole
            continue
        shown = 0 if cut else next((n for n in range(len(t.rows) - 1, 0, -1)
                                    if len(table.render(t.rows[:n]).encode()) + 150 <= room), 0)
        out += (f"--- {k} ---\n{table.render(t.rows[:shown])}[{k}: rows 1-{shown} of {len(t.rows)} shown; the rest: "
                f"type={k} offset={shown}]\n" if shown else
                f"--- {k}: {len(t.rows)} rows left out to stay within maxResponseBytes; ask type={k} ---\n")
        cut = True
    return fit(out, max_bytes, "ask for one type with type=<type> and offset/limit")


async def _ecds(args: Mapping[str, Any], output: str, src: Source, ctx: CallContext) -> ToolResult:
    """istioctl's ECDS table, then the Wasm plugins with their VM, code source and load state."""
    dump, stats = await Facts(src, ctx).ecds()
    if output == "json":
        items, footer = page(ecds.entries(dump), _int(args, "offset", 0), _int(args, "limit", DEFAULT_LIMIT, 1, 1000))
        return ToolResult(content=json_content(items, src.max_bytes, "use offset/limit, or output=short", footer))
    wasm = Table(ecds.WASM_HEADERS, ecds.wasm_rows(dump, stats))
    extra = "\nWasm plugins:\n" + wasm.render() if wasm.rows else ""
    result = _paged_result(ecds.table(dump), args, src, extra=extra)
    return ToolResult(content=result.content, structured={**(result.structured or {}),
                                                          "wasm": structured_rows(wasm.rows)})


# ---------------------------------------------------------------- istiod views

async def _proxy_status(args: Mapping[str, Any], src: Source, ctx: CallContext) -> ToolResult:
    ns = _str(args, "namespace")
    answers = await src.istiod_json_each("/debug/syncz", {"namespace": ns} if ns else None, ctx)
    failed = [f"{name}: {answer}" for name, answer in answers if isinstance(answer, UpstreamError)]
    if len(failed) == len(answers):
        raise UpstreamError("; ".join(failed) or "no istiod to ask")
    t = await anyio.to_thread.run_sync(proxy_status.table_of,
                                       [(name, a) for name, a in answers if not isinstance(a, UpstreamError)])
    unreachable = ("\nNot answering (their proxies are missing above):\n" + "\n".join(failed) + "\n") if failed else ""
    return _paged_result(t, args, src, extra=proxy_status.render_errors(t.rows) + unreachable)


async def _istiod_config_dump(args: Mapping[str, Any], src: Source, ctx: CallContext) -> ToolResult:
    proxy_id = _str(args, "proxyID")
    if not _PROXY_ID.match(proxy_id):
        raise ValueError("'proxyID' is required: the proxy's id as get-istiod-proxy-status shows it "
                         "(letters, digits and . _ ~ : -)")
    types = _str(args, "types")
    if types and not _TYPES.match(types):
        raise ValueError("'types' must be a comma-separated list of xDS type names or URLs")
    params = {"proxyID": proxy_id, **({"types": types} if types else {})}
    istiod_dump = await src.istiod_json("/debug/config_dump", params, ctx)
    if args.get("compare"):
        envoy_dump = await src.envoy_json("/config_dump", None, ctx)
        result = await anyio.to_thread.run_sync(compare.compare, istiod_dump, envoy_dump)
        text = f"istiod ({proxy_id}) vs this Envoy:\n" + compare.render(result)
        return ToolResult.text(fit(text, src.max_bytes, "the structured content has every name; "
                                   "get-envoy-proxy-config with a filter shows one resource"), structured=result)
    content = await anyio.to_thread.run_sync(partial(
        json_content, istiod_dump, src.max_bytes, "pass types= to fetch fewer sections, or use compare=true"))
    return ToolResult(content=content)


# ---------------------------------------------------------------- find-route, check-certs

async def _find_route(args: Mapping[str, Any], src: Source, ctx: CallContext) -> ToolResult:
    host = _str(args, "host")
    if not host:
        raise ValueError("'host' is required (the Host/:authority of the request)")
    path = _str(args, "path", "/") or "/"
    if not path.startswith("/"):
        raise ValueError("'path' must start with '/'")
    headers = args.get("headers", {})
    if not isinstance(headers, Mapping) or not all(isinstance(v, str) for v in headers.values()):
        raise ValueError("'headers' must be an object of header name to string value")
    req = Request(host=host, path=path, method=_str(args, "method", "GET").upper() or "GET",
                  headers={str(k).lower(): v for k, v in headers.items()})
    port = _int(args, "port", 0, 0, 65535) or None
    sni = _str(args, "sni").lower() or None
    facts = Facts(src, ctx)
    dump = await facts.dump("listeners", "routes")
    names = await facts.compute(lambda: fr.routed_clusters(fr.match(dump, req, port, sni)))
    configs = await facts.cluster_configs(names)
    clusters_json = await facts.clusters_json()
    codes = None
    answer = await facts.compute(fr.find_route, dump, clusters_json, req, port, configs, None, sni)
    if any(m.get("reason") == "upstream_5xx" for m in answer["matches"]):  # which 5xx: the clusters' own stats
        codes = await facts.response_codes(names)
        answer = await facts.compute(fr.find_route, dump, clusters_json, req, port, configs, codes, sni)
    report = await detectors.run(facts, fr.focus(answer, req))
    fr.apply_findings(answer, report.findings, req)
    text = fr.render(answer)
    last = fr.verdict_line(answer)
    # The verdict line survives any cut: a client or a test reads it from the end.
    hint = ("get-envoy-proxy-config type=endpoints cluster=<cluster> pages a cluster's hosts, type=routes "
            "name=<route config> its routes" if port else "pass port= to look at one listener")
    body = fit(text.removesuffix(last + "\n"), max(src.max_bytes - len(last) - 1, 256), hint)
    return ToolResult.text(body.rstrip("\n") + "\n" + last + "\n", structured=answer)


async def _check_certs(args: Mapping[str, Any], src: Source, ctx: CallContext) -> ToolResult:
    days = _int(args, "days", 30, 0, 3650)
    t = Table(certs.HEADERS, await Facts(src, ctx, days=days).cert_rows())  # with the chains serving each
    warn = certs.warnings(t, days)
    extra = ("\nWarnings:\n" + "\n".join(warn) + "\n") if warn else f"\nNo certificate expires within {days} days.\n"
    result = _paged_result(t, args, src, extra=extra)
    return ToolResult(content=result.content, structured={**(result.structured or {}), "warnings": warn})


async def _gateway_health(args: Mapping[str, Any], src: Source, ctx: CallContext) -> ToolResult:
    offset, limit = _int(args, "offset", 0), _int(args, "limit", 10, 1, 100)
    days = _int(args, "days", 30, 0, 3650)
    facts = Facts(src, ctx, days=days)
    facts.want(gh.STATS_FILTER)  # the summary's counters travel in the detectors' one /stats request
    found = await detectors.run(facts)
    stats = await facts.counters()
    troubled = gh.troubled_clusters((await facts.cluster_healths()).values())
    # Panic thresholds of the clusters on the page shown (two small requests each), never of all of them.
    await facts.with_own_thresholds([h.name for h in troubled[offset:offset + min(limit, 25)]])
    text, structured = await anyio.to_thread.run_sync(lambda: gh.report(
        troubled, stats, gh.detector_sections(found, detectors.DETECTORS), offset=offset, limit=limit,
        budget=min(src.max_bytes, gh.BUDGET_BYTES)))
    return ToolResult.text(text, structured=structured)


# ---------------------------------------------------------------- the objects behind the config

async def _describe_cluster(args: Mapping[str, Any], src: Source, ctx: CallContext) -> ToolResult:
    name = describe_cluster.cluster_name(_str(args, "cluster"), _str(args, "service"), _int(args, "port", 0, 0, 65535),
                                         _str(args, "subset"))
    answer = await describe_cluster.describe(Facts(src, ctx), name)
    hint = (f"the structured content has the whole answer; get-envoy-proxy-config type=endpoints cluster={name} "
            "pages the hosts, find-route the routes")
    return ToolResult.text(fit(describe_cluster.render(answer), src.max_bytes, hint), structured=answer)


async def _what_changed(args: Mapping[str, Any], src: Source, ctx: CallContext) -> ToolResult:
    minutes = _int(args, "minutes", 60, 1, 10080)
    kinds = tuple(args.get("kinds") or what_changed.KINDS)
    if not all(k in what_changed.KINDS for k in kinds):
        raise ValueError(f"'kinds' must name some of {', '.join(what_changed.KINDS)}")
    namespace = _str(args, "namespace")
    if namespace and namespace not in src.kube_namespaces:
        raise ValueError(f"'namespace' must be one of kubernetes.namespaces ({', '.join(src.kube_namespaces)})")
    answer = await what_changed.changes(Facts(src, ctx), minutes, kinds, namespace)
    rows, footer = page(answer["rows"], _int(args, "offset", 0), _int(args, "limit", 50, 1, 1000))
    text = what_changed.table(answer, rows) + (footer + "\n" if footer else "")
    return ToolResult.text(fit(text, src.max_bytes, "use minutes=, kinds=, namespace= or offset/limit"),
                           structured={**answer, "rows": structured_rows(rows), "total": len(answer["rows"])})


TOOLS: tuple[ViewTool, ...] = (
    ViewTool(_spec(
        "get-envoy-proxy-config",
        "istioctl proxy-config for this gateway: the clusters, listeners, routes, endpoints or secrets table "
        "(same columns and values as istioctl), or the matching raw resources with output=json.",
        {"type": {"type": "string", "enum": list(RESOURCE_TYPES), "default": "all"},
         "output": {"type": "string", "enum": ["short", "json"], "default": "short"},
         "fqdn": {**_S, "description": "clusters: substring of the service FQDN"},
         "port": {**_PORT, "description": "clusters/listeners/endpoints: port"},
         "subset": {**_S, "description": "clusters: subset"},
         "direction": {"type": "string", "enum": ["", "inbound", "outbound"]},
         "address": {**_S, "description": "listeners/endpoints: IP address"},
         "listenerType": {"type": "string", "enum": ["", "HTTP", "TCP", "HTTP+TCP", "UNKNOWN"]},
         "name": {**_S, "description": "routes: route configuration name"},
         "cluster": {**_S, "description": "endpoints: cluster name"},
         "status": {**_S, "description": "endpoints: health status, e.g. HEALTHY or UNHEALTHY"},
         **_PAGING}), _proxy_config),
    ViewTool(_spec(
        "get-istiod-proxy-status",
        "istioctl proxy-status: per proxy, whether CDS/LDS/EDS/RDS/ECDS are SYNCED, STALE, NOT SENT or ERROR "
        "(NACKed, error shown). Proxies not fully synced come first.",
        {"namespace": {**_S, "description": "only proxies in this namespace"}, **_PAGING}), _proxy_status,
        reads_envoy=False),
    ViewTool(_spec(
        "get-istiod-config-dump",
        "istiod's view of one proxy's config (/debug/config_dump). compare=true checks it against this "
        "Envoy's live config: clusters, listeners and routes match or differ.",
        {"proxyID": {**_S, "description": "proxy id from get-istiod-proxy-status"},
         "types": {**_S, "description": "comma-separated xDS types to include"},
         "compare": {"type": "boolean", "default": False}}, ("proxyID",)), _istiod_config_dump),
    ViewTool(_spec(
        "find-route",
        "Which listener, route configuration, virtual host, route and cluster a request to this gateway gets, "
        "with the cluster's endpoints and health: explains 404s (no virtual host, no route) and 503s.",
        {"host": {**_S, "description": "Host header"}, "path": {**_S, "default": "/"},
         "method": {**_S, "default": "GET"},
         "headers": {"type": "object", "additionalProperties": {"type": "string"}},
         "port": {**_PORT, "description": "listener port (default: every HTTP listener)"},
         "sni": {**_S, "description": "TLS server name the client sends (default: the host, on TLS listeners)"}},
        ("host",)), _find_route),
    ViewTool(_spec(
        "get-gateway-health",
        "What is broken on this gateway right now, in one short answer (within 2,000 tokens): clusters with "
        "unhealthy hosts and why, top clusters and listeners by 5xx and response flag, rejected xDS updates and "
        "istiod NACKs, failed extension configs, expiring certificates with the listener that serves them, "
        "and Envoy's state, uptime and memory. Each line names the tool to call next; offset/limit page the lists.",
        {"days": {"type": "integer", "minimum": 0, "maximum": 3650, "default": 30,
                  "description": "certificates expiring within this many days"},
         "offset": _PAGING["offset"],
         "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10,
                   "description": "Lines per list."}}), _gateway_health),
    ViewTool(_spec(
        "check-certs",
        "Every certificate on this gateway (Envoy /certs and SDS secrets): subject, SANs, days until expiry, "
        "and warnings for expired ones and those expiring within `days`.",
        {"days": {"type": "integer", "minimum": 0, "maximum": 3650, "default": 30}, **_PAGING}), _check_certs),
    ViewTool(_spec(
        "describe-cluster",
        "Everything behind one Envoy cluster, like istioctl x describe: the Service (ports, protocols, target "
        "ports, selector) from the Kubernetes API or istiod's registry, its endpoints and matching pods, the "
        "DestinationRule that applies with its effective policy for this port and subset, the EnvoyFilters that "
        "patch the cluster, the routes and Ingresses that lead to it, recent Warning events.",
        {"cluster": {**_S, "description": "Envoy cluster name, e.g. outbound|80||cart.shop.svc.cluster.local"},
         "service": {**_S, "description": "instead of cluster: namespace/name or a host, with port"},
         "port": {**_PORT, "description": "with service: the service port"},
         "subset": {**_S, "description": "with service: a DestinationRule subset"}}), _describe_cluster),
    ViewTool(_spec(
        "what-changed",
        "The Ingresses, Services, EndpointSlices, Pods, WasmPlugins and McpBridges that changed in the last "
        "`minutes` (default 60), newest first, with the manager that changed them (kubectl-edit, helm, ...), and "
        "the Warning events of that window. Reads the Kubernetes API (kubernetes.namespaces).",
        {"minutes": {"type": "integer", "minimum": 1, "maximum": 10080, "default": 60},
         "kinds": {"type": "array", "items": {"type": "string", "enum": list(what_changed.KINDS)},
                   "uniqueItems": True, "description": "only these kinds"},
         "namespace": {**_S, "description": "only this namespace"},
         "offset": _PAGING["offset"],
         "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}}), _what_changed,
        reads_envoy=False),
    analyze.TOOL,
)
