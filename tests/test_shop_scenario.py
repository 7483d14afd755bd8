"""The shop scenario (tests/support/shop.py) is what a real cluster would hold: its manifests pass the Kubernetes
1.30 schemas strictly, the API-server double's answers deserialize into the kubernetes client's own models (which
validate strictly), and what istiod says agrees with what the API says."""

from __future__ import annotations

from collections.abc import Iterator

import kubernetes_validate
import pytest
from kubernetes import client

from higress_ops import kube
from higress_ops.servers.ops.objects import istio as ist
from higress_ops.servers.ops.objects import kubernetes as k8s
from higress_ops.servers.ops.objects.inventory import ingresses_from_istio
from tests.support import shop
from tests.support.apiserver import api_server

BUILT_IN = ("Ingress", "Service", "Pod", "EndpointSlice", "Event")


@pytest.mark.parametrize("obj", [o for o in shop.api_objects() if o["kind"] in BUILT_IN],
                         ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_manifests_pass_the_kubernetes_schema_strictly(obj: dict) -> None:
    kubernetes_validate.validate(obj, "1.30.0", strict=True)


@pytest.fixture(scope="module")
def typed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[client.ApiClient]:
    with api_server() as api:
        api.store.add_all(shop.api_objects())
        yield kube.api_client(kubeconfig=str(api.kubeconfig(tmp_path_factory.mktemp("kube") / "config")))


def test_the_doubles_answers_deserialize_into_the_clients_models(typed: client.ApiClient) -> None:
    networking, core, discovery = client.NetworkingV1Api(typed), client.CoreV1Api(typed), client.DiscoveryV1Api(typed)
    ingresses = networking.list_namespaced_ingress("shop", limit=2)
    assert [i.metadata.name for i in ingresses.items] == ["cart", "catalog"] and ingresses.metadata.var_continue
    rest = networking.list_namespaced_ingress("shop", limit=2, _continue=ingresses.metadata.var_continue)
    assert [i.metadata.name for i in rest.items] == ["legacy"] and not rest.metadata.var_continue
    cart = core.read_namespaced_service("cart", "shop")
    assert cart.spec.ports[1].app_protocol == "kubernetes.io/h2c"
    assert cart.metadata.managed_fields[-1].manager == "kubectl-edit"
    pods = core.list_namespaced_pod("shop", label_selector="app=cart")
    assert [p.status.container_statuses[0].restart_count for p in pods.items] == [0, 3]
    (sl,) = discovery.list_namespaced_endpoint_slice("shop", label_selector="kubernetes.io/service-name=cart").items
    assert [e.conditions.ready for e in sl.endpoints] == [True, False]
    (warning,) = core.list_namespaced_event("shop", field_selector="type=Warning,involvedObject.name=cart-2").items
    assert warning.reason == "Unhealthy" and warning.count == 42
    plugins = client.CustomObjectsApi(typed).list_namespaced_custom_object(
        "extensions.higress.io", "v1alpha1", "higress-system", "wasmplugins")
    assert plugins["items"][0]["spec"]["matchRules"][0]["ingress"] == ["shop/cart"]
    with pytest.raises(client.exceptions.ApiException) as missing:
        core.read_namespaced_service("gone", "shop")
    assert missing.value.status == 404
    with pytest.raises(client.exceptions.ApiException) as bad:
        core.list_namespaced_event("shop", field_selector="note=x")
    assert bad.value.status == 400 and "field label not supported" in bad.value.body


def test_istiod_and_the_api_agree() -> None:
    objects = shop.api_objects()
    services = {(o["metadata"]["namespace"], o["metadata"]["name"]): k8s.service(o) for o in objects
                if o["kind"] == "Service"}
    registry = {(s.meta.namespace, s.meta.name): s for s in ist.registry_services(shop.registryz(), shop.endpointz())}
    for key, svc in services.items():
        known = registry[key]
        assert known.host == svc.host and known.selector == svc.selector
        # istiod's protocols are the ones the API's port names and appProtocols give; its target ports are the
        # EndpointSlices' (catalog's targetPort is the container port's name, istiod knows the number)
        assert [(p.name, p.port, p.protocol) for p in known.ports] == [(p.name, p.port, p.protocol) for p in svc.ports]
        slices = [o for o in objects if o["kind"] == "EndpointSlice"
                  and o["metadata"]["labels"]["kubernetes.io/service-name"] == key[1]]
        api_eps = {(e.address, e.port, e.port_name, e.ready) for e in k8s.slice_endpoints(slices)}
        assert api_eps == {(e.address, e.port, e.port_name, e.ready) for e in ist.shard_endpoints(shop.endpointz(),
                                                                                                   svc.host)}
    api_paths = {(o["metadata"]["namespace"], o["metadata"]["name"]): k8s.ingress(o).paths for o in objects
                 if o["kind"] == "Ingress"}
    rebuilt = {(i.meta.namespace, i.meta.name): i.paths
               for i in ingresses_from_istio(ist.configs(shop.configz()), "higress-system")}
    assert rebuilt.keys() == api_paths.keys()
    for key, paths in api_paths.items():  # Higress resolved catalog's port name to its number, and McpBridge's
        assert [(p.host, p.path, p.path_type) for p in rebuilt[key]] == [(p.host, p.path, p.path_type) for p in paths]
        assert [p.service for p in rebuilt[key]] == [p.service for p in paths]


def test_managed_fields_are_relative_to_the_clock() -> None:
    svc = next(o for o in shop.api_objects() if o["kind"] == "Service" and o["metadata"]["name"] == "cart")
    change = k8s.last_change(svc)
    assert change is not None and change.manager == "kubectl-edit" and change.operation == "Update"

