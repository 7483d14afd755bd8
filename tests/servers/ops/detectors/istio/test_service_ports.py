"""istio-service-port-names: a port of a Service this gateway routes to whose name Istio cannot read (IST0118)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_a_port_named_outside_the_convention(findings, world) -> None:
    [f] = await findings("istio-service-port-names")
    assert f["object"] == "Service shop/inventory" and f["code"] == "IST0118" and f["severity"] == "info"
    target = world.gateway.ports["inventory"]  # the target port istiod's endpoints use
    assert f["message"] == (f"Port name web (port: 80, targetPort: {target}) doesn't follow the naming convention "
                            "of Istio port.")
    assert f["fix"].startswith("name spec.ports[0] <protocol>[-suffix]")
