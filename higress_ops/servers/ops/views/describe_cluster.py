"""describe-cluster: one Envoy cluster and every object behind it, the way `istioctl x describe` describes a
service (its ports, the DestinationRule with the policy that applies, the routes that lead to it), read from the
gateway itself:

- Envoy: whether the cluster exists, its hosts' health, what its config says (type, lb policy, circuit breakers,
  outlier detection, active health checks, TLS);
- the service behind `outbound|PORT|SUBSET|HOST` (Kubernetes API, else istiod's registry): ports with names,
  protocols and target ports, selector; its endpoints (EndpointSlices, else istiod's shards) for the cluster's
  port; the pods the selector (and the subset's labels) match;
- the DestinationRule that applies and its effective policy for this port and subset, field by field with where
  each value comes from; the EnvoyFilters whose CLUSTER patches match the cluster;
- the routes that send to it (route -> VirtualService -> Ingress) and the Ingresses whose backends name the service,
  or the McpBridge registry behind a `.static` / `.dns` host;
- recent Warning events about these objects, and when each last changed.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from typing import Any

from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.objects import istio as ist
from higress_ops.servers.ops.objects import kubernetes as k8s
from higress_ops.servers.ops.objects.links import ClusterLink, cluster_link, route_link, wasm_plugins_of
from higress_ops.servers.ops.objects.model import Endpoint, Ingress, Service
from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views import endpoints as eps
from higress_ops.servers.ops.views import host_health as hh
from higress_ops.servers.ops.views.routes import describe_match, route_targets

SHOWN = 10  # endpoints, pods, routes, events shown of each; the counts say how many there are
UNLIMITED = 4294967295  # Istio's default circuit-breaker thresholds (getDefaultCircuitBreakerThresholds)
_NAME = re.compile(r"^[A-Za-z0-9_.:|*/~-]{1,400}$")
_DNS = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def cluster_name(cluster: str, service: str, port: int, subset: str) -> str:
    """The cluster to describe: given, or `outbound|port|subset|host` of a service (`ns/name` or a host)."""
    if cluster:
        if not _NAME.match(cluster):
            raise ValueError("'cluster' must be an Envoy cluster name such as outbound|80||cart.shop.svc.cluster.local")
        return cluster
    if not service or not port:
        raise ValueError("pass 'cluster' (an Envoy cluster name), or 'service' (namespace/name or a host) and 'port'")
    if "/" in service:
        namespace, _, name = service.partition("/")
        host = f"{name}.{namespace}.svc.cluster.local"
    else:
        host = service
    if not all(_DNS.match(p) for p in host.split("/")) or (subset and not _DNS.match(subset)):
        raise ValueError("'service' must be namespace/name or a host name, 'subset' a subset name")
    return f"outbound|{port}|{subset}|{host}"


def _envoy(name: str, status: cd.Json | None, config: cd.Json | None) -> dict[str, Any]:
    health = hh.cluster_health(status, name, config)
    if not health.found:
        return {"found": False}
    c = health.counts
    out: dict[str, Any] = {"found": True, "hosts": len(health.hosts), "healthy": c["healthy"] + c["degraded"],
                           "unhealthy": [f"{h['address']} {h['state']} ({', '.join(h['flags'])})"
                                         for h in health.hosts if h["state"] not in ("healthy", "degraded")][:SHOWN]}
    if config:
        sock = cd.mapping(config.get("transport_socket"))
        out.update(type=str(config.get("type") or "STATIC"), lb_policy=str(config.get("lb_policy") or "ROUND_ROBIN"),
                   tls="TLS" if "tls" in str(sock.get("name", "")) else "plaintext",
                   circuit_breakers=[{k: v for k, v in cd.mapping(t).items() if k.startswith("max_")}
                                     for t in cd.mapping(config.get("circuit_breakers")).get("thresholds") or []],
                   outlier_detection=dict(cd.mapping(config.get("outlier_detection"))) or None,
                   health_checks=len(config.get("health_checks") or []))
    return out


def _port_of(service: Service, link: ClusterLink) -> dict[str, Any] | None:
    port = service.port(link.port)
    if port is None:
        return None
    return {"name": port.name, "port": port.port, "protocol": port.protocol, "target_port": port.target_port,
            "app_protocol": port.app_protocol}


def _service(service: Service) -> dict[str, Any]:
    return {"kind": service.meta.kind, "namespace": service.meta.namespace, "name": service.meta.name,
            "host": service.host, "source": service.meta.source, "type": service.type, "cluster_ip": service.cluster_ip,
            "selector": dict(service.selector) if service.selector is not None else None,
            "ports": [{"name": p.name, "port": p.port, "protocol": p.protocol, "target_port": p.target_port,
                       "app_protocol": p.app_protocol} for p in service.ports],
            "changed": service.meta.changed.describe() if service.meta.changed else ""}


def _endpoints(found: list[Endpoint], port_name: str) -> dict[str, Any]:
    mine = [e for e in found if not port_name or e.port_name == port_name]
    return {"total": len(mine), "ready": sum(e.ready for e in mine), "source": sorted({e.source for e in mine}),
            "addresses": [f"{e.address}:{e.port} {e.state}" + (f" pod {e.pod}" if e.pod else "") +
                          (f" node {e.node}" if e.node else "") for e in mine[:SHOWN]]}


def _ingress_line(ingress: Ingress, service: str) -> str:
    paths = ", ".join(f"{p.host or '*'}{p.path} ({p.path_type}) -> {p.service}:{p.port}" for p in ingress.paths
                      if p.service == service)
    changed = f", changed {ingress.meta.changed.describe()}" if ingress.meta.changed else ""
    return f"{ingress.meta.namespace}/{ingress.meta.name}: {paths} [{ingress.meta.source}{changed}]"


async def _routes(facts: Facts, name: str) -> list[dict[str, Any]]:
    dump = await facts.dump("routes")

    def scan() -> list[dict[str, Any]]:
        out = []
        for rc in cd.route_configs(dump):
            for vh in rc.get("virtual_hosts") or []:
                for i, route in enumerate(r for r in cd.mapping(vh).get("routes") or [] if isinstance(r, Mapping)):
                    if any(c == name for c, _ in route_targets(route)[1]):
                        link = route_link(route)
                        out.append({"route_config": str(rc.get("name", "")), "virtual_host": str(vh.get("name", "")),
                                    "index": i, "name": str(route.get("name", "")),
                                    "match": describe_match(route.get("match")), **link.to_json()})
        return out

    return await facts.compute(scan)


async def describe(facts: Facts, name: str) -> dict[str, Any]:
    """Everything about one cluster, as a dict render() prints; missing sources are in `not_read`. What does not
    depend on another answer is read concurrently (each document still once: Facts)."""
    inv = facts.objects
    named = cluster_link(name)  # what the name alone says: the host, hence the service's namespace
    ns = named.service[0] if named.service else ""
    configs, clusters_json, service, routes, _, ingresses, plugins = await asyncio.gather(
        facts.cluster_configs([name]), facts.clusters_json(),
        inv.service_by_host(named.host) if named.host else _none(), _routes(facts, name), inv.istio(),
        inv.ingresses(ns) if ns else _none(), inv.wasm_plugins() if ns else _none())
    statuses = {str(c.get("name", "")): c for c in eps.cluster_statuses(clusters_json)}
    link = cluster_link(name, configs.get(name))
    out: dict[str, Any] = {"cluster": name, "envoy": _envoy(name, statuses.get(name), configs.get(name)),
                           "links": link.to_json()}
    related: list[tuple[str, str, str]] = []
    if service is not None:
        out["service"] = _service(service)
        port = out["port"] = _port_of(service, link)
        ns = service.meta.namespace
        related.append((service.meta.kind, ns, service.meta.name))
        rule = await _rule(facts, link, ns)
        selector = dict(service.selector or {})
        if rule is not None:
            subset = ist.subset_labels(rule.spec, link.subset) if link.subset else None
            if link.subset and subset is None:
                out["subset_missing"] = link.subset
            selector.update(subset or {})
            out["destination_rule"] = {
                "namespace": rule.meta.namespace, "name": rule.meta.name, "applied": link.destination_rule is not None,
                "subsets": [str(cd.mapping(s).get("name", "")) for s in rule.spec.get("subsets") or []],
                "policy": [{"field": f.name, "value": f.value, "from": f.origin}
                           for f in ist.effective_policy(rule.spec, link.port, link.subset)]}
        with_pods = service.meta.kind == "Service" and bool(service.selector)
        endpoints, pods = await asyncio.gather(inv.endpoints(service),
                                               inv.pods(ns, selector) if with_pods else _none())
        out["endpoints"] = _endpoints(endpoints, port["name"] if port else "")
        if pods is not None:
            out["pods"] = {"selector": k8s.selector_text(selector), "total": len(pods),
                           "ready": sum(p.ready for p in pods),
                           "list": [f"{p.meta.name} {p.phase} {'ready' if p.ready else 'NOT ready'} restarts "
                                    f"{p.restarts} node {p.node or '-'}" for p in pods[:SHOWN]]}
            related += [("Pod", ns, p.meta.name) for p in pods]
        mine = [i for i in ingresses or [] if any(p.service == service.meta.name for p in i.paths)]
        out["ingresses"] = [_ingress_line(i, service.meta.name) for i in mine]
        out["wasm_plugins"] = [f"Ingress {i.meta.namespace}/{i.meta.name}: WasmPlugin {w}" for i in mine
                               for w in wasm_plugins_of(i, plugins or [], inv.higress_namespace)]
        related += [("Ingress", i.meta.namespace, i.meta.name) for i in mine]
    if link.registry is not None:
        out["mcp_bridge"] = await _registry(facts, link)
    out["envoy_filters"] = [f"{p.envoy_filter.meta.namespace}/{p.envoy_filter.meta.name} configPatches[{p.index}] "
                            f"{p.operation} ({p.match})" + (f", only for gateways labelled {p.selector}"
                                                           if p.selector else "")
                            for p in await inv.cluster_patches(name, [link.host])]
    out["routes"] = {"total": len(routes), "list": routes[:SHOWN]}
    out["stale"] = await _stale(facts, link, routes)
    out["warnings"] = [f"{e.regarding[0]} {e.regarding[1]}/{e.regarding[2]} {e.reason} (x{e.count}, last {e.last}): "
                       f"{e.message}" for e in (await inv.warnings_for(related))[:SHOWN]]
    out["not_read"] = sorted(inv.gaps)
    return out


async def _none() -> None:
    return None


async def _stale(facts: Facts, link: ClusterLink, routes: list[dict[str, Any]]) -> list[str]:
    """Links Envoy holds that istiod's configz no longer backs: the config was changed or deleted after the last
    push this Envoy accepted (or a push was rejected: get-gateway-health)."""
    configs = await facts.objects.istio()
    if not configs:
        return []  # istiod did not answer: nothing to compare with (not_read says so)
    known = {(c.meta.kind, c.meta.namespace, c.meta.name): c for c in configs}
    out = []
    if link.destination_rule and ("DestinationRule", *link.destination_rule) not in known:
        out.append("DestinationRule {}/{} (the cluster's istio.config) is not in istiod's configz".format(
            *link.destination_rule))
    for r in routes:
        vs = tuple(r.get("virtual_service", "").split("/", 1))
        found = known.get(("VirtualService", *vs)) if len(vs) == 2 else None
        if len(vs) == 2 and found is None:
            out.append(f"VirtualService {r['virtual_service']} (route {r['name'] or '#' + str(r['index'])}) is not in "
                       "istiod's configz")
        elif found is not None and r["name"] and r["name"] not in {
                str(cd.mapping(h).get("name", "")) for h in found.spec.get("http") or []}:
            out.append(f"VirtualService {r['virtual_service']} has no http route named {r['name']} any more")
    return sorted(set(out))


async def _rule(facts: Facts, link: ClusterLink, namespace: str) -> Any:
    """The rule the cluster's metadata names, else the one istiod's lookup picks for the host."""
    rules = await facts.objects.istio("DestinationRule")
    if link.destination_rule is not None:
        named = next((r for r in rules if (r.meta.namespace, r.meta.name) == link.destination_rule), None)
        if named is not None:
            return named
    return await facts.objects.destination_rule(link.host, namespace)


async def _registry(facts: Facts, link: ClusterLink) -> dict[str, Any]:
    assert link.registry is not None
    kind, name = link.registry
    higress_ns = facts.objects.higress_namespace
    for bridge in await facts.objects.mcp_bridges():
        for reg in bridge.spec.get("registries") or []:
            reg = cd.mapping(reg)
            if reg.get("type") == kind and (not name or reg.get("name") == name):
                used = (bridge.meta.namespace, bridge.meta.name) == (higress_ns, "default")
                return {"mcp_bridge": f"{bridge.meta.namespace}/{bridge.meta.name}", "registry": dict(reg),
                        **({} if used else {"ignored": f"Higress reads only the McpBridge {higress_ns}/default"})}
    return {"registry": {"type": kind, "name": name}, "found": False}


def _value(value: Any) -> str:
    return "(not set: Istio's default)" if value is None else json.dumps(value, separators=(",", ":"))


def render(d: Mapping[str, Any]) -> str:
    lines = [f"Cluster {d['cluster']}"]
    envoy = d["envoy"]
    if not envoy["found"]:
        lines.append("  Envoy: NOT on this proxy (routes to it answer 503 NC)")
    else:
        lines.append(f"  Envoy: {envoy.get('type', '?')}, {envoy['healthy']}/{envoy['hosts']} hosts healthy, lb "
                     f"{envoy.get('lb_policy', '?')}, {envoy.get('tls', '?')}, {envoy.get('health_checks', 0)} active "
                     "health check(s)" + (f", outlier detection {_value(envoy['outlier_detection'])}"
                                          if envoy.get("outlier_detection") else ", no outlier detection"))
        lines += [f"    {u}" for u in envoy["unhealthy"]]
        for t in envoy.get("circuit_breakers") or []:
            limits = {k: v for k, v in t.items() if v != UNLIMITED}
            lines.append(f"    circuit breakers {_value(limits)}" if limits else
                         "    circuit breakers: Istio's defaults (no limit)")
    svc = d.get("service")
    if svc:
        changed = f"; last changed {svc['changed']}" if svc["changed"] else ""
        lines.append(f"{svc['kind']} {svc['namespace']}/{svc['name']} ({svc['host']}, from {svc['source']}{changed})")
        sel = ",".join(f"{k}={v}" for k, v in (svc["selector"] or {}).items()) or "none"
        kind = f"type {svc['type']} {svc['cluster_ip']}".rstrip() + ", " if svc["type"] else ""
        lines.append(f"  {kind}selector {sel}")
        for p in svc["ports"]:
            mark = "  <- this cluster" if d.get("port") and p["port"] == d["port"]["port"] else ""
            lines.append(f"  port {p['name'] or '-'} {p['port']}/{p['protocol']} -> target {p['target_port'] or '?'}"
                         + (f" appProtocol {p['app_protocol']}" if p["app_protocol"] else "") + mark)
        if d.get("port") is None:
            lines.append(f"  the service has NO port {d['cluster'].split('|')[1]}: "
                         f"ports are {', '.join(str(p['port']) for p in svc['ports']) or 'none'}")
        ep = d["endpoints"]
        lines.append(f"  endpoints ({', '.join(ep['source']) or 'none'}): {ep['ready']}/{ep['total']} ready")
        lines += [f"    {a}" for a in ep["addresses"]]
        pods = d.get("pods")
        if pods is not None:
            lines.append(f"  pods ({pods['selector']}): {pods['ready']}/{pods['total']} ready")
            lines += [f"    {p}" for p in pods["list"]]
    elif not d.get("mcp_bridge"):
        lines.append("No service behind it in istiod's registry or the Kubernetes API")
    if d.get("mcp_bridge"):
        bridge = d["mcp_bridge"]
        lines.append(f"McpBridge {bridge.get('mcp_bridge', '(not found)')} registry {_value(bridge['registry'])}"
                     + (f" ({bridge['ignored']})" if bridge.get("ignored") else ""))
    rule = d.get("destination_rule")
    if rule:
        how = "applied (the cluster's istio.config)" if rule["applied"] else "matches the host (Envoy shows no trace)"
        lines.append(f"DestinationRule {rule['namespace']}/{rule['name']}: {how}; subsets "
                     f"{', '.join(rule['subsets']) or 'none'}")
        lines += [f"  {p['field']}: {_value(p['value'])}" + (f"  [{p['from']}]" if p["from"] else "")
                  for p in rule["policy"]]
    elif svc:
        lines.append("DestinationRule: none for this host")
    if d.get("subset_missing"):
        lines.append(f"  the DestinationRule has NO subset {d['subset_missing']}")
    lines += ["EnvoyFilters patching it:"] + [f"  {e}" for e in d["envoy_filters"]] if d["envoy_filters"] else []
    routes = d["routes"]
    lines.append(f"Routes to it: {routes['total']}")
    for r in routes["list"]:
        src = f" <- Ingress {r['ingress']}" if r.get("ingress") else ""
        src += f" (VirtualService {r['virtual_service']})" if r.get("virtual_service") else ""
        lines.append(f"  {r['route_config']} / {r['virtual_host']} #{r['index']} {r['name']} {r['match']}{src}")
    if d.get("ingresses"):
        lines += ["Ingresses with this backend:"] + [f"  {i}" for i in d["ingresses"]]
        lines += [f"  {w}" for w in d.get("wasm_plugins") or []]
    if d.get("stale"):
        lines += ["Envoy's links istiod no longer backs:"] + [f"  {x}" for x in d["stale"]]
    if d["warnings"]:
        lines += ["Warning events:"] + [f"  {w}" for w in d["warnings"]]
    if d["not_read"]:
        lines += ["Not read:"] + [f"  {g}" for g in d["not_read"]]
    return "\n".join(lines) + "\n"

