"""Requests that hit the route's timeout (504, response flag UT) on every host Envoy tried: the route's timeout
is the object to look at, not the endpoints. A timeout exists only where there is an upstream: RouteAction.timeout,
15s unless set, 0s for none (route_components.proto); redirects and direct responses never time out."""

from __future__ import annotations

from higress_ops.servers.ops.detectors.base import (
    Detector,
    Finding,
    Focus,
    Ref,
    Severity,
    Verdict,
    cluster_pattern,
    counter,
    route_ref,
)
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.views import routes as rt

ROUTES_SHOWN = 3


def _focused(focus: Focus, stats: dict[str, int]) -> list[Finding]:
    out = []
    for port in focus.ports:
        route = port.get("route")
        if port.get("reason") != "upstream_timeout" or not route:
            continue
        ref = route_ref(port.get("route_config", ""), port.get("virtual_host", ""), route["index"], route["name"])
        clusters = [c["cluster"] for c in port.get("clusters", [])]
        timed_out = {c: counter(stats, c, "upstream_rq_timeout") for c in clusters}
        out.append(Finding(
            DETECTOR.name, Severity.ERROR, ref,
            f"requests hit the route timeout {route['timeout']} on every host tried (504, UT)",
            "raise the route's timeout (VirtualService http[].timeout, Higress: the Ingress's timeout annotation) "
            "or make the backend answer faster",
            (*(f"cluster {c}: upstream_rq_timeout {n}" for c, n in timed_out.items()), f"retries {route['retries']}"),
            tuple(Ref("cluster", c) for c in clusters),
            verdict=Verdict(504, "route_timeout")))
    return out


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    stats = await facts.counters()
    if focus is not None:
        return _focused(focus, stats)
    slow = {name.removeprefix("cluster.").removesuffix(".upstream_rq_timeout"): v for name, v in stats.items()
            if name.startswith("cluster.") and name.endswith(".upstream_rq_timeout") and v
            and name.count(".") >= 2 and name.split(".")[-2] not in ("external", "internal")}
    if not slow:
        return []
    by_cluster: dict[str, list[tuple[Ref, str]]] = {}
    for rc, vh, i, route in await facts.routes():
        _, targets = rt.route_targets(route)
        for cluster, _ in targets:
            if cluster in slow:
                by_cluster.setdefault(cluster, []).append(
                    (route_ref(rc, str(vh.get("name", "")), i, str(route.get("name", ""))), rt.timeout_of(route)))
    findings = []
    for cluster, n in sorted(slow.items(), key=lambda kv: -kv[1]):
        routes = by_cluster.get(cluster, [])
        findings.append(Finding(
            DETECTOR.name, Severity.ERROR, Ref("cluster", cluster),
            f"{n} request(s) hit their route's timeout (504, UT)",
            "raise the timeout of the routes below or make the backend answer faster",
            tuple(f"{ref}: timeout {timeout}" for ref, timeout in routes[:ROUTES_SHOWN])
            + ((f"+{len(routes) - ROUTES_SHOWN} more routes",) if len(routes) > ROUTES_SHOWN else ()),
            tuple(ref for ref, _ in routes[:ROUTES_SHOWN])))
    return findings


DETECTOR = Detector("route-timeout", "Route timeouts (UT)", detect,
                    next_tool="find-route host=<host> path=<path>", stats=(cluster_pattern(("upstream_rq_timeout",)),))
