"""Redirects that send the client back to where it was: an https redirect for a request that already came over
TLS (`x-forwarded-proto: https` from a load balancer in front, or a TLS listener), or a target equal to the request
URL. Envoy answers the redirect every time (route-level https_redirect does not look at x-forwarded-proto; only
a virtual host's require_tls does), so the browser loops until it gives up."""

from __future__ import annotations

from collections.abc import Mapping

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus, Severity, Verdict, route_ref
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views import listeners as ls
from higress_ops.servers.ops.views.matching import Request
from higress_ops.servers.ops.views.redirects import redirect_target

FIX = "drop the https redirect where TLS ends in front of the gateway (or redirect only when x-forwarded-proto is " \
      "http: a virtual host's require_tls EXTERNAL_ONLY), or point the redirect elsewhere"
FIX_SELF = "point the redirect at another path or host"


def _loop(redirect: cd.Json, req: Request, tls: bool) -> str:
    """Why following this redirect comes back here, or ''."""
    scheme = "https" if tls or (req.header("x-forwarded-proto") or "").lower() == "https" else "http"
    to = redirect_target(redirect, req, scheme)
    if to == f"{scheme}://{req.host}{req.path}" or to == f"{scheme}://{req.host.split(':')[0]}{req.path}":
        why = "over TLS already (x-forwarded-proto: https)" if scheme == "https" and not tls else (
            "on a TLS listener already" if tls else "")
        return f"the target {to} is the request's own URL" + (f": the request came {why}" if why else "")
    return ""


def _tls_route_configs(dump: cd.Json) -> set[str]:
    """Route configurations served on TLS filter chains (an https redirect there loops)."""
    out = set()
    for lst in cd.listeners(dump):
        for chain in ls.filter_chains(lst):
            if not chain.get("transport_socket"):
                continue
            for flt in chain.get("filters") or []:
                cfg = cd.mapping(cd.mapping(flt).get("typed_config"))
                rc = cfg.get("route_config")
                rds = cd.mapping(cfg.get("rds")).get("route_config_name")
                name = rc.get("name") if isinstance(rc, Mapping) else rds
                if name:
                    out.add(str(name))
    return out


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    findings = []
    if focus is not None and focus.request is not None:
        routes = {(rc, str(vh.get("name", "")), i): route for rc, vh, i, route in await facts.routes()}
        for port in focus.ports:
            r = port.get("route")
            route = routes.get((port.get("route_config", ""), port.get("virtual_host", ""), r["index"])) if r else None
            if r is None or route is None or not isinstance(route.get("redirect"), Mapping):
                continue
            why = _loop(route["redirect"], focus.request, bool(port.get("tls_listener")))
            if why:
                findings.append(Finding(
                    DETECTOR.name, Severity.ERROR, route_ref(port["route_config"], port["virtual_host"], r["index"],
                                                             r["name"]),
                    f"redirect loop: {why}", FIX if "https" in why else FIX_SELF,
                    (f"redirect {dict(cd.mapping(route['redirect']))}",),
                    verdict=Verdict(port.get("status") or 301, "redirect_loop")))
        return findings
    tls_rcs = _tls_route_configs(await facts.dump("listeners"))
    for rc, vh, i, route in await facts.routes():
        redirect = route.get("redirect")
        if not isinstance(redirect, Mapping):
            continue
        match = cd.mapping(route.get("match"))
        ref = route_ref(rc, str(vh.get("name", "")), i, str(route.get("name", "")))
        if redirect.get("https_redirect") and rc in tls_rcs:
            findings.append(Finding(DETECTOR.name, Severity.ERROR, ref, "redirect loop: an https redirect on a route "
                                    "served over TLS", FIX, (f"route config {rc} is served on a TLS filter chain",)))
        elif match.get("path") and redirect.get("path_redirect") == match["path"] and not any(
                redirect.get(k) for k in ("https_redirect", "host_redirect", "port_redirect", "scheme_redirect")):
            findings.append(Finding(DETECTOR.name, Severity.ERROR, ref, f"redirect loop: {match['path']} redirects "
                                    "to itself", FIX_SELF, (f"redirect {dict(redirect)}",)))
    return findings


DETECTOR = Detector("redirect-loop", "Redirect loops", detect, next_tool="find-route host=<host> path=<path>")
