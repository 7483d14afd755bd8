"""No virtual host for the request's host (404, NR): the configured domains nearest to it (a typo, a missing
wildcard, a port the connection manager does not strip), so "auth.exmaple.com" gets "did you mean
auth.example.com?"."""

from __future__ import annotations

import difflib

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus, Ref, Severity
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.views.matching import host_port

SHOWN = 3


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    if focus is None or focus.request is None:
        return []
    domains: dict[str, set[str]] = {}
    for rc, vh, _, _ in await facts.routes():
        domains.setdefault(rc, set()).update(str(d) for d in vh.get("domains") or [])
    findings = []
    host, port = host_port(focus.request.host)
    for p in focus.ports:
        rc = p.get("route_config", "")
        if p.get("reason") != "no_virtual_host":
            continue
        known = sorted(domains.get(rc, set()) | set(p.get("known_domains", [])))
        near = difflib.get_close_matches(host.lower(), [d.lower() for d in known], n=SHOWN, cutoff=0.8)
        with_port = [d for d in known if d.lower().startswith(host.lower() + ":")]
        hint = (f"did you mean {' or '.join(near)}?" if near and host.lower() not in near else
                f"{host} is served without the port {port}: the connection manager keeps it in the host"
                if port and host.lower() in near else "no configured domain is close to it")
        evidence = [f"domains with a port: {', '.join(with_port)}"] if with_port else []
        findings.append(Finding(
            DETECTOR.name, Severity.ERROR, Ref("route_config", rc),
            f"no virtual host matches host {focus.request.host!r}: {hint}",
            "send the configured host, or add the domain to the Ingress/VirtualService hosts", tuple(evidence),
            (Ref("listener", p.get("listener", "")),)))
    return findings


DETECTOR = Detector("no-virtual-host", "No virtual host for the request's host (NR)", detect,
                    next_tool="get-envoy-proxy-config type=routes", request_only=True)
