"""`istioctl proxy-config listeners`: ADDRESSES, PORT, MATCH, DESTINATION (its default, verbose)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views.routes import describe_match
from higress_ops.servers.ops.views.table import Table

HEADERS = ("ADDRESSES", "PORT", "MATCH", "DESTINATION")
HCM = "envoy.filters.network.http_connection_manager"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
BLACKHOLE = "BlackHoleCluster"

_ALPN_NAMES = {
    ("http/1.0", "http/1.1", "h2c", "istio-http/1.0", "istio-http/1.1", "istio-h2"): "App: HTTP TLS",
    ("istio", "istio-http/1.0", "istio-http/1.1", "istio-h2"): "App: Istio HTTP Plain",
    ("istio-peer-exchange", "istio"): "App: TCP TLS",
    ("http/1.0", "http/1.1", "h2c"): "App: HTTP",
}


def address(listener: cd.Json) -> str:
    return cd.socket_address(listener.get("address"))[0]


def port(listener: cd.Json) -> int:
    return cd.socket_address(listener.get("address"))[1]


def addresses(listener: cd.Json) -> list[str]:
    extra = [cd.socket_address(a.get("address"))[0] for a in listener.get("additional_addresses") or []
             if isinstance(a, Mapping)]
    return [address(listener), *extra]


def filter_chains(listener: cd.Json) -> list[cd.Json]:
    chains = [c for c in listener.get("filter_chains") or [] if isinstance(c, Mapping)]
    default = listener.get("default_filter_chain")
    return [*chains, default] if isinstance(default, Mapping) else chains


def _tcp_is_blackhole(flt: cd.Json) -> bool:
    # istioctl looks for the name anywhere in the serialized TcpProxy config.
    return BLACKHOLE in json.dumps(flt.get("typed_config") or {})


def listener_type(listener: cd.Json) -> str:
    n_http = n_tcp = 0
    for chain in filter_chains(listener):
        for flt in chain.get("filters") or []:
            if not isinstance(flt, Mapping):
                continue
            if flt.get("name") == HCM:
                n_http += 1
            elif flt.get("name") == TCP_PROXY and not _tcp_is_blackhole(flt):
                n_tcp += 1
    if n_http:
        return "HTTP" if not n_tcp else "HTTP+TCP"
    return "TCP" if n_tcp else "UNKNOWN"


@dataclass(frozen=True)
class ListenerFilter:
    address: str = ""
    port: int = 0
    type: str = ""

    def verify(self, listener: cd.Json) -> bool:
        if self.address and not any(a.lower() == self.address.lower() for a in addresses(listener)):
            return False
        if self.port and port(listener) != self.port:
            return False
        return not (self.type and listener_type(listener).lower() != self.type.lower())


def describe_chain_match(match: Any) -> str:
    m = match if isinstance(match, Mapping) else {}
    descrs = []
    if m.get("server_names"):
        descrs.append("SNI: " + ",".join(m["server_names"]))
    if m.get("transport_protocol"):
        descrs.append(f"Trans: {m['transport_protocol']}")
    if m.get("application_protocols"):
        alpn = tuple(m["application_protocols"])
        descrs.append(_ALPN_NAMES.get(alpn, "App: " + ",".join(alpn)))
    dport = f":{m['destination_port']}" if m.get("destination_port") is not None else ""
    ranges = [r for r in m.get("prefix_ranges") or [] if isinstance(r, Mapping)]
    if ranges:
        descrs.append("Addr: " + ",".join(f"{r.get('address_prefix', '')}/{r.get('prefix_len', 0)}" for r in ranges)
                      + dport)
    elif dport:
        descrs.append(f"Addr: *{dport}")
    return "; ".join(descrs) or "ALL"


def _cluster_label(cluster: str) -> str:
    return cluster if "Cluster" in cluster else f"Cluster: {cluster}"


def _match_all_cluster(rc: cd.Json) -> str:
    vhs = rc.get("virtual_hosts") or []
    if len(vhs) != 1 or vhs[0].get("domains") != ["*"] or len(vhs[0].get("routes") or []) != 1:
        return ""
    r = vhs[0]["routes"][0]
    action = r.get("route")
    if (r.get("match") or {}).get("prefix") != "/" or not isinstance(action, Mapping) or "cluster" not in action:
        return ""
    return _cluster_label(str(action["cluster"]))


def describe_route_config(rc: cd.Json) -> str:
    if cluster := _match_all_cluster(rc):
        return cluster
    vhosts = []
    for vh in rc.get("virtual_hosts") or []:
        domains = vh.get("domains") or []
        dom = "" if domains == ["*"] else "/".join(domains)
        routes = ", ".join(describe_match(r.get("match")) for r in vh.get("routes") or [])
        vhosts.append(routes if not dom else f"{dom} {routes}")
    return "Inline Route: " + "; ".join(vhosts)


def destination(chain: cd.Json) -> str:
    for flt in chain.get("filters") or []:
        if not isinstance(flt, Mapping):
            continue
        cfg = flt.get("typed_config") or {}
        if flt.get("name") == HCM:
            if isinstance(cfg.get("route_config"), Mapping):
                return describe_route_config(cfg["route_config"])
            rds = cfg.get("rds") or {}
            if rds.get("route_config_name"):
                return f"Route: {rds['route_config_name']}"
            return "HTTP"
        if flt.get("name") == TCP_PROXY and not _tcp_is_blackhole(flt):
            return _cluster_label(str(cfg.get("cluster", "")))
    return "Non-HTTP/Non-TCP"


def matching(dump: cd.Json, flt: ListenerFilter) -> list[cd.Json]:
    found = [lst for lst in cd.listeners(dump) if flt.verify(lst)]
    return sorted(found, key=lambda lst: (port(lst), address(lst), listener_type(lst)))


def table(dump: cd.Json, flt: ListenerFilter = ListenerFilter()) -> Table:
    t = Table(HEADERS, padding=1)
    for lst in matching(dump, flt):
        rows = [(describe_chain_match(c.get("filter_chain_match")), destination(c)) for c in filter_chains(lst)]
        rows.sort(key=lambda r: r[1], reverse=True)
        for match, dest in rows:
            t.rows.append({"NAME": str(lst.get("name", "")), "ADDRESSES": ",".join(addresses(lst)),
                           "PORT": port(lst), "MATCH": match, "DESTINATION": dest})
    return t
