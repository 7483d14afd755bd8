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
from higress_ops.servers.ops.kubeapi import KINDS

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = "1.30.0"
KUBECTL = shutil.which("kubectl")
SECRET = "higress-ops-redis"  # the one object an operator creates first (a password has no place in git)


def objects(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


CHART_GATEWAY = Path(__file__).parent / "higress-gateway.yaml"  # the Helm chart's gateway Deployment, rendered


def render(overlay: str, deploy: Path = DEPLOY) -> list[dict[str, Any]]:
    assert KUBECTL is not None, "kubectl renders the overlays as an operator does (the machine image ships it)"
    return objects(subprocess.run([KUBECTL, "kustomize", str(deploy / "overlays" / overlay)], check=True,
                                  capture_output=True, text=True, timeout=60).stdout)


def patched_gateway(workload: Path = CHART_GATEWAY) -> dict[str, Any]:
    """`kubectl patch --type strategic` of the sidecar patch onto a gateway workload, as the operator runs it."""
    assert KUBECTL is not None
    out = subprocess.run([KUBECTL, "patch", "--local", "-f", str(workload), "--type", "strategic", "--patch-file",
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
    """One Role in the namespace: the verbs the code uses, on the objects it uses them on; the object reads'
    ClusterRole bound in the namespace only; nothing cluster-wide but the review rights."""
    (role,) = by_kind(items, "Role")
    rules = {(tuple(r["resources"]), tuple(r.get("resourceNames", ()))): sorted(r["verbs"]) for r in role["rules"]}
    assert rules == {
        (("configmaps",), ("higress-ops-config",)): ["get", "list", "watch"],  # get, then watch (list + fieldSelector)
        (("secrets",), (SECRET,)): ["get"],  # the Redis password: read, never listed or watched
        (("pods",), ()): ["get", "list"],  # gateway and controller pods
        (("pods/portforward",), ()): ["create"],  # istioctl's way to their admin ports
    }
    assert all(r["apiGroups"] == [""] for r in role["rules"])
    bindings = {b["metadata"]["name"]: b for b in by_kind(items, "RoleBinding")}
    assert set(bindings) == {"higress-ops", "higress-ops-objects"}
    assert bindings["higress-ops"]["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                  "name": role["metadata"]["name"]}
    for binding in bindings.values():
        assert [(s["kind"], s["name"]) for s in binding["subjects"]] == [("ServiceAccount", subject)]
    # The object reads: exactly the kinds and verbs of kubeapi.KINDS, never a Secret, granted by a RoleBinding only.
    (objects,) = by_kind(items, "ClusterRole")
    assert bindings["higress-ops-objects"]["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                                          "kind": "ClusterRole", "name": objects["metadata"]["name"]}
    granted = {(g, res, verb) for r in objects["rules"] for g in r["apiGroups"] for res in r["resources"]
               for verb in r["verbs"]}
    assert granted == {(k.group, k.plural, verb) for k in KINDS.values() for verb in k.verbs}
    assert not any("secrets" in r["resources"] or "resourceNames" in r for r in objects["rules"])
    # Cluster-wide: only --auth kubernetes's TokenReviews and SubjectAccessReviews, through the built-in role.
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
    # The object reads are bound in every namespace the server reads objects in, and in no other.
    bound = {b["metadata"]["namespace"] for b in by_kind(items, "RoleBinding") if b["metadata"]["name"] ==
             "higress-ops-objects"}
    assert bound == set(server["kubernetes"]["namespaces"]) == {"higress-system"}
    assert {o["metadata"].get("namespace") for o in items
            if o["kind"] not in ("ClusterRoleBinding", "ClusterRole")} == {"higress-system"}


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
    assert arg(container, "--auth") == "kubernetes" and arg(container, "--auth-audience") == "higress-ops"
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
    assert arg(container, "--auth") == "kubernetes" and arg(container, "--auth-audience") == "higress-ops"
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in container["env"]
    gateway_ports = {p["containerPort"] for c in pod["containers"] if c["name"] != "higress-ops" for p in c["ports"]}
    assert not {port, admin} & (gateway_ports | {15000, 15020, 15021, 15090})
    # The gateway keeps Higress's own scrape of 15020; the sidecar is scraped through its Service's annotations.
    original = yaml.safe_load(CHART_GATEWAY.read_text())["spec"]["template"]["metadata"]["annotations"]
    assert template["metadata"]["annotations"] == {**original,
                                                   "kubectl.kubernetes.io/default-container": "higress-gateway"}
    service = named(items, "Service", "higress-ops")
    assert service["metadata"]["annotations"]["prometheus.io/port"] == str(admin)
    assert service["spec"]["selector"] == {"app": "higress-gateway"}
    named_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert [named_ports[p["targetPort"]] for p in service["spec"]["ports"]] == [port]  # never the admin port


def test_the_higress_side_is_only_a_route() -> None:
    """Nothing in deploy/ replaces higress-config: the gateway's MCP filter would answer any path its mcpServer
    block names, so this server's block lives in its own ConfigMap and the gateway only routes to it: on a host,
    over TLS, without a route timeout that would cut SSE streams."""
    (ingress,) = objects((DEPLOY / "higress" / "ingress.yaml").read_text())
    validate_all([ingress])
    rule = ingress["spec"]["rules"][0]
    path = rule["http"]["paths"][0]
    assert ingress["spec"]["ingressClassName"] == "higress" and path["path"] == "/higress-ops"
    assert ingress["spec"]["tls"] == [{"hosts": [rule["host"]], "secretName": "higress-ops-tls"}]
    annotations = ingress["metadata"]["annotations"]
    assert "higress.io/timeout" not in annotations and annotations["higress.io/ssl-redirect"] == "true"
    assert path["backend"]["service"] == {"name": "higress-ops", "port": {"number": 8080}}
    every = [o for f in DEPLOY.rglob("*.yaml") if f.name != "kustomization.yaml" for o in objects(f.read_text())]
    assert not [o for o in every if o.get("kind") == "ConfigMap" and o["metadata"]["name"] == "higress-config"]
    for overlay in ("standalone", "sidecar"):
        assert "higress-config" not in {o["metadata"]["name"] for o in render(overlay)}


def image_command() -> list[str]:
    """The Dockerfile's CMD, the arguments of a container that names none."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", "")
    (line,) = [line for line in text.splitlines() if line.startswith("CMD ")]
    return list(yaml.safe_load(line[4:]))


def test_dockerfile_runs_as_non_root_from_a_multi_stage_build() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert text.count("FROM ") >= 2
    user = [line for line in text.splitlines() if line.startswith("USER ")]
    assert user and not user[-1].split()[1].startswith(("root", "0"))
    command = image_command()
    assert command[:2] == ["serve", "--kube"] and arg({"args": command}, "--configmap") == "higress-ops-config"
    assert arg({"args": command}, "--host") == "0.0.0.0" and arg({"args": command}, "--auth") == "kubernetes"


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


def chart_variant(tmp: Path, kind: str, *, host_network: bool = False, promtail: bool = False) -> Path:
    """The chart's gateway as gateway.kind DaemonSet, gateway.hostNetwork or global.o11y (a promtail container)
    render it: the same pod template, other workload fields."""
    gateway = yaml.safe_load(CHART_GATEWAY.read_text())
    gateway["kind"] = kind
    if kind == "DaemonSet":
        for field in ("replicas", "strategy"):
            gateway["spec"].pop(field)
    pod = gateway["spec"]["template"]["spec"]
    if host_network:
        pod.update(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet")
    if promtail:
        pod["containers"].append({"name": "promtail", "image": "higress/promtail:2.9.4",
                                  "args": ["-config.file=/etc/promtail/promtail.yaml"]})
    path = tmp / f"{kind}-{host_network}-{promtail}.yaml"
    path.write_text(yaml.safe_dump(gateway))
    return path


@pytest.mark.parametrize(("kind", "host_network", "promtail"), [
    ("Deployment", False, False), ("DaemonSet", False, False), ("Deployment", True, True), ("DaemonSet", True, False)])
def test_the_sidecar_patch_on_the_charts_gateway_keeps_the_gateway_container_first(
        tmp_path: Path, kind: str, host_network: bool, promtail: bool) -> None:
    source = chart_variant(tmp_path, kind, host_network=host_network, promtail=promtail)
    before = yaml.safe_load(source.read_text())
    after = patched_gateway(source)
    kubernetes_validate.validate(after, K8S, strict=True)
    pod, was = after["spec"]["template"]["spec"], before["spec"]["template"]["spec"]
    names = [c["name"] for c in pod["containers"]]
    assert names == ["higress-gateway", "higress-ops", *(["promtail"] if promtail else [])]
    assert pod["containers"][0] == was["containers"][0]  # the gateway container itself is untouched
    assert after["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"] == \
        "higress-gateway"
    assert after["spec"]["template"]["metadata"]["labels"] == before["spec"]["template"]["metadata"]["labels"]
    assert [v for v in pod["volumes"] if v["name"] != "higress-ops-tmp"] == was["volumes"]  # order irrelevant here
    assert {k: v for k, v in after["spec"].items() if k != "template"} == \
        {k: v for k, v in before["spec"].items() if k != "template"}
    sidecar = ops_container(after)
    assert arg(sidecar, "--host") == "$(HIGRESS_OPS_BIND)"  # Kubernetes expands it from the container's env
    assert {"name": "HIGRESS_OPS_BIND", "value": "0.0.0.0"} in sidecar["env"]


def test_the_gateways_name_labels_and_account_are_settings(tmp_path: Path) -> None:
    """gateway.env is the one place: the Service, RoleBinding and ClusterRoleBinding follow it."""
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    env = copy / "overlays" / "sidecar" / "gateway.env"
    env.write_text(env.read_text().replace("GATEWAY_APP_LABEL=higress-gateway", "GATEWAY_APP_LABEL=edge-gw")
                   .replace("GATEWAY_SERVICE_ACCOUNT=higress-gateway", "GATEWAY_SERVICE_ACCOUNT=edge-sa"))
    items = render("sidecar", copy)
    assert named(items, "Service", "higress-ops")["spec"]["selector"] == {"app": "edge-gw"}
    assert_rbac(items, "edge-sa")
    assert not [o for o in items if o["metadata"]["name"] == "higress-ops-gateway-settings"]  # never applied
    shipped = dict(line.split("=", 1) for line in (DEPLOY / "overlays" / "sidecar" / "gateway.env").read_text()
                   .splitlines() if line and not line.startswith("#"))
    assert shipped["GATEWAY_KIND"] in ("Deployment", "DaemonSet")
    chart = yaml.safe_load(CHART_GATEWAY.read_text())  # the defaults are the chart's own
    assert (chart["kind"], chart["metadata"]["name"], chart["spec"]["template"]["metadata"]["labels"]["app"],
            chart["spec"]["template"]["spec"]["serviceAccountName"]) == (
        shipped["GATEWAY_KIND"], shipped["GATEWAY_NAME"], shipped["GATEWAY_APP_LABEL"],
        shipped["GATEWAY_SERVICE_ACCOUNT"])
    config = load_text(named(render("sidecar"), "ConfigMap", "higress-ops-config")["data"]["higress"])
    assert PodFleet.of(config.servers[0].config, "gateways").selector == f"app={shipped['GATEWAY_APP_LABEL']}"


def test_the_mcp_port_only_from_the_gateway_and_the_admin_port_only_from_monitoring() -> None:
    for overlay in ("standalone", "production"):
        items = render(overlay)
        (policy,) = by_kind(items, "NetworkPolicy")
        container = ops_container(named(items, "Deployment", "higress-ops"))
        assert policy["spec"]["podSelector"] == {"matchLabels": {"app": "higress-ops"}}
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        rules = {rule["ports"][0]["port"]: rule["from"] for rule in policy["spec"]["ingress"]}
        assert rules == {
            int(arg(container, "--port")): [{"podSelector": {"matchLabels": {"app": "higress-gateway"}}}],
            int(arg(container, "--admin-port")): [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        }


def test_production_runs_sentinel_and_the_config_points_at_it() -> None:
    items = render("production")
    validate_all(items)
    assert not [o for o in items if o["metadata"]["name"] == "higress-ops-redis" and o["kind"] != "Secret"
                and o["kind"] in ("Deployment", "Service")]  # the development Redis is gone
    redis, sentinel = named(items, "StatefulSet", "higress-ops-redis"), named(items, "StatefulSet",
                                                                               "higress-ops-sentinel")
    assert redis["spec"]["replicas"] == 3 and sentinel["spec"]["replicas"] == 3  # a master, two replicas; 3 sentinels
    pdbs = {p["spec"]["selector"]["matchLabels"]["app"]: p["spec"] for p in by_kind(items, "PodDisruptionBudget")}
    assert pdbs["higress-ops-redis"]["maxUnavailable"] == 1 and pdbs["higress-ops-sentinel"]["maxUnavailable"] == 1
    assert pdbs["higress-ops"]["minAvailable"] == 1
    for workload in (redis, sentinel):
        pod = workload["spec"]["template"]["spec"]
        for container in pod["containers"] + pod["initContainers"]:
            assert_locked_down(pod, container)
            image = container["image"]
            assert ":" in image and not image.endswith((":latest", ":7", ":7-alpine"))  # an exact version
            text = yaml.safe_dump(container)
            assert "requirepass" not in " ".join(container.get("command", []))
            assert "secretKeyRef" not in text  # the password is a mounted file, not an env var or an argument
        (main,) = pod["containers"]
        assert main["readinessProbe"] and main["livenessProbe"]
        assert {"name": "password", "mountPath": "/run/secrets/redis", "readOnly": True} in main["volumeMounts"]
        assert any(v.get("secret", {}).get("secretName") == SECRET for v in pod["volumes"])
    config = load_text(named(items, "ConfigMap", "higress-ops-config")["data"]["higress"])
    shipped = load_text(named(render("standalone"), "ConfigMap", "higress-ops-config")["data"]["higress"])
    assert config.servers == shipped.servers  # only the sessions' Redis differs
    assert_rbac(items, "higress-ops")
    assert config.redis is not None and config.redis.mode == "sentinel" and config.redis.master_name == "higress-ops"
    headless = sentinel["spec"]["serviceName"]
    assert list(config.redis.addresses) == [f"higress-ops-sentinel-{i}.{headless}:26379" for i in range(3)]
    script = sentinel["spec"]["template"]["spec"]["initContainers"][0]["args"][0]
    assert 'echo "sentinel monitor higress-ops ${master} 6379 2"' in script
    assert config.redis.password_secret is not None and config.redis.password_secret.name == SECRET
    assert config.redis.sentinel_auth.password_secret is not None
    assert ops_container(named(items, "Deployment", "higress-ops"))["readinessProbe"]["httpGet"]["path"] == "/readyz"
