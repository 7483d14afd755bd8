"""`istioctl proxy-config endpoints`: ENDPOINT, STATUS, OUTLIER CHECK, CLUSTER, from /clusters?format=json,
plus HEALTH: what Envoy does with the host (host_health.py), since STATUS is only what EDS said."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views import host_health as hh
from higress_ops.servers.ops.views.table import Table

HEADERS = ("ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER", "HEALTH")


def cluster_statuses(clusters_json: Any) -> list[cd.Json]:
    if not isinstance(clusters_json, Mapping) or not isinstance(clusters_json.get("cluster_statuses", []), list):
        raise cd.DumpError("not Envoy /clusters?format=json output: expected an object with 'cluster_statuses'")
    return [c for c in clusters_json.get("cluster_statuses", []) if isinstance(c, Mapping)]


host_address = hh.host_address


def host_status(host: cd.Json) -> str:
    hs = host.get("health_status") or {}
    return str(hs.get("eds_health_status") or "UNKNOWN") if isinstance(hs, Mapping) else "UNKNOWN"


def failed_outlier(host: cd.Json) -> bool:
    hs = host.get("health_status") or {}
    return bool(isinstance(hs, Mapping) and hs.get("failed_outlier_check"))


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
        wanted = self.status.lower()
        return not wanted or wanted == host_status(host).lower() or wanted in hh.words(host)


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
             "OUTLIER CHECK": "FAILED" if failed_outlier(h) else "OK", "CLUSTER": c, "HEALTH": hh.health_word(h)}
            for a, p, c, h in found]


def matching(clusters_json: Any, flt: EndpointFilter) -> list[cd.Json]:
    """Raw cluster statuses with at least one host passing the filter (istioctl's JSON output)."""
    return [cs for cs in cluster_statuses(clusters_json)
            if any(isinstance(h, Mapping) and flt.verify(h, str(cs.get("name", "")))
                   for h in cs.get("host_statuses") or [])]


def table(clusters_json: Any, flt: EndpointFilter = EndpointFilter()) -> Table:
    return Table(HEADERS, rows(clusters_json, flt))
