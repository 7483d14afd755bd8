"""find-route: which listener, route configuration, virtual host, route and cluster a request gets, and the
status Envoy will most likely answer with.

Two steps, so the caller can fetch only what the second needs: `match` follows Envoy's listener and route
matching over the config dump (matching.py; the HTTP connection manager's port stripping included) and
settles what the route itself answers (redirects, direct responses, 404s); `judge` settles routed requests
from /clusters?format=json and the routed clusters' configs with host_health.py (panic mode, per-host flags,
connect-failure and timeout counters). Every answer ends with one `verdict: <status> <reason>` line.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from higress_ops.servers.ops.detectors.base import Finding, Focus, route_ref
from higress_ops.servers.ops.objects.links import cluster_link, route_link
from higress_ops.servers.ops.views import cluster_settings as cs
from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views import endpoints as eps
from higress_ops.servers.ops.views import host_health as hh
from higress_ops.servers.ops.views import listeners as ls
from higress_ops.servers.ops.views.matching import Request, effective_host, host_port, select_route, select_virtual_host
from higress_ops.servers.ops.views.redirects import redirect_target
from higress_ops.servers.ops.views.routes import describe_conditions, describe_match, route_targets, timeout_of

_REDIRECT_CODES = {"MOVED_PERMANENTLY": 301, "FOUND": 302, "SEE_OTHER": 303, "TEMPORARY_REDIRECT": 307,
                   "PERMANENT_REDIRECT": 308}


def _sni_matches(names: list[Any], host: str) -> bool:
    return any(n == host or (n.startswith("*.") and host.endswith(n[1:])) for n in (str(x).lower() for x in names))


def is_tls_listener(listener: cd.Json) -> bool:
    """Every filter chain takes TLS only (a transport socket, server names or transport_protocol tls)."""
    chains = ls.filter_chains(listener)
    return bool(chains) and all(c.get("transport_socket") or cd.mapping(c.get("filter_chain_match")).get(
        "server_names") or cd.mapping(c.get("filter_chain_match")).get("transport_protocol") == "tls" for c in chains)


def _sni_rank(chain: cd.Json, sni: str) -> int | None:
    """Envoy's server-name precedence: an exact name, then the longest `*.suffix`, then a chain without names;
    None when the chain cannot take this name."""
    names = [str(n).lower() for n in cd.mapping(chain.get("filter_chain_match")).get("server_names") or []]
    if not names:
        return 1 << 16
    if sni in names:
        return 0
    wild = [len(n) for n in names if n.startswith("*.") and sni.endswith(n[1:])]
    return (1 << 15) - max(wild) if wild else None


def _pick_chain(listener: cd.Json, host: str, sni: str | None = None) -> tuple[int, cd.Json, cd.Json | None,
                                                                               cd.Json | None] | None:
    """(index, chain, HCM config or None, tcp_proxy config or None) the request most likely lands on. On a TLS
    listener the SNI decides (-1, {}, None, None when no chain takes it: Envoy resets the connection); else an
    HTTP chain whose SNI names the host, then one without SNI, then any HTTP chain, then a TCP proxy."""
    chains = ls.filter_chains(listener)
    if sni is not None:
        ranked = [(r, i) for i, c in enumerate(chains) if (r := _sni_rank(c, sni)) is not None]
        if not ranked:
            return -1, {}, None, None
        chains_to_use = [min(ranked)[1]]
    else:
        chains_to_use = list(range(len(chains)))
    http: list[tuple[int, int, cd.Json, cd.Json]] = []
    tcp: list[tuple[int, cd.Json, cd.Json]] = []
    for i in chains_to_use:
        chain = chains[i]
        match = cd.mapping(chain.get("filter_chain_match"))
        for flt in chain.get("filters") or []:
            if not isinstance(flt, Mapping):
                continue
            cfg = cd.mapping(flt.get("typed_config"))
            if flt.get("name") == ls.HCM:
                names = match.get("server_names") or []
                rank = 0 if names and _sni_matches(names, host) else (1 if not names else 2)
                http.append((rank, i, chain, cfg))
            elif flt.get("name") == ls.TCP_PROXY and ls.BLACKHOLE not in str(cfg.get("cluster", "")):
                tcp.append((i, chain, cfg))
    if http:
        _, i, chain, cfg = min(http, key=lambda e: e[0])
        return i, chain, cfg, None
    return (tcp[0][0], tcp[0][1], None, tcp[0][2]) if tcp else None


def _policy(route: cd.Json, vh: cd.Json) -> dict[str, Any]:
    """The route's timeout and retry policy (the route's own, else the virtual host's), for 504s; only for a
    route to an upstream: redirects and direct responses have neither."""
    action = route.get("route")
    if not isinstance(action, Mapping):
        return {"timeout": "", "retries": ""}
    retry = action.get("retry_policy") or vh.get("retry_policy")
    retries = "none"
    if isinstance(retry, Mapping):
        retries = f"{retry.get('num_retries', 1)} on {retry.get('retry_on', '') or '(nothing)'}"
        if retry.get("per_try_timeout"):
            retries += f", {retry['per_try_timeout']} per try"
    return {"timeout": timeout_of(route), "retries": retries}


def _body_start(direct: cd.Json) -> str:
    body = cd.mapping(direct.get("body"))
    if "inline_string" in body:
        text = str(body["inline_string"])
    elif "inline_bytes" in body:
        try:
            text = base64.b64decode(str(body["inline_bytes"])).decode("utf-8", "replace")
        except ValueError:
            text = "(bytes)"
    elif "filename" in body:
        return f"the file {body['filename']}"
    else:
        return "no body"
    return repr(text[:60] + ("..." if len(text) > 60 else ""))


def _route_config(hcm: cd.Json, by_name: Mapping[str, cd.Json]) -> tuple[str, cd.Json | None]:
    if isinstance(hcm.get("route_config"), Mapping):
        return str(hcm["route_config"].get("name", "")), hcm["route_config"]
    name = str((hcm.get("rds") or {}).get("route_config_name", ""))
    return name, by_name.get(name)


def _match_http(res: dict[str, Any], hcm: cd.Json, rc: cd.Json | None, req: Request, listener_port: int) -> None:
    if rc is None:
        res.update(status=404, reason="route_config_missing",
                   verdict=f"route configuration {res['route_config']!r} is not in the dump (RDS not received yet)")
        return
    host = effective_host(hcm, rc, req.host, listener_port)
    vh, domain = select_virtual_host(rc, host)
    if vh is None:
        domains = sorted({str(d) for v in rc.get("virtual_hosts") or [] for d in v.get("domains") or []})
        kept_port = host == req.host and host_port(req.host)[1] is not None
        why = " (the port is part of the host: this connection manager strips no port)" if kept_port else ""
        res.update(status=404, reason="no_virtual_host", known_domains=domains[:20],
                   more_domains=max(len(domains) - 20, 0), verdict=f"no virtual host matches host {host!r}{why}")
        return
    res.update(virtual_host=str(vh.get("name", "")), matched_domain=domain)
    index, route, skipped = select_route(vh, req)
    if route is None:
        res.update(status=404, reason="no_route", routes_checked=len(skipped),
                   verdict=f"virtual host {vh.get('name', '')!r} has no route for {req.method} {req.path}")
        return
    kind, clusters = route_targets(route)
    res.update(route={"index": index, "name": str(route.get("name", "")), "match": describe_match(route.get("match")),
                      "conditions": describe_conditions(route.get("match")),
                      "virtual_service": cd.describe_management(route.get("metadata")),
                      "ingress": "/".join(route_link(route).ingress or ()), **_policy(route, vh)},
               action=kind, skipped_routes=len(skipped))
    if kind == "redirect":
        redirect = route["redirect"]
        code = _REDIRECT_CODES.get(str(redirect.get("response_code", "MOVED_PERMANENTLY")), 301)
        scheme = "https" if res.get("tls_listener") else "http"
        res.update(status=code, reason="redirect",
                   verdict=f"route #{index} redirects ({code}) to {redirect_target(redirect, req, scheme)}")
    elif kind == "direct_response":
        direct = route["direct_response"]
        code = int(direct.get("status", 200) or 200)
        res.update(status=code, reason="direct_response",
                   verdict=f"route #{index} answers itself with {code}, body {_body_start(direct)}")
    elif not clusters:
        res.update(status=None, reason="unknown", verdict=f"the route decides at request time: {kind}")
    else:
        res["targets"] = clusters


def match(dump: cd.Json, req: Request, port: int | None = None, sni: str | None = None) -> list[dict[str, Any]]:
    """One result per listener port (the first listener on a port wins): what the listener and route
    configuration do with the request. Routed results carry `targets` for `judge`. On TLS listeners the
    filter chain is chosen by `sni` (default: the host)."""
    by_name = {str(rc.get("name", "")): rc for rc in cd.route_configs(dump)}
    host_only = host_port(req.host)[0].lower()
    results: list[dict[str, Any]] = []
    seen: set[int] = set()
    for lst in ls.matching(dump, ls.ListenerFilter(port=port or 0)):
        tls = is_tls_listener(lst)
        server_name = (sni if sni is not None else host_only).lower() if tls else None
        picked = _pick_chain(lst, host_only, server_name)
        if picked is None or ls.port(lst) in seen:
            continue
        seen.add(ls.port(lst))
        index, chain, hcm, tcp = picked
        res: dict[str, Any] = {"listener": str(lst.get("name", "")), "address": ",".join(ls.addresses(lst)),
                               "port": ls.port(lst), "filter_chain": ls.describe_chain_match(
                                   chain.get("filter_chain_match")) if index >= 0 else "none",
                               "tls_listener": tls, "chain_index": index}
        if tls:
            res["sni"] = server_name
        results.append(res)
        if index < 0:
            res.update(status=0, reason="no_filter_chain", route_config="",
                       verdict=f"no filter chain takes SNI {server_name!r}: Envoy resets the connection")
            continue
        if tcp is not None:
            res.update(action="tcp_proxy", route_config="", targets=[(str(tcp.get("cluster", "")), 100)])
            continue
        assert hcm is not None
        res["route_config"], rc = _route_config(hcm, by_name)
        _match_http(res, hcm, rc, req, ls.port(lst))
    return results


def routed_clusters(results: list[dict[str, Any]]) -> list[str]:
    return sorted({name for r in results for name, _ in r.get("targets", [])})


def _cluster_entry(health: hh.ClusterHealth, weight: int, statuses: Mapping[str, cd.Json],
                   config: cd.Json | None) -> dict[str, Any]:
    raw = statuses.get(health.name) or {}
    eds = [eps.host_status(h) for h in raw.get("host_statuses") or [] if isinstance(h, Mapping)]
    c = health.counts
    return {"cluster": health.name, "weight": weight, "found": health.found, "panic": health.found and health.panic,
            "transport": cs.transport(config), "protocol": cs.protocol(config),
            "objects": cluster_link(health.name, config).describe(),
            "panic_threshold": health.threshold, "healthy": c["healthy"] + c["degraded"], "total": len(health.hosts),
            "endpoints": [{**h, "status": s} for h, s in zip(health.hosts, eds, strict=False)]}


def response_codes(stats: Mapping[str, int], cluster: str) -> dict[int, int]:
    """code -> count from `cluster.<name>.upstream_rq_<code>` stats."""
    prefix = f"cluster.{cluster}.upstream_rq_"
    return {int(name[len(prefix):]): value for name, value in stats.items()
            if name.startswith(prefix) and name[len(prefix):].isdigit() and value}


def judge(results: list[dict[str, Any]], clusters_json: Any, configs: Mapping[str, cd.Json],
          stats: Mapping[str, int] | None = None) -> None:
    """Settle the routed results in place from the hosts' health and counters."""
    statuses = {str(c.get("name", "")): c for c in eps.cluster_statuses(clusters_json)}
    for res in results:
        targets = res.pop("targets", None)
        if not targets:
            continue
        healths = [(hh.cluster_health(statuses.get(n), n, configs.get(n)), w) for n, w in targets]
        for health, _ in healths:
            health.codes = response_codes(stats or {}, health.name)
        res["clusters"] = [_cluster_entry(h, w, statuses, configs.get(h.name)) for h, w in healths]
        main = max(healths, key=lambda e: e[1])[0]  # the heaviest cluster decides most requests
        status, reason, why = main.verdict()
        if res.get("action") == "tcp_proxy":
            status, reason = (200, "tcp_proxy") if status == 200 else (0, f"tcp_proxy_{reason}")
            why = f"TCP proxy to cluster {main.name!r}, no HTTP routing: the backend answers. " + why
        elif status == 504:
            why += f" (route timeout {res['route']['timeout']}, retries {res['route']['retries']})"
        if len(healths) > 1 and len({h.verdict()[0] for h, _ in healths}) > 1:
            why += "; the other weighted clusters answer differently"
        res.update(status=status, reason=reason, verdict=why)


