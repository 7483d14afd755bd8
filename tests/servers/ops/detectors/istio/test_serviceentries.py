"""istio-serviceentries: TCP ports without addresses (IST0134), one host and port with two protocols (IST0177)."""

from __future__ import annotations

import pytest

from tests.support.lint_world import about

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_addresses_and_protocols(findings) -> None:
    found = await findings("istio-serviceentries")
    [db] = about(found, "ServiceEntry shop/ext-db", "IST0134")
    assert db["message"] == "ServiceEntry addresses are required for this protocol."
    assert db["evidence"] == ["spec.ports[0]: 5432 TCP; hosts db.partner.example"]
    conflicts = [f for f in found if f["code"] == "IST0177"]
    assert {f["object"] for f in conflicts} == {"ServiceEntry shop/api-a", "ServiceEntry shop/api-b"}
    assert conflicts[0]["message"] == ('Multiple ServiceEntries (shop/api-a, shop/api-b) define the same host '
                                       '"api.partner.example" and port 443 with conflicting protocols (HTTPS, TLS).')
    assert not about(found, "ServiceEntry shop/edge")  # HTTPS needs no address
