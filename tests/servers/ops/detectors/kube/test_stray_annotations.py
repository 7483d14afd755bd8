"""stray-annotations on the shop scenario: nginx annotations Higress does not read, Higress's own under the wrong
prefix, canary settings it ignores, Ingress annotations on a Service, and Istio's annotations as istioctl checks
them (IST0107, IST0108, IST0135)."""

from __future__ import annotations

import pytest

from tests.support import shop as s
from tests.support.lint_world import about

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def _edit(shop, kind: str, name: str, annotations: dict[str, str], labels: dict[str, str] | None = None) -> None:
    [obj] = [o for o in shop.api.store.items(kind, s.NS) if o["metadata"]["name"] == name]
    obj["metadata"]["annotations"] = {**obj["metadata"].get("annotations", {}), **annotations}
    if labels:
        obj["metadata"]["labels"] = {**obj["metadata"].get("labels", {}), **labels}
    shop.api.store.add(obj)


async def test_the_scenario_s_nginx_body_size_does_nothing(lint) -> None:
    """shop/cart carries nginx.ingress.kubernetes.io/proxy-body-size: Higress reads no such annotation; its
    higress.io/timeout is read, kubectl's last-applied-configuration is nobody's business here."""
    [f] = await lint("stray-annotations")
    assert f["object"] == "Ingress shop/cart" and f["severity"] == "warning" and "code" not in f
    assert f["message"] == ("Higress does not read nginx.ingress.kubernetes.io/proxy-body-size: the Ingress is "
                            "accepted without it")


async def test_wrong_prefix_canary_and_misplaced(shop, lint) -> None:
    _edit(shop, "Ingress", "catalog", {"nginx.ingress.kubernetes.io/timeout": "3",
                                       "higress.io/canary-weight": "20",
                                       "higress.io/exact-match-header-x-user": "beta"})
    _edit(shop, "Service", "catalog", {"nginx.ingress.kubernetes.io/backend-protocol": "GRPC",
                                       "sidecar.istio.io/proxyCPU": "200m", "networking.istio.io/exportTo": "."})
    _edit(shop, "Pod", "cart-1", {"sidecar.istio.io/inject": "false", "sidecar.istio.io/stats": "x"})
    found = {(f["object"], f.get("code", ""), f["message"]) for f in await lint("stray-annotations")}
    assert found == {
        ("Ingress shop/cart", "", "Higress does not read nginx.ingress.kubernetes.io/proxy-body-size: the Ingress is "
                                  "accepted without it"),
        ("Ingress shop/catalog", "", "Higress reads timeout only as higress.io/timeout: "
                                     "nginx.ingress.kubernetes.io/timeout has no effect"),
        ("Ingress shop/catalog", "", 'canary settings (canary-weight) without canary: "true": Higress ignores them '
                                     "and routes this Ingress as a normal one"),
        ("Service shop/catalog", "", "nginx.ingress.kubernetes.io/backend-protocol is an Ingress annotation: Higress "
                                     "reads it only on Ingresses"),
        ("Service shop/catalog", "IST0107", "Misplaced annotation: sidecar.istio.io/proxyCPU can only be applied to "
                                            "Pod"),
        ("Pod shop/cart-1", "IST0108", "Unknown annotation: sidecar.istio.io/stats"),
        ("Pod shop/cart-1", "IST0135", 'Annotation "sidecar.istio.io/inject" has been deprecated in favor of the '
                                       '"sidecar.istio.io/inject" label and may not work in future Istio versions.'),
    }  # higress.io/exact-match-header-x-user is a route match; networking.istio.io/exportTo belongs on a Service


async def test_canary_settings_higress_ignores(shop, lint) -> None:
    _edit(shop, "Ingress", "catalog", {"higress.io/canary": "true", "higress.io/canary-by-header-value": "always",
                                       "higress.io/canary-by-header": "x-canary", "higress.io/canary-weight": "10"})
    [f] = about(await lint("stray-annotations"), "Ingress shop/catalog")
    assert f["message"] == "canary-by-header-value decides the canary: Higress ignores canary-weight when it is set"