def _likelihood(res: dict[str, Any]) -> tuple[int, int, int]:
    """Ports whose specific virtual host matched come first, then wildcard ones, then the rest."""
    domain = res.get("matched_domain", "")
    vh_rank = 0 if domain and domain != "*" else (1 if domain else 2)
    return vh_rank, 0 if res.get("route") else 1, int(res.get("port", 0))


def find_route(dump: cd.Json, clusters_json: Any, req: Request, port: int | None = None,
               configs: Mapping[str, cd.Json] | None = None, stats: Mapping[str, int] | None = None,
               sni: str | None = None) -> dict[str, Any]:
    """The structured answer: one entry per listener port, the likely one first. Cluster configs (for the
    panic threshold) come from `configs`, else from the dump's clusters section when it has one; `stats`
    (the routed clusters' upstream_rq_<code> counters) name the status of hosts that answer with errors."""
    results = match(dump, req, port, sni)
    if configs is None:
        configs = {str(c.get("name", "")): c for c in cd.clusters(dump)}
    judge(results, clusters_json, configs, stats)
    results.sort(key=_likelihood)
    return {"request": {"host": req.host, "path": req.path, "method": req.method, "headers": sorted(req.headers),
                        "port": port, **({"sni": sni} if sni is not None else {})}, "matches": results}


