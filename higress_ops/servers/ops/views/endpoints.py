"""`istioctl proxy-config endpoints`: ENDPOINT, STATUS, OUTLIER CHECK, CLUSTER, from /clusters?format=json."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views.table import Table

HEADERS = ("ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER")


def cluster_statuses(clusters_json: Any) -> list[cd.Json]:
    if not isinstance(clusters_json, Mapping) or not isinstance(clusters_json.get("cluster_statuses", []), list):
        raise cd.DumpError("not Envoy /clusters?format=json output: expected an object with 'cluster_statuses'")
    return [c for c in clusters_json.get("cluster_statuses", []) if isinstance(c, Mapping)]


def host_address(host: cd.Json) -> tuple[str, int]:
    addr = host.get("address") or {}
    if isinstance(addr, Mapping) and isinstance(addr.get("socket_address"), Mapping):
        return cd.socket_address(addr)
    path = cd.socket_address(addr)[0]
    return f"unix://{path}", 0


def host_status(host: cd.Json) -> str:
    hs = host.get("health_status") or {}
    return str(hs.get("eds_health_status") or "UNKNOWN") if isinstance(hs, Mapping) else "UNKNOWN"


def failed_outlier(host: cd.Json) -> bool:
    hs = host.get("health_status") or {}
    return bool(isinstance(hs, Mapping) and hs.get("failed_outlier_check"))


_FAILED = ("failed_active_health_check", "failed_outlier_check", "failed_eds_health",
           "excluded_via_immediate_hc_fail", "active_hc_timeout")


def is_healthy(host: cd.Json) -> bool:
    """Whether Envoy routes to this host: EDS says HEALTHY, DEGRADED or UNKNOWN and no check failed."""
    hs = host.get("health_status") or {}
    if not isinstance(hs, Mapping) or any(hs.get(f) for f in _FAILED):
        return False
    return host_status(host) in ("HEALTHY", "DEGRADED", "UNKNOWN")


@dataclass(frozen=True)
class EndpointFilter:
    address: str = ""
    port: int = 0
    cluster: str = ""
    status: str = ""

    def verify(self, host: cd.Json, cluster: str) -> bool:
        addr, prt = host_address(host)
        if self.address and addr.lower() != self.address.lower():
            return False
        if self.port and prt != self.port:
            return False
        if self.cluster and cluster.lower() != self.cluster.lower():
            return False
        return not (self.status and host_status(host).lower() != self.status.lower())


def rows(clusters_json: Any, flt: EndpointFilter = EndpointFilter()) -> list[dict[str, Any]]:
    found = []
    for cs in cluster_statuses(clusters_json):
        name = str(cs.get("name", ""))
        for host in cs.get("host_statuses") or []:
            if isinstance(host, Mapping) and flt.verify(host, name):
                addr, prt = host_address(host)
                found.append((addr, prt, name, host))
    found.sort(key=lambda e: (e[0], e[1], e[2]))
    return [{"ENDPOINT": f"{a}:{p}" if p else a, "STATUS": host_status(h),
             "OUTLIER CHECK": "FAILED" if failed_outlier(h) else "OK", "CLUSTER": c} for a, p, c, h in found]


def matching(clusters_json: Any, flt: EndpointFilter) -> list[cd.Json]:
    """Raw cluster statuses with at least one host passing the filter (istioctl's JSON output)."""
    return [cs for cs in cluster_statuses(clusters_json)
            if any(isinstance(h, Mapping) and flt.verify(h, str(cs.get("name", "")))
                   for h in cs.get("host_statuses") or [])]


def table(clusters_json: Any, flt: EndpointFilter = EndpointFilter()) -> Table:
    return Table(HEADERS, rows(clusters_json, flt))
