"""istiod's view of a proxy against the live Envoy's, like `istioctl proxy-status <pod>`.

Compares dynamic clusters, listeners and route configurations by name and content (timestamps and
version strings ignored), and says which match and which differ.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from higress_ops.servers.ops.views import configdump as cd


def _dynamic(dump: cd.Json) -> dict[str, dict[str, Any]]:
    clusters = cd.section(dump, cd.CLUSTERS).get("dynamic_active_clusters") or []
    listeners = cd.section(dump, cd.LISTENERS).get("dynamic_listeners") or []
    routes = cd.section(dump, cd.ROUTES).get("dynamic_route_configs") or []
    return {
        "clusters": {str(c["cluster"].get("name", "")): c["cluster"] for c in clusters
                     if isinstance(c, Mapping) and isinstance(c.get("cluster"), Mapping)},
        "listeners": {str(e.get("name", "")): (e.get("active_state") or {}).get("listener") for e in listeners
                      if isinstance(e, Mapping) and isinstance((e.get("active_state") or {}).get("listener"), Mapping)},
        "routes": {str(r["route_config"].get("name", "")): r["route_config"] for r in routes
                   if isinstance(r, Mapping) and isinstance(r.get("route_config"), Mapping)},
    }


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def compare(istiod_dump: cd.Json, envoy_dump: cd.Json, limit: int = 20) -> dict[str, Any]:
    want, have = _dynamic(istiod_dump), _dynamic(envoy_dump)
    out: dict[str, Any] = {}
    for kind in ("clusters", "listeners", "routes"):
        w, h = want[kind], have[kind]
        only_istiod = sorted(set(w) - set(h))
        only_envoy = sorted(set(h) - set(w))
        differ = sorted(n for n in set(w) & set(h) if _canon(w[n]) != _canon(h[n]))
        out[kind] = {"match": not (only_istiod or only_envoy or differ), "istiod": len(w), "envoy": len(h),
                     "only_in_istiod": only_istiod[:limit], "only_in_envoy": only_envoy[:limit],
                     "differ": differ[:limit],
                     "truncated": max(len(only_istiod), len(only_envoy), len(differ)) > limit}
    return out


def render(result: dict[str, Any]) -> str:
    lines = []
    for kind, r in result.items():
        title = kind.capitalize()
        if r["match"]:
            lines.append(f"{title} Match ({r['envoy']})")
            continue
        lines.append(f"{title} Don't Match (istiod {r['istiod']}, envoy {r['envoy']})")
        for label, key in (("only in istiod (not applied)", "only_in_istiod"),
                           ("only in envoy (stale)", "only_in_envoy"), ("content differs", "differ")):
            if r[key]:
                lines.append(f"  {label}: " + ", ".join(r[key]))
        if r["truncated"]:
            lines.append("  (lists cut; use get-envoy-proxy-config with a filter for the rest)")
    return "\n".join(lines) + "\n"