def focus_of(res: dict[str, Any], req: Request) -> Focus:
    """The objects one listener port's match goes through, for the detectors."""
    route = res.get("route")
    routes = frozenset({route_ref(res.get("route_config", ""), res.get("virtual_host", ""), route["index"],
                                  route["name"])} if route else ())
    return Focus(request=req, listeners=frozenset({res["listener"]}),
                 route_configs=frozenset({res["route_config"]} if res.get("route_config") else ()),
                 virtual_hosts=frozenset({res["virtual_host"]} if res.get("virtual_host") else ()), routes=routes,
                 clusters=frozenset(c["cluster"] for c in res.get("clusters", [])))


def focus(answer: dict[str, Any], req: Request) -> Focus:
    """Every listener port's objects together, with each port's match: the detectors run once per call."""
    parts = [focus_of(m, req) for m in answer["matches"]]
    return Focus(request=req, listeners=frozenset().union(*(p.listeners for p in parts)),
                 route_configs=frozenset().union(*(p.route_configs for p in parts)),
                 virtual_hosts=frozenset().union(*(p.virtual_hosts for p in parts)),
                 routes=frozenset().union(*(p.routes for p in parts)),
                 clusters=frozenset().union(*(p.clusters for p in parts)), ports=tuple(answer["matches"]),
                 sni=str(answer["request"].get("sni") or ""))


