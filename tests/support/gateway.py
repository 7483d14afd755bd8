"""A gateway-sized Envoy: thousands of clusters and routes, for budgets and the large-dump benchmark."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.envoy import Envoy, http_listener, static_cluster
from tests.support.procs import free_port

HEALTH_CHECK = {"timeout": "1s", "interval": "60s", "unhealthy_threshold": 1, "healthy_threshold": 1,
                "tcp_health_check": {}}


def big_gateway_bootstrap(clusters: int, listener_port: int, broken: bool = False) -> dict[str, object]:
    """`broken`: every cluster's only host (a closed port) is actively health checked, so every cluster is
    unhealthy at once: the worst case for an answer that lists what is broken."""
    names = [f"outbound|80||svc-{i:05d}.ns-{i % 40}.svc.cluster.local" for i in range(clusters)]
    extra = {"health_checks": [HEALTH_CHECK]} if broken else {}
    routes = [{"match": {"prefix": f"/svc-{i:05d}/"}, "route": {"cluster": name, "timeout": "15s"},
               "name": f"route-{i:05d}"} for i, name in enumerate(names)]
    route_config = {"name": "http.80", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]}
    return {
        "node": {"id": "router~10.0.0.9~higress-gateway-big.higress-system~higress-system.svc.cluster.local",
                 "cluster": "higress-gateway"},
        "static_resources": {
            "clusters": [static_cluster(name, 9, **extra) for name in names],
            "listeners": [http_listener("0.0.0.0_80", listener_port, route_config)],
        },
    }


@contextmanager
def big_gateway(workdir: Path, clusters: int = 2000, broken: bool = False) -> Iterator[Envoy]:
    envoy = Envoy(big_gateway_bootstrap(clusters, free_port(), broken), workdir).start(timeout=90)
    try:
        yield envoy
    finally:
        envoy.stop()
