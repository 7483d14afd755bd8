"""Two real Envoys as two gateway pods of the API-server double: `gw-a` serves one route configuration,
`gw-b` the same plus a canary listener with its own routes, so the pods drift in listeners and routes only."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.apiserver import ApiServer, api_server
from tests.support.envoy import Envoy, http_listener, static_cluster

GATEWAY_LABELS = {"app": "higress-gateway", "higress": "higress-system-higress-gateway"}
PORT_ANNOTATION = "higress-ops.io/port"


def _routes(name: str, domain: str) -> dict[str, Any]:
    return {"name": name, "virtual_hosts": [{"name": domain, "domains": [domain], "routes": [
        {"match": {"prefix": "/"}, "route": {"cluster": "backend"}}]}]}


def bootstrap(node: str, canary: bool) -> dict[str, Any]:
    """Listeners on the same ports in every pod, as in a real fleet: not bound (both Envoys share this host)."""
    listeners = [http_listener("http", 8080, _routes("http-routes", "shop.example.com"))]
    if canary:
        listeners.append(http_listener("canary", 8081, _routes("canary-routes", "canary.example.com")))
    for listener in listeners:
        listener["bind_to_port"] = False
    return {"node": {"id": f"router~127.0.0.1~{node}.higress-system~higress-system.svc.cluster.local",
                     "cluster": "higress-gateway"},
            "static_resources": {"listeners": listeners, "clusters": [static_cluster("backend", 9080)]}}


@dataclass
class Fleet:
    api: ApiServer
    envoys: dict[str, Envoy]
    kubeconfig: Path

    def add(self, name: str, *, direct: bool = False, **pod: Any) -> None:
        """Pod `name`: Envoy's admin on the pod's port 15000 (what port-forward reaches). `direct`: every pod IP is
        127.0.0.1 here, so the admin API is on its own port in the pod, which the pod's annotation names."""
        port = self.envoys[name].admin_port
        self.api.add_pod(name, GATEWAY_LABELS, {port: port} if direct else {15000: port}, node=f"node-{name[-1]}",
                         annotations={PORT_ANNOTATION: str(port)} if direct else {}, **pod)

    def reset(self, *, direct: bool = False) -> None:
        """Every pod back, ready, annotated for direct access or not."""
        for name in self.envoys:
            self.api.remove_pod(name)
            self.add(name, direct=direct)

    def config(self, access: str, **extra: Any) -> dict[str, Any]:
        """A higress-ops server config reading these pods; envoyAdminURL leads nowhere on purpose."""
        return {"istiodURL": "http://127.0.0.1:9", "envoyAdminURL": "http://127.0.0.1:9", "namespace": "higress-system",
                "timeoutSeconds": 5, "gateways": {"access": access}, **extra}


@contextmanager
def gateway_fleet(workdir: Path) -> Iterator[Fleet]:
    with ExitStack() as stack:
        envoys = {}
        for name, canary in (("gw-a", False), ("gw-b", True)):
            envoy = Envoy(bootstrap(name, canary), workdir / name).start()
            stack.callback(envoy.stop)
            envoys[name] = envoy
        api = stack.enter_context(api_server())
        fleet = Fleet(api, envoys, api.kubeconfig(workdir / "kubeconfig"))
        fleet.reset()
        yield fleet