def apply_findings(answer: dict[str, Any], findings: list[Finding], req: Request) -> None:
    """Each port's findings go with it; a finding that decides what the request gets (a verdict) replaces a
    success verdict, or names the cause of the same status (Verdict.replaces), so the answer never says
    "routed" for a request Envoy fails, nor blames an endpoint for a route's or a cluster's fault."""
    for m in answer["matches"]:
        scope = focus_of(m, req)
        mine = [f for f in findings if any(scope.covers(r) for r in f.refs())]
        if not mine:
            continue
        m["findings"] = [f.to_json() for f in mine]
        decisive = next((f for f in mine if f.verdict is not None and f.verdict.replaces(m.get("status"))), None)
        if decisive is not None and decisive.verdict is not None:
            status = m.get("status") if decisive.verdict.status is None else decisive.verdict.status
            m.update(status=status, reason=decisive.verdict.reason, verdict=f"{decisive.subject}: {decisive.message}")


def verdict_line(answer: dict[str, Any]) -> str:
    if not answer["matches"]:
        return "verdict: 0 no_listener"
    first = answer["matches"][0]
    status = first.get("status")
    return f"verdict: {status if status else ('reset' if status == 0 else 'unknown')} {first.get('reason', '')}"


def _render_cluster(c: dict[str, Any]) -> list[str]:
    if not c["found"]:
        return [f"  cluster {c['cluster']}: NOT FOUND on this proxy"]
    panic = f", PANIC MODE (below {c['panic_threshold']:g}%): Envoy uses every host" if c["panic"] else ""
    lines = [f"  cluster {c['cluster']} (weight {c['weight']}): {c['healthy']}/{c['total']} hosts healthy{panic}; "
             f"{c['transport']}, {c['protocol']}" + (f"; from {c['objects']}" if c.get("objects") else "")]
    for e in c["endpoints"][:10]:  # the state Envoy acts on; EDS's own word is in its flags when it matters
        flags = f" ({', '.join(e['flags'])})" if e["flags"] else ""
        counters = f", connect failures {e['cx_connect_fail']} of {e['cx_total']}" if e["cx_connect_fail"] else ""
        counters += f", timeouts {e['rq_timeout']} of {e['rq_total']} requests" if e["rq_timeout"] else ""
        counters += f", errors {e['rq_error']} of {e['rq_total']} requests" if e["failing"] == "5xx" else ""
        lines.append(f"    {e['address']} {e['state']}{flags}{counters}")
    if len(c["endpoints"]) > 10:
        lines.append(f"    ... {len(c['endpoints']) - 10} more (get-envoy-proxy-config type=endpoints "
                     f"cluster={c['cluster']})")
    return lines


