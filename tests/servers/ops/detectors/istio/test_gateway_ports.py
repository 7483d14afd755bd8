"""istio-gateway-ports: a Gateway server on a port the gateway's Service does not expose (IST0162)."""

from __future__ import annotations

import pytest

from tests.support.istio_objects import GEN, clean_host
from tests.support.lint_world import HIGRESS, HOST, about

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_a_server_port_the_gateway_service_lacks(findings) -> None:
    found = await findings("istio-gateway-ports")
    [f] = about(found, "Gateway shop/extra-port", "IST0162")
    assert f["severity"] == "warning"
    assert f["message"].startswith("The gateway is listening on a target port (port 8443) that is not defined in the "
                                   "Service associated with its workload instances (Pod selector "
                                   "higress=higress-system-higress-gateway).")
    # The Service and its target ports come from istiod: registryz's ports, endpointz's EndpointPort per port name.
    assert f["evidence"] == ["Services selecting the gateway pods (port->targetPort, from istiod): "
                             "higress-system/higress-gateway 80->80, 443->443"]
    assert f["related"] == ["Service higress-system/higress-gateway"]


async def test_higress_gateways_on_the_service_ports_are_fine(findings) -> None:
    found = await findings("istio-gateway-ports")
    assert not about(found, f"Gateway {HIGRESS}/{GEN}-{clean_host(HOST)}")
    assert not about(found, "Gateway shop/public-gw")
    assert len(found) == 1
