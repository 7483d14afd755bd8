"""deploy/ rendered the way an operator applies it (kubectl kustomize; kubectl patch for the sidecar) and
validated offline against the Kubernetes schemas, with the properties an operator checks asserted."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from higress_ops.config import load_text
from higress_ops.config.model import PodFleet

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = "1.30.0"
KUBECTL = shutil.which("kubectl")
SECRET = "higress-ops-redis"  # the one object an operator creates first (a password has no place in git)


def objects(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render(overlay: str) -> list[dict[str, Any]]:
    assert KUBECTL is not None, "kubectl renders the overlays as an operator does (the machine image ships it)"
    return objects(subprocess.run([KUBECTL, "kustomize", str(DEPLOY / "overlays" / overlay)], check=True,
                                  capture_output=True, text=True, timeout=60).stdout)


def patched_gateway() -> dict[str, Any]:
    assert KUBECTL is not None
    out = subprocess.run([KUBECTL, "patch", "--local", "-f", str(Path(__file__).parent / "higress-gateway.yaml"),
                          "--type", "strategic", "--patch-file",
                          str(DEPLOY / "overlays" / "sidecar" / "gateway-patch.yaml"), "-o", "yaml"],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    return yaml.safe_load(out)


def by_kind(items: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in items if o["kind"] == kind]


def named(items: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in items if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def validate_all(items: list[dict[str, Any]]) -> None:
    for obj in items:
        kubernetes_validate.validate(obj, K8S, strict=True)


def ops_container(deployment: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "higress-ops")


def arg(container: dict[str, Any], flag: str) -> str:
    args = container["args"]
    return str(args[args.index(flag) + 1])


def assert_locked_down(pod: dict[str, Any], container: dict[str, Any]) -> None:
    context = container["securityContext"]
    assert (context.get("runAsNonRoot") or pod.get("securityContext", {}).get("runAsNonRoot")) is True
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]


def assert_rbac(items: list[dict[str, Any]], subject: str) -> None:
    """One Role in the namespace: the verbs the code uses, on the objects it uses them on; nothing cluster-wide."""
    (role,) = by_kind(items, "Role")
    rules = {(tuple(r["resources"]), tuple(r.get("resourceNames", ()))): sorted(r["verbs"]) for r in role["rules"]}
    assert rules == {
        (("configmaps",), ("higress-ops-config",)): ["get", "list", "watch"],  # get, then watch (list + fieldSelector)
        (("secrets",), (SECRET,)): ["get"],  # the Redis password: read, never listed or watched
        (("pods",), ()): ["get", "list"],  # gateway and controller pods
        (("pods/portforward",), ()): ["create"],  # istioctl's way to their admin ports
    }
    assert all(r["apiGroups"] == [""] for r in role["rules"])
    (binding,) = by_kind(items, "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert [(s["kind"], s["name"]) for s in binding["subjects"]] == [("ServiceAccount", subject)]
    # Cluster-wide: only --auth kubernetes's TokenReviews and SubjectAccessReviews, through the built-in role.
    assert not by_kind(items, "ClusterRole")
    (delegator,) = by_kind(items, "ClusterRoleBinding")
    assert delegator["roleRef"]["name"] == "system:auth-delegator"
    assert [(s["kind"], s["name"], s["namespace"]) for s in delegator["subjects"]] == [
        ("ServiceAccount", subject, "higress-system")]


def assert_references_exist(items: list[dict[str, Any]], container: dict[str, Any]) -> None:
    """The ConfigMap the server reads, the Redis it names and the Secret name all line up with what is rendered;
    the Secret is the one object the operator creates (its command is in the overlay and in docs/deploy.md)."""
    configmap = named(items, "ConfigMap", arg(container, "--configmap"))
    config = load_text(configmap["data"][arg(container, "--key")], source="shipped ConfigMap")
    assert config.redis is not None and config.redis.password_secret is not None
    assert config.redis.address.split(":")[0] in {s["metadata"]["name"] for s in by_kind(items, "Service")}
    assert config.redis.password_secret.name == SECRET
    redis = named(items, "Deployment", "higress-ops-redis")
    (env,) = redis["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env["valueFrom"]["secretKeyRef"]["name"] == SECRET
    assert f"create secret generic {SECRET}" in (DEPLOY / "redis" / "redis.yaml").read_text()
    assert f"create secret generic {SECRET}" in (REPO / "docs" / "deploy.md").read_text()
    server = config.servers[0].config
    assert PodFleet.of(server, "gateways").access == "portforward"  # Envoy's admin API is on the pod's loopback
    assert PodFleet.of(server, "istiods").access == "portforward"
    assert {o["metadata"].get("namespace") for o in items if o["kind"] != "ClusterRoleBinding"} == {"higress-system"}


def test_standalone_overlay() -> None:
    items = render("standalone")
    validate_all(items)
    deployment = named(items, "Deployment", "higress-ops")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] >= 2 and pod["serviceAccountName"] == "higress-ops"
    container = ops_container(deployment)
    assert_locked_down(pod, container)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": int(arg(container, "--port")), "admin": int(arg(container, "--admin-port"))}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}  # its own pods only
    assert container["args"][:2] == ["serve", "--kube"] and "--wait-for-config" in container["args"]
    assert arg(container, "--auth") == "kubernetes"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == str(ports["admin"])
    (pdb,) = by_kind(items, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    redis = named(items, "Deployment", "higress-ops-redis")
    assert_locked_down(redis["spec"]["template"]["spec"], redis["spec"]["template"]["spec"]["containers"][0])
    assert_rbac(items, "higress-ops")
    assert_references_exist(items, container)


def test_sidecar_overlay_never_takes_the_gateway_down() -> None:
    items = render("sidecar")
    validate_all(items)
    assert_rbac(items, "higress-gateway")
    assert not [d for d in by_kind(items, "Deployment") if d["metadata"]["name"] == "higress-gateway"]
    gateway = patched_gateway()
    kubernetes_validate.validate(gateway, K8S, strict=True)
    template = gateway["spec"]["template"]
    pod = template["spec"]
    assert sorted(c["name"] for c in pod["containers"]) == ["higress-gateway", "higress-ops"]
    container = ops_container(gateway)
    assert_locked_down(pod, container)
    assert_references_exist(items, container)
    # Its readiness is its own process: /healthz, never /readyz, which a Redis outage fails.
    port, admin = int(arg(container, "--port")), int(arg(container, "--admin-port"))
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": admin}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": admin}
    assert "--wait-for-config" in container["args"]  # a missing or broken ConfigMap/Secret: no crash loop
    assert arg(container, "--auth") == "kubernetes"
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in container["env"]
    gateway_ports = {p["containerPort"] for c in pod["containers"] if c["name"] != "higress-ops" for p in c["ports"]}
    assert not {port, admin} & (gateway_ports | {15000, 15020, 15021, 15090})
    # The gateway keeps Higress's own scrape of 15020; the sidecar is scraped through its Service's annotations.
    assert template["metadata"]["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": "15020",
                                                   "prometheus.io/path": "/stats/prometheus"}
    service = named(items, "Service", "higress-ops")
    assert service["metadata"]["annotations"]["prometheus.io/port"] == str(admin)
    assert service["spec"]["selector"] == {"app": "higress-gateway"}
    named_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert {named_ports[p["targetPort"]] for p in service["spec"]["ports"]} == {port, admin}


def test_the_higress_side_is_only_a_route() -> None:
    """Nothing in deploy/ replaces higress-config: the gateway's MCP filter would answer any path its mcpServer
    block names, so this server's block lives in its own ConfigMap and the gateway only routes to it."""
    (ingress,) = objects((DEPLOY / "higress" / "ingress.yaml").read_text())
    validate_all([ingress])
    path = ingress["spec"]["rules"][0]["http"]["paths"][0]
    assert ingress["spec"]["ingressClassName"] == "higress" and path["path"] == "/higress-ops"
    assert path["backend"]["service"] == {"name": "higress-ops", "port": {"number": 8080}}
    every = [o for f in DEPLOY.rglob("*.yaml") if f.name != "kustomization.yaml" for o in objects(f.read_text())]
    assert not [o for o in every if o.get("kind") == "ConfigMap" and o["metadata"]["name"] == "higress-config"]
    for overlay in ("standalone", "sidecar"):
        assert "higress-config" not in {o["metadata"]["name"] for o in render(overlay)}


def test_dockerfile_runs_as_non_root_from_a_multi_stage_build() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert text.count("FROM ") >= 2
    user = [line for line in text.splitlines() if line.startswith("USER ")]
    assert user and not user[-1].split()[1].startswith(("root", "0"))
    assert '"serve", "--kube"' in text and '"higress-ops-config"' in text


@pytest.mark.parametrize("path", sorted(p.relative_to(DEPLOY).as_posix() for p in DEPLOY.rglob("*.yaml")))
def test_every_yaml_parses(path: str) -> None:
    assert objects((DEPLOY / path).read_text())


def test_the_example_client_binding_grants_exactly_the_right_the_server_checks() -> None:
    items = objects((DEPLOY / "examples" / "mcp-client-rbac.yaml").read_text())
    validate_all(items)
    (role,) = by_kind(items, "Role")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["create"]}]
    container = ops_container(named(render("standalone"), "Deployment", "higress-ops"))
    assert arg(container, "--auth") == "kubernetes" and "--auth-verb" not in container["args"]  # the defaults:
    from higress_ops.auth.kubernetes import Right

    default = Right()
    assert (default.verb, default.resource, default.subresource) == ("create", "pods", "portforward")
    assert role["metadata"]["namespace"] == default.namespace == "higress-system"
