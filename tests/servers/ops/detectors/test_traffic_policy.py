"""traffic-policy-risk on the lint world's real Envoy: outlier detection that may eject every host with panic mode
off, and circuit breakers of one or two requests, named on the DestinationRules behind them."""

from __future__ import annotations

import pytest

from higress_ops.servers.base import CallContext
from tests.support.lint_world import CLUSTERS, World, about

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_policies_that_fail_at_the_first_blip(world: World, make_server) -> None:
    server = make_server(world.gateway.admin_url, "http://127.0.0.1:9")  # what Envoy holds is the evidence
    result = await server.call_tool("analyze", {"detectors": ["traffic-policy-risk"]}, CallContext())
    found = result.structured["findings"]
    [eject] = about(found, "DestinationRule shop/cart")
    assert eject["severity"] == "warning" and eject["related"] == [f"cluster {CLUSTERS['cart']}"]
    assert eject["message"].startswith(f"outlier detection can eject all 1 host(s) of {CLUSTERS['cart']} "
                                       "(max_ejection_percent 100%, at least one host) for 1800s")
    assert eject["evidence"] == ["outlier_detection: consecutive_5xx 1, interval 5s, base_ejection_time 1800s, "
                                 "max_ejection_percent 100", "hosts 1, healthy_panic_threshold 0%"]
    [pool] = about(found, "DestinationRule shop/catalog")
    assert pool["message"] == (f"circuit breakers of {CLUSTERS['catalog']} let through only max_pending_requests 1, "
                               "max_requests 2: a burst past them gets 503 UO")
    assert pool["fix"] == ("raise connectionPool.http.http1MaxPendingRequests, connectionPool.http.http2MaxRequests "
                           "to what the backend takes at peak")
    assert len(found) == 2  # Envoy's defaults (1024, panic 50%) elsewhere
