"""A real Envoy in front of the replicas, round-robining `/higress-ops` as a Higress gateway would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from tests.support.envoy import Envoy, http_listener
from tests.support.procs import free_port


def front_proxy(replica_ports: list[int], workdir: Path, prefix: str = "/higress-ops") -> tuple[Envoy, int]:
    """Start Envoy: one listener, one ROUND_ROBIN cluster over every replica, no stream timeouts
    (SSE streams live long), and a retry on connect failure so a killed replica is skipped."""
    port = free_port()
    cluster = {
        "name": "replicas",
        "type": "STATIC",
        "connect_timeout": "0.5s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {"cluster_name": "replicas", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": p}}}}
            for p in replica_ports]}]},
    }
    route = {"match": {"prefix": prefix}, "route": {
        "cluster": "replicas", "timeout": "0s", "idle_timeout": "0s",
        "retry_policy": {"retry_on": "connect-failure,reset-before-request", "num_retries": 3}}}
    listener = http_listener("front", port, {"virtual_hosts": [{"name": "all", "domains": ["*"],
                                                               "routes": [route]}]})
    manager: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"]
    manager["stream_idle_timeout"] = "0s"
    manager["request_timeout"] = "0s"
    envoy = Envoy({"static_resources": {"listeners": [listener], "clusters": [cluster]}}, workdir).start()
    return envoy, port


def requests_per_replica(envoy: Envoy) -> dict[int, int]:
    """rq_total per endpoint port, from Envoy's own /clusters stats."""
    stats = requests.get(f"{envoy.admin_url}/clusters?format=json", timeout=5).json()
    counts: dict[int, int] = {}
    for cluster in stats["cluster_statuses"]:
        if cluster["name"] != "replicas":
            continue
        for host in cluster.get("host_statuses", []):
            port = int(host["address"]["socket_address"]["port_value"])
            total = next((int(s.get("value", 0)) for s in host["stats"] if s["name"] == "rq_total"), 0)
            counts[port] = total
    return counts
