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

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = "1.30.0"
KUBECTL = shutil.which("kubectl")


def objects(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render(overlay: str) -> list[dict[str, Any]]:
    """`kubectl kustomize` when kubectl is installed; else the overlay's files as they are (still validated)."""
    directory = DEPLOY / "overlays" / overlay
    if KUBECTL:
        return objects(subprocess.run([KUBECTL, "kustomize", str(directory)], check=True, capture_output=True,
                                      text=True, timeout=60).stdout)
    files = [*directory.glob("*.yaml"), *(DEPLOY / "base").glob("*.yaml"), *(DEPLOY / "rbac").glob("*.yaml")]
    return [o for f in files if f.name != "kustomization.yaml" and f.name != "gateway-patch.yaml"
            for o in objects(f.read_text()) if "kind" in o]


def patched_gateway() -> dict[str, Any]:
    gateway = yaml.safe_load((Path(__file__).parent / "higress-gateway.yaml").read_text())
    patch = yaml.safe_load((DEPLOY / "overlays" / "sidecar" / "gateway-patch.yaml").read_text())
    if KUBECTL:
        out = subprocess.run([KUBECTL, "patch", "--local", "-f", str(Path(__file__).parent / "higress-gateway.yaml"),
                              "--type", "strategic", "--patch-file",
                              str(DEPLOY / "overlays" / "sidecar" / "gateway-patch.yaml"), "-o", "yaml"],
                             check=True, capture_output=True, text=True, timeout=60).stdout
        return yaml.safe_load(out)
    spec = gateway["spec"]["template"]["spec"]  # the strategic merge of a new container and volume, by hand
    spec["containers"] += patch["spec"]["template"]["spec"]["containers"]
    spec["volumes"] = spec.get("volumes", []) + patch["spec"]["template"]["spec"]["volumes"]
    gateway["spec"]["template"]["metadata"].setdefault("annotations", {}).update(
        patch["spec"]["template"]["metadata"]["annotations"])
    return gateway


def by_kind(items: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in items if o["kind"] == kind]


def validate_all(items: list[dict[str, Any]]) -> None:
    for obj in items:
        kubernetes_validate.validate(obj, K8S, strict=True)


def ops_container(deployment: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "higress-ops")


def assert_locked_down(pod: dict[str, Any], container: dict[str, Any]) -> None:
    context = container["securityContext"]
    assert (context.get("runAsNonRoot") or pod.get("securityContext", {}).get("runAsNonRoot")) is True
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]


def assert_probes(container: dict[str, Any]) -> None:
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def assert_narrow_rbac(items: list[dict[str, Any]]) -> None:
    (role,) = by_kind(items, "Role")
    assert {(tuple(r["resources"]), tuple(r["resourceNames"])) for r in role["rules"]} == {
        (("configmaps",), ("higress-config",)), (("secrets",), ("higress-ops-redis",))}
    assert all(set(r["verbs"]) <= {"get", "list", "watch"} and r["apiGroups"] == [""] for r in role["rules"])
    assert not by_kind(items, "ClusterRole") and not by_kind(items, "ClusterRoleBinding")


def test_standalone_overlay() -> None:
    items = render("standalone")
    validate_all(items)
    (deployment,) = [d for d in by_kind(items, "Deployment") if d["metadata"]["name"] == "higress-ops"]
    pod = deployment["spec"]["template"]["spec"]
    assert (deployment["spec"]["replicas"] >= 2) if KUBECTL else True
    assert pod["serviceAccountName"] == "higress-ops"
    container = ops_container(deployment)
    assert_locked_down(pod, container)
    assert_probes(container)
    assert container["args"][:2] == ["serve", "--kube"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
    (pdb,) = by_kind(items, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    redis = next(d for d in by_kind(items, "Deployment") if d["metadata"]["name"] == "higress-ops-redis")
    assert_locked_down(redis["spec"]["template"]["spec"], redis["spec"]["template"]["spec"]["containers"][0])
    assert_narrow_rbac(items)
    if KUBECTL:
        assert {o["metadata"]["namespace"] for o in items} == {"higress-system"}


def test_sidecar_overlay_and_gateway_patch() -> None:
    items = render("sidecar")
    validate_all(items)
    assert_narrow_rbac(items)
    (binding,) = by_kind(items, "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "higress-gateway"}]
    gateway = patched_gateway()
    kubernetes_validate.validate(gateway, K8S, strict=True)
    pod = gateway["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["higress-gateway", "higress-ops"] or \
        sorted(c["name"] for c in pod["containers"]) == ["higress-gateway", "higress-ops"]
    container = ops_container(gateway)
    assert_locked_down(pod, container)
    assert_probes(container)


def test_the_higress_side() -> None:
    (configmap,) = objects((DEPLOY / "higress" / "higress-config.yaml").read_text())
    (ingress,) = objects((DEPLOY / "higress" / "ingress.yaml").read_text())
    validate_all([configmap, ingress])
    config = load_text(configmap["data"]["higress"], source="deploy/higress/higress-config.yaml")
    assert config.match_list[0].path == "/higress-ops" and config.servers[0].type == "higress-ops"
    assert config.servers[0].config["envoyAdminURL"] == "http://127.0.0.1:15000"
    assert config.redis is not None and config.redis.password_secret is not None
    assert config.redis.password_secret.name == "higress-ops-redis"  # the one Secret the Role may read
    path = ingress["spec"]["rules"][0]["http"]["paths"][0]
    assert ingress["spec"]["ingressClassName"] == "higress" and path["path"] == "/higress-ops"
    assert path["backend"]["service"] == {"name": "higress-ops", "port": {"number": 8080}}


def test_dockerfile_runs_as_non_root_from_a_multi_stage_build() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 2 or text.count("FROM ") >= 2
    user = [line for line in text.splitlines() if line.startswith("USER ")]
    assert user and not user[-1].split()[1].startswith(("root", "0"))
    assert '"serve", "--kube"' in text


@pytest.mark.parametrize("path", sorted(p.relative_to(DEPLOY).as_posix() for p in DEPLOY.rglob("*.yaml")))
def test_every_yaml_parses(path: str) -> None:
    assert objects((DEPLOY / path).read_text())
