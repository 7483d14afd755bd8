"""Where a redirect route sends a request: the Location Envoy builds from the route's RedirectAction."""

from __future__ import annotations

from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views.matching import Request


def redirect_target(redirect: cd.Json, req: Request, scheme: str) -> str:
    """The Location Envoy sends (scheme, host, port, path or prefix rewrite, query) for this request."""
    host = str(redirect.get("host_redirect") or req.host)
    if redirect.get("port_redirect"):
        host = f"{host.split(':')[0]}:{redirect['port_redirect']}"
    elif redirect.get("https_redirect"):
        host = host.split(":")[0]  # the standard port of the new scheme
    new_scheme = "https" if redirect.get("https_redirect") else str(redirect.get("scheme_redirect") or scheme)
    path = req.path
    if redirect.get("path_redirect"):
        query = "" if "?" in str(redirect["path_redirect"]) or "?" not in req.path else "?" + req.path.split("?", 1)[1]
        path = str(redirect["path_redirect"]) + query
    elif "prefix_rewrite" in redirect:
        path = str(redirect["prefix_rewrite"]) + req.path  # approximate: Envoy replaces the matched prefix
    if redirect.get("strip_query"):
        path = path.split("?", 1)[0]
    return f"{new_scheme}://{host}{path}"
