"""find-route: which listener, route configuration, virtual host, route and cluster a request gets.

Answers "why does my request go there, or get a 404 or 503" from the live config dump and
/clusters?format=json, with Envoy's own matching rules (see matching.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views import endpoints as eps
from higress_ops.servers.ops.views import listeners as ls
from higress_ops.servers.ops.views.matching import Request, select_route, select_virtual_host
from higress_ops.servers.ops.views.routes import describe_match


def _http_entrypoints(dump: cd.Json, port: int | None) -> list[tuple[cd.Json, str, cd.Json | None]]:
    """(listener, chain match, route config) for each HTTP filter chain; RDS names resolved in the dump."""
    by_name = {str(rc.get("name", "")): rc for rc in cd.route_configs(dump)}
    out = []
    for lst in ls.matching(dump, ls.ListenerFilter(port=port or 0)):
        for chain in ls.filter_chains(lst):
            for flt in chain.get("filters") or []:
                if not isinstance(flt, Mapping) or flt.get("name") != ls.HCM:
                    continue
                cfg = flt.get("typed_config") or {}
                if isinstance(cfg.get("route_config"), Mapping):
                    rc: cd.Json | None = cfg["route_config"]
                else:
                    rc = by_name.get(str((cfg.get("rds") or {}).get("route_config_name", "")))
                    if rc is None:
                        rc = {"name": str((cfg.get("rds") or {}).get("route_config_name", "")), "_missing": True}
                out.append((lst, ls.describe_chain_match(chain.get("filter_chain_match")), rc))
    return out


def _targets(route: cd.Json) -> tuple[str, list[tuple[str, int]]]:
    """(action kind, [(cluster, weight)]) of a route."""
    if isinstance(route.get("route"), Mapping):
        action = route["route"]
        if "cluster" in action:
            return "route", [(str(action["cluster"]), 100)]
        weighted = action.get("weighted_clusters")
        if isinstance(weighted, Mapping):
            return "route", [(str(c.get("name", "")), int(c.get("weight", 0) or 0))
                             for c in weighted.get("clusters") or [] if isinstance(c, Mapping)]
        if "cluster_header" in action:
            return f"cluster from request header {action['cluster_header']}", []
        return "route", []
    if isinstance(route.get("redirect"), Mapping):
        return "redirect", []
    if isinstance(route.get("direct_response"), Mapping):
        return f"direct response {route['direct_response'].get('status', '')}", []
    return "unknown action", []


def _cluster_health(statuses: dict[str, cd.Json], name: str) -> dict[str, Any]:
    cs = statuses.get(name)
    if cs is None:
        return {"cluster": name, "found": False, "endpoints": [], "healthy": 0}
    hosts = [h for h in cs.get("host_statuses") or [] if isinstance(h, Mapping)]
    endpoints = []
    for h in hosts:
        addr, port = eps.host_address(h)
        endpoints.append({"address": f"{addr}:{port}" if port else addr, "status": eps.host_status(h),
                          "healthy": eps.is_healthy(h), "outlier": "FAILED" if eps.failed_outlier(h) else "OK"})
    return {"cluster": name, "found": True, "endpoints": endpoints, "healthy": sum(e["healthy"] for e in endpoints)}


def find_route(dump: cd.Json, clusters_json: Any, req: Request, port: int | None = None) -> dict[str, Any]:
    """The structured answer: one entry per HTTP entry point, each with a verdict."""
    statuses = {str(c.get("name", "")): c for c in eps.cluster_statuses(clusters_json)} if clusters_json else {}
    results = []
    for lst, chain_match, rc in _http_entrypoints(dump, port):
        res: dict[str, Any] = {"listener": str(lst.get("name", "")), "address": ",".join(ls.addresses(lst)),
                               "port": ls.port(lst), "filter_chain": chain_match,
                               "route_config": str((rc or {}).get("name", ""))}
        results.append(res)
        if rc is None or rc.get("_missing"):
            res.update(status=404, verdict=f"route configuration {res['route_config']!r} is not in the dump "
                                           "(RDS not received yet)")
            continue
        vh, domain = select_virtual_host(rc, req.host)
        if vh is None:
            domains = sorted({str(d) for v in rc.get("virtual_hosts") or [] for d in v.get("domains") or []})
            res.update(status=404, verdict=f"404: no virtual host matches host {req.host!r}",
                       known_domains=domains[:20], more_domains=max(len(domains) - 20, 0))
            continue
        res.update(virtual_host=str(vh.get("name", "")), matched_domain=domain)
        index, route, skipped = select_route(vh, req)
        if route is None:
            res.update(status=404, verdict=f"404: virtual host {vh.get('name', '')!r} has no route for "
                                           f"{req.method} {req.path}", routes_checked=len(skipped))
            continue
        kind, clusters = _targets(route)
        res.update(route={"index": index, "name": str(route.get("name", "")),
                          "match": describe_match(route.get("match")),
                          "virtual_service": cd.describe_management(route.get("metadata"))},
                   action=kind, skipped_routes=len(skipped))
        if kind != "route" or not clusters:
            res.update(status=None, verdict=f"answered by the route itself: {kind}")
            continue
        health = [_cluster_health(statuses, name) | {"weight": w} for name, w in clusters]
        res["clusters"] = health
        if statuses and all(not h["found"] for h in health):
            res.update(status=503, verdict=f"503: cluster {clusters[0][0]!r} does not exist on this proxy")
        elif statuses and all(h["healthy"] == 0 for h in health):
            res.update(status=503, verdict=f"503 likely: cluster {clusters[0][0]!r} has no healthy endpoint "
                                           "(Envoy's panic mode may still try unhealthy ones)")
        else:
            res.update(status=200, verdict=f"routed to {', '.join(n for n, _ in clusters)}")
    return {"request": {"host": req.host, "path": req.path, "method": req.method,
                        "headers": sorted(req.headers)}, "matches": results}


def render(answer: dict[str, Any]) -> str:
    """A few lines per entry point: what matched, and the verdict."""
    req = answer["request"]
    lines = [f"Request: {req['method']} {req['host']}{req['path']}"]
    if not answer["matches"]:
        lines.append("No HTTP listener on this proxy" + (" for that port" if req.get("port") else "") + ".")
    for m in answer["matches"]:
        lines.append(f"\nListener {m['listener'] or '(unnamed)'} {m['address']}:{m['port']} [{m['filter_chain']}]"
                     f" -> route config {m['route_config'] or '(inline)'}")
        if "virtual_host" in m:
            lines.append(f"  virtual host: {m['virtual_host']} (domain {m['matched_domain']!r})")
        if "route" in m:
            r = m["route"]
            vs = f", virtual service {r['virtual_service']}" if r["virtual_service"] else ""
            lines.append(f"  route #{r['index']} {r['name'] or ''} match {r['match'] or '(any)'}{vs}")
        for c in m.get("clusters", []):
            if not c["found"]:
                lines.append(f"  cluster {c['cluster']}: NOT FOUND")
                continue
            lines.append(f"  cluster {c['cluster']} (weight {c['weight']}): {c['healthy']}/{len(c['endpoints'])} "
                         "healthy endpoints")
            for e in c["endpoints"][:10]:
                lines.append(f"    {e['address']} {e['status']} outlier {e['outlier']}")
            if len(c["endpoints"]) > 10:
                lines.append(f"    ... {len(c['endpoints']) - 10} more")
        if m.get("known_domains"):
            more = f" (+{m['more_domains']} more)" if m.get("more_domains") else ""
            lines.append("  domains served: " + ", ".join(m["known_domains"]) + more)
        lines.append(f"  => {m['verdict']}")
    return "\n".join(lines) + "\n"
