"""analyze's first page stays within 2,000 tokens on a 2,500-route Higress gateway with a thousand findings, and
the pages after it too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from higress_ops.servers.base import CallContext
from higress_ops.servers.ops.views.gateway_health import BUDGET_BYTES
from tests.support import big_lint
from tests.support.envoy import Envoy
from tests.support.istiod import IstiodDouble, istiod_double
from tests.support.procs import free_port

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]
ROUTES = 2500
TOKEN = CallContext(headers={"x-istiod-token": "good-token"})


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Envoy, IstiodDouble]]:
    envoy = Envoy(big_lint.bootstrap(ROUTES, free_port()), tmp_path_factory.mktemp("big-lint")).start(timeout=90)
    try:
        with istiod_double(state=big_lint.istiod_state(ROUTES)) as istiod:
            yield envoy, istiod
    finally:
        envoy.stop()


async def test_the_first_pages_fit_2000_tokens(big: tuple[Envoy, IstiodDouble], make_server) -> None:
    envoy, istiod = big
    server = make_server(envoy.admin_url, istiod.url, maxResponseBytes=1 << 20)
    first = await server.call_tool("analyze", {}, TOKEN)
    text, page = first.content[0]["text"], first.structured
    assert len(text.encode()) <= BUDGET_BYTES  # 6,000 bytes: 2,000 tokens at 3 bytes a token
    hosts = ROUTES // big_lint.PATHS
    assert page["by_detector"]["missing-cluster"] == hosts  # a path in five lost its port
    assert page["by_detector"]["istio-virtualservice-destinations"] == hosts  # every catch-all's Service is gone
    assert page["counts"]["error"] == page["total"] == 2 * hosts and page["not_checked"] == {}
    n = page["shown"]
    assert 5 <= n < page["total"] and page["next_offset"] == n
    assert f"next page: offset={n} limit={n}]" in text
    second = await server.call_tool("analyze", {"offset": n, "limit": n}, TOKEN)
    assert len(second.content[0]["text"].encode()) <= BUDGET_BYTES
    assert not {f["object"] for f in second.structured["findings"]} & {f["object"] for f in page["findings"]}
