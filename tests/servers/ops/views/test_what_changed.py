"""what-changed on the shop scenario: the objects changed in a window, newest first, by whom, with the window's
Warning events, from the API-server double (its managedFields are relative to now)."""

from __future__ import annotations

import pytest

from higress_ops.servers.base import CallContext, ToolResult
from higress_ops.servers.ops import OpsServer
from tests.support.shop_world import ShopWorld

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]
CTX = CallContext()


def text(result: ToolResult) -> str:
    return "".join(part["text"] for part in result.content)


def rows(result: ToolResult) -> list[tuple[str, str, str, str]]:
    return [(r["kind"], r["namespace"], r["name"], r["by"]) for r in result.structured["rows"]]


async def test_newest_first_with_who_changed_it(shop_ops: OpsServer) -> None:
    result = await shop_ops.call_tool("what-changed", {"minutes": 30}, CTX)
    assert not result.is_error, text(result)
    assert rows(result) == [("Pod", "shop", "cart-2", "kubelet"),
                            ("EndpointSlice", "shop", "cart-7x2kq", "endpointslice-controller.k8s.io"),
                            ("Service", "shop", "cart", "kubectl-edit"),
                            ("Ingress", "shop", "cart", "kubectl-client-side-apply")]
    assert [r["what"] for r in result.structured["rows"]] == ["status", "object", "object", "object"]
    (warning,) = result.structured["warnings"]
    assert warning["object"] == "Pod shop/cart-2" and warning["reason"] == "Unhealthy"
    shown = text(result)
    assert "Service           shop          cart" in shown and "Warning events in that window:" in shown
    narrow = await shop_ops.call_tool("what-changed", {"minutes": 5, "kinds": ["Service", "Ingress"]}, CTX)
    assert rows(narrow) == [("Service", "shop", "cart", "kubectl-edit")]
    quiet = await shop_ops.call_tool("what-changed", {"minutes": 30, "namespace": "higress-system"}, CTX)
    assert rows(quiet) == [] and "nothing changed." in text(quiet)


async def test_refused_kinds_are_named_and_the_rest_is_listed(shop_ops: OpsServer, shop: ShopWorld) -> None:
    for ns in ("shop", "higress-system"):
        for resource in ("services", "endpointslices.discovery.k8s.io", "ingresses.networking.k8s.io",
                         "wasmplugins.extensions.higress.io", "mcpbridges.networking.higress.io"):
            shop.api.store.grant("list", resource, ns)
    result = await shop_ops.call_tool("what-changed", {"minutes": 30}, CTX)
    assert [r[0] for r in rows(result)] == ["EndpointSlice", "Service", "Ingress"]
    assert "forbidden to list pods in namespace shop" in text(result)
    assert "forbidden to list events in namespace shop" in text(result)


async def test_bad_arguments(shop_ops: OpsServer) -> None:
    for args, message in (({"namespace": "default"}, "must be one of kubernetes.namespaces (shop, higress-system)"),
                          ({"kinds": ["Secret"]}, "'kinds' must name some of"),
                          ({"minutes": 0}, "'minutes' must be an integer from 1")):
        result = await shop_ops.call_tool("what-changed", args, CTX)
        assert result.is_error and message in text(result), text(result)