def render(answer: dict[str, Any]) -> str:
    """A few lines per listener port, the likely one first; the last line is the first port's verdict."""
    req = answer["request"]
    lines = [f"Request: {req['method']} {req['host']}{req['path']}"]
    shown: set[tuple[str, str, str]] = set()
    if not answer["matches"]:
        lines.append("No HTTP or TCP listener on this proxy" + (" for that port" if req.get("port") else "") + ".")
    for m in answer["matches"]:
        target = "tcp_proxy" if m.get("action") == "tcp_proxy" else f"route config {m['route_config'] or '(inline)'}"
        sni = f" SNI {m['sni']!r}" if m.get("tls_listener") else ""
        lines.append(f"\nListener {m['listener'] or '(unnamed)'} {m['address']}:{m['port']}{sni} "
                     f"[{m['filter_chain']}] -> {target}")
        if "virtual_host" in m:
            lines.append(f"  virtual host: {m['virtual_host']} (domain {m['matched_domain']!r})")
        if "route" in m:
            r = m["route"]
            vs = f", virtual service {r['virtual_service']}" if r["virtual_service"] else ""
            vs += f", Ingress {r['ingress']}" if r.get("ingress") else ""
            cond = f" [{r['conditions']}]" if r.get("conditions") else ""
            policy = f"; timeout {r['timeout']}, retries {r['retries']}" if r["timeout"] else ""
            lines.append(f"  route #{r['index']} {r['name'] or ''} match {r['match'] or '(any)'}{cond}{vs}{policy}")
        for c in m.get("clusters", []):
            lines += _render_cluster(c)
        if m.get("known_domains"):
            more = f" (+{m['more_domains']} more)" if m.get("more_domains") else ""
            lines.append("  domains served: " + ", ".join(m["known_domains"]) + more)
        for f in m.get("findings", []):
            key = (f["detector"], f["object"], f["message"])
            if key in shown:  # the same object seen through another port: said once, in full, above
                lines.append(f"  finding [{f['severity']}] {f['object']}: as above")
                continue
            shown.add(key)
            lines.append(f"  finding [{f['severity']}] {f['object']}: {f['message']}"
                         + (f" Fix: {f['fix']}" if f.get("fix") else ""))
            lines += [f"    {e}" for e in f.get("evidence", [])]
        lines.append(f"  => {m.get('status') or '-'} {m.get('reason', '')}: {m['verdict']}")
    return "\n".join(lines) + "\n" + verdict_line(answer) + "\n"
