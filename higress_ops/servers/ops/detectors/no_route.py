"""No route matched (404, response flag NR): the routes whose path matches the request but whose other
conditions do not, each with the condition that failed and what the request sent, so the caller sees which
header or query parameter to send (or which route to fix)."""

from __future__ import annotations

from collections.abc import Mapping

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus, Ref, Severity
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views import matching
from higress_ops.servers.ops.views.matching import Request
from higress_ops.servers.ops.views.routes import describe_header, describe_match, describe_query

SHOWN = 5


def failed_condition(route: cd.Json, req: Request) -> str:
    """The first condition besides the path that fails, with what the request sent."""
    match = cd.mapping(route.get("match"))
    for hm in match.get("headers") or []:
        if isinstance(hm, Mapping) and not matching.header_matches(hm, req):
            sent = req.header(str(hm.get("name", "")))
            return f"{describe_header(hm)}: " + ("not sent" if sent is None else f"sent {sent!r}")
    for qm in match.get("query_parameters") or []:
        if isinstance(qm, Mapping):
            one = {"match": {"prefix": "", "query_parameters": [qm]}}
            if matching.why_not(one, req):
                sent = req.query.get(str(qm.get("name", "")))
                return f"{describe_query(qm)}: " + ("not sent" if sent is None else f"sent {sent!r}")
    reason = matching.why_not(route, req)
    if reason.startswith("grpc"):
        return f"grpc: content-type is {req.header('content-type') or 'not sent'}, not application/grpc"
    return reason


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    if focus is None or focus.request is None:
        return []
    req = focus.request
    vhs = {(rc, str(vh.get("name", ""))): vh for rc, vh, _, _ in await facts.routes()}
    findings = []
    for port in focus.ports:
        vh = vhs.get((port.get("route_config", ""), port.get("virtual_host", "")))
        if port.get("reason") != "no_route" or vh is None:
            continue
        near = [(i, r) for i, r in enumerate(vh.get("routes") or []) if isinstance(r, Mapping)
                and matching.path_matches(cd.mapping(r.get("match")), req)]
        evidence = [f"route #{i} {r.get('name', '')} ({describe_match(r.get('match'))}): {failed_condition(r, req)}"
                    for i, r in near[:SHOWN]]
        if len(near) > SHOWN:
            evidence.append(f"+{len(near) - SHOWN} more routes whose path matches")
        findings.append(Finding(
            DETECTOR.name, Severity.ERROR, Ref("virtual_host", str(vh.get("name", ""))),
            (f"{len(near)} route(s) match the path {req.path_only} but another condition fails" if near else
             f"no route of {len(vh.get('routes') or [])} matches the path {req.path_only}"),
            "send what the route expects, or add a route for this request", tuple(evidence)))
    return findings


DETECTOR = Detector("no-route", "No route for the request (NR)", detect,
                    next_tool="get-envoy-proxy-config type=routes", request_only=True)
