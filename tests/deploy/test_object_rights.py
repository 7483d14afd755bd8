"""The object reads' RBAC of deploy/ is what the code needs: with exactly the rights the rendered ClusterRole
grants (through RoleBindings in the namespaces read), describe-cluster and what-changed read every object without
a refusal on the shop scenario; with any one right taken away, the answer names that right."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from higress_ops import kube
from higress_ops.config.model import ServerEntry
from higress_ops.servers.base import CallContext
from higress_ops.servers.ops import OpsServer
from tests.deploy.test_manifests import by_kind, render
from tests.support import shop as s
from tests.support.shop_world import ShopWorld, shop_world

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopWorld]:
    with shop_world(tmp_path_factory.mktemp("shop")) as made:
        yield made


def granted() -> set[tuple[str, str]]:
    (role,) = by_kind(render("standalone"), "ClusterRole")
    return {(verb, f"{res}.{group}" if group else res) for r in role["rules"] for group in r["apiGroups"]
            for res in r["resources"] for verb in r["verbs"]}


async def not_read(world: ShopWorld, rights: set[tuple[str, str]]) -> list[str]:
    world.reset()
    world.api.store.rights = {(verb, res, ns) for verb, res in rights for ns in (s.NS, s.HIGRESS)}
    kube.use(kubeconfig=str(world.kubeconfig))
    server = OpsServer(ServerEntry(name="ops", path="/higress-ops", type="higress-ops", config=world.config()))
    try:
        gaps: list[str] = []
        for tool, args in (("describe-cluster", {"cluster": s.CART_80}), ("describe-cluster", {"cluster": s.LEGACY_80}),
                           ("what-changed", {"minutes": 600})):
            result = await server.call_tool(tool, args, CallContext())
            assert not result.is_error
            gaps += result.structured["not_read"]
        return gaps
    finally:
        await server.aclose()
        kube.use()


async def test_the_shipped_rights_are_enough(world: ShopWorld) -> None:
    assert await not_read(world, granted()) == []


async def test_each_right_is_needed_and_its_absence_is_named(world: ShopWorld) -> None:
    for right in sorted(granted()):
        gaps = await not_read(world, granted() - {right})
        verb, resource = right
        assert any(g.startswith(f"forbidden to {verb} {resource} in namespace ") for g in gaps), (right, gaps)
