"""VirtualServices that claim the same host: on this gateway, and (istioctl IST0109) on the mesh gateway.

On a gateway, istiod builds one virtual host per host and port (pilot/pkg/networking/core/gateway.go
buildGatewayHTTPRouteConfig, vHostDedupMap): the routes of every VirtualService bound to a Gateway of this proxy
for that host are appended in order, oldest VirtualService first (creation time, then name, then namespace), so
the later VirtualService's rules only see what the earlier ones leave, and a catch-all in the earlier one hides
them all. Plain-HTTP servers of one port share a route configuration (`http.<port>`); a TLS-terminating server
has its own. Istio has no message code for this; it is a warning naming the VirtualService whose routes come
second. For the mesh gateway istioctl reports IST0109 (sidecars' traffic: listed for parity).
"""

from __future__ import annotations

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus, Severity
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.detectors.istio import scope
from higress_ops.servers.ops.views import configz
from higress_ops.servers.ops.views.configdump import mapping
from higress_ops.servers.ops.views.configz import IstioConfig, Resource

NAME = "istio-virtualservice-hosts"


def subset_of(a: str, b: str) -> bool:
    """Istio's host.Name.SubsetOf."""
    if a.startswith("*"):
        return b.startswith("*") and len(a) >= len(b) and a[1:].endswith(b[1:])
    return a.endswith(b[1:]) if b.startswith("*") else a == b


def intersection(a: list[str], b: list[str]) -> list[str]:
    """Istio's Names.Intersection: for each pair that overlaps, the more specific host."""
    out: list[str] = []
    for x in a:
        for y in b:
            pick = x if subset_of(x, y) else y if subset_of(y, x) else ""
            if pick and pick not in out:
                out.append(pick)
    return out


def creation_order(vs: Resource) -> tuple[str, str, str]:
    return vs.created, vs.name, vs.namespace  # '' (Higress's generated ones) sorts first, as a zero time does


def bound_to(vs: Resource, gateways: dict[str, Resource]) -> list[Resource]:
    """Those of `gateways` (by full name) the VirtualService names (a bare name is in its own namespace)."""
    names = dict.fromkeys(g if "/" in g else f"{vs.namespace}/{g}" for g in vs.strings("gateways"))
    return [gateways[n] for n in names if n in gateways]


def gateway_merges(config: IstioConfig, gateways: list[Resource]) -> list[Finding]:
    by_name = {gw.full_name: gw for gw in gateways}
    claims: dict[tuple[str, str], list[tuple[Resource, Resource]]] = {}  # (route config, host) -> (vs, gateway)
    for vs in sorted(config.of("VirtualService"), key=creation_order):
        for gw in bound_to(vs, by_name):
            for server in gw.items("servers"):
                port = mapping(server.get("port"))
                tls = mapping(server.get("tls"))
                terminates = str(port.get("protocol", "")).upper() == "HTTPS" and tls.get("mode") != "PASSTHROUGH"
                rds = (f"https.{port.get('number')}.{port.get('name')}.{gw.name}.{gw.namespace}" if terminates
                       else f"http.{port.get('number')}")
                hosts = configz.names_for_namespace([str(h) for h in server.get("hosts") or []], vs.namespace)
                for h in intersection(hosts, vs.strings("hosts")):
                    claims.setdefault((rds, h.lower()), []).append((vs, gw))
    out: list[Finding] = []
    for (rds, host), claimed in sorted(claims.items()):
        first = claimed[0][0]
        for vs, gw in claimed[1:]:
            if vs is first or vs.suppressed(NAME):
                continue
            out.append(Finding(
                NAME, Severity.WARNING, scope.ref(vs),
                f"host {host} is also defined by VirtualService {first.full_name}, bound to the same gateway: istiod "
                f"merges both into one virtual host of route configuration {rds}, {first.full_name}'s routes first",
                "define each host in one VirtualService (merge the rules), or make sure the first one's rules do "
                "not take this one's requests", (f"Gateway {gw.full_name}; first: {first.full_name} "
                                                  f"(created {first.created or 'by Higress'})",),
                (scope.ref(first), scope.ref(gw))))
    return out


def mesh_conflicts(config: IstioConfig) -> list[Finding]:
    """istioctl's virtualservice.ConflictingMeshGatewayHostsAnalyzer."""
    hosts: dict[str, list[Resource]] = {}
    for vs in config.of("VirtualService"):
        gateways = vs.strings("gateways")
        if gateways and configz.MESH not in gateways:
            continue
        export = vs.strings("exportTo")
        scopes = ["*"] if configz.exported_everywhere(export) else sorted(
            {vs.namespace if e == "." else e for e in export})
        for s in scopes:
            for h in vs.strings("hosts"):
                hosts.setdefault(f"{s}/{configz.fqdn(h, vs.namespace)}", []).append(vs)
    out: list[Finding] = []
    reported: set[str] = set()
    for key, claimed in sorted(hosts.items()):
        s, _, h = key.partition("/")
        if s != "*":
            claimed = claimed + [vs for k, more in hosts.items() if k.startswith("*/")
                                 and configz.host_matches(h, k[2:]) for vs in more]
        if len({vs.full_name for vs in claimed}) < 2:
            continue
        names = ",".join(sorted({vs.full_name for vs in claimed}))
        for vs in claimed:
            if vs.full_name not in reported:
                reported.add(vs.full_name)
                out += scope.finding(NAME, vs, "IST0109", (names, key),
                                     "merge the conflicting VirtualServices into one resource")
    return out


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    mesh = await scope.mesh(facts)
    return await facts.compute(lambda: gateway_merges(mesh.config, mesh.gateways_of_proxy())
                               + mesh_conflicts(mesh.config))


DETECTOR = Detector(NAME, "Hosts defined by several VirtualServices on one gateway (and IST0109 on the mesh)",
                    detect, next_tool="find-route host=<host> path=<path>", sources=("istiod", "envoy"))
