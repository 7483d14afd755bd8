"""End-to-end: a real `serve --auth kubernetes --auth-audience higress-ops` against the API-server double with a
set latency. A flood of junk tokens from one address does not slow another client's login; only tokens minted
for this server's audience are accepted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx2 as httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.hardening.report import record
from tests.support.apiserver import ApiServer, api_server
from tests.support.serve import ServeProcess, echo_config, serving

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120), pytest.mark.xdist_group("kube-served")]
BOTH = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
ALICE = "system:serviceaccount:ops:alice"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, ApiServer]]:
    workdir = tmp_path_factory.mktemp("kube-served")
    with api_server() as api:
        api.grants.add((ALICE, "create", "pods", "portforward", "higress-system"))
        kubeconfig = api.kubeconfig(workdir / "kubeconfig")
        with serving(echo_config(("e", "/e")), workdir, "--auth", "kubernetes", "--kubeconfig", str(kubeconfig),
                     "--auth-audience", "higress-ops", "--log-level", "warning") as server:
            yield server, api


def mint(api: ApiServer, token: str, *audiences: str) -> str:
    """A token of alice's ServiceAccount, as `kubectl create token alice --audience ...` makes one."""
    api.users[token] = {"username": ALICE, **({"audiences": list(audiences)} if audiences else {})}
    return token


def client(source: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=source), timeout=60,
                             limits=httpx.Limits(max_connections=300))


async def login(http: httpx.AsyncClient, server: ServeProcess, token: str) -> float:
    started = time.perf_counter()
    reply = await http.post(server.url("/e"), json=INIT, headers={**BOTH, "Authorization": f"Bearer {token}"})
    assert reply.status_code == 200, reply.text
    return time.perf_counter() - started


async def test_junk_tokens_do_not_slow_a_real_login(served: tuple[ServeProcess, ApiServer]) -> None:
    server, api = served
    api.review_latency = 0.15  # each TokenReview and SubjectAccessReview: a loaded API server
    try:
        async with client("127.0.0.3") as victim, client("127.0.0.2") as attacker:
            baseline = await login(victim, server, mint(api, "alice-1", "higress-ops"))
            reviews_before, api.peak_reviewing = len(api.reviews), 0

            async def junk(i: int) -> httpx.Response:
                return await attacker.post(server.url("/e"), json=INIT,
                                           headers={**BOTH, "Authorization": f"Bearer junk-{i}"})

            flood = [asyncio.ensure_future(junk(i)) for i in range(240)]
            while len(api.reviews) == reviews_before:  # the flood has reached the API server
                await asyncio.sleep(0.005)
            attacked = await login(victim, server, mint(api, "alice-2", "higress-ops"))
            answers = await asyncio.gather(*flood)
            junk_reviews = [r for r in api.reviews[reviews_before:] if r["body"]["spec"].get("token", "")
                            .startswith("junk-")]
            statuses = sorted({r.status_code for r in answers})
            assert statuses == [401, 429], statuses
            refused = [r for r in answers if r.status_code == 429]
            assert all(r.headers["retry-after"] for r in refused)
            assert api.peak_reviewing <= 5, api.peak_reviewing  # 4 of the attacker's at once, and the victim's
            assert attacked < 4 * baseline, (attacked, baseline)  # it took 20x before (0.3 s -> 6 s)
            # Failed authentications from the attacker's address are counted: past 30, 429 before any review.
            for i in range(240, 280):
                locked = await junk(i)
                if locked.status_code == 429 and "failed authentications" in locked.text:
                    break
            else:
                raise AssertionError("the attacker's address was never locked out")
            assert int(locked.headers["retry-after"]) > 0
            sent = len([r for r in api.reviews[reviews_before:] if r["body"]["spec"].get("token", "")
                        .startswith("junk-")])
            assert sent <= 34, sent
            assert await login(victim, server, mint(api, "alice-3", "higress-ops")) > 0  # others still get in
    finally:
        api.review_latency = 0
    record("Client authentication", "240 concurrent junk tokens from one address, API server answering each "
           "review in 150 ms", f"a real login from another address took {attacked * 1000:.0f} ms (alone: "
           f"{baseline * 1000:.0f} ms; 20x before); {len(junk_reviews)} junk TokenReviews sent (at most 4 at once), "
           f"{len(refused)} answered 429 with Retry-After at once; the address locked out after {sent} failures")


async def test_only_tokens_for_this_servers_audience_are_accepted(served: tuple[ServeProcess, ApiServer]) -> None:
    server, api = served
    token = mint(api, "alice-for-ops", "higress-ops")
    headers = {"Authorization": f"Bearer {token}"}
    async with Client(streamable_http_client(server.url("/e"), http_client=create_mcp_http_client(headers=headers)),
                      mode="legacy") as sdk:
        assert (await sdk.call_tool("echo", {"text": "t"})).is_error is False
    review = next(r for r in api.reviews if r["body"]["spec"].get("token") == token)
    assert review["body"]["spec"]["audiences"] == ["higress-ops"]
    async with client("127.0.0.4") as http:
        for other in (mint(api, "alice-default"), mint(api, "alice-for-vault", "vault")):  # the API server's, another's
            refused = await http.post(server.url("/e"), json=INIT, headers={**BOTH, "Authorization": f"Bearer {other}"})
            assert refused.status_code == 401 and "--audience higress-ops" in refused.text
    record("Client authentication", "--auth-audience higress-ops", "a token minted for higress-ops: served (the "
           "TokenReview asked for that audience); a default ServiceAccount token and a token for another audience: "
           "401 naming `kubectl create token ... --audience higress-ops`")
