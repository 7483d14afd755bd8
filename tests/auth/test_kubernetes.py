"""--auth kubernetes against the API-server double: TokenReview, then SubjectAccessReview, cached by token hash."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from higress_ops.auth import AuthBusy, AuthFailed, AuthUnavailable
from higress_ops.auth.kubernetes import KubernetesAuth, Right
from higress_ops.config.kube_source import api_client
from tests.support.apiserver import ApiServer, api_server

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
PORTFORWARD = ("create", "pods", "portforward", "higress-system")


@pytest.fixture
def api() -> Iterator[ApiServer]:
    with api_server() as server:
        server.users["alice-token"] = {"username": "alice", "uid": "u1", "groups": ["devs"]}
        server.users["carol-token"] = {"username": "carol", "groups": ["viewers"]}
        server.grants.add(("alice", *PORTFORWARD))
        yield server


def auth_for(api: ApiServer, tmp_path: Path, **options: float) -> KubernetesAuth:
    return KubernetesAuth(api_client(None, str(api.kubeconfig(tmp_path / "kubeconfig"))), Right(), **options)


async def test_allowed_identity_and_what_was_asked(api: ApiServer, tmp_path: Path) -> None:
    auth = auth_for(api, tmp_path)
    principal = await auth.authenticate("Bearer alice-token")
    assert (principal.name, principal.method) == ("alice", "kubernetes")
    token_review, access_review = api.reviews
    assert token_review["body"]["spec"]["token"] == "alice-token"
    spec = access_review["body"]["spec"]
    assert (spec["user"], spec["groups"], spec["uid"]) == ("alice", ["devs"], "u1")
    assert spec["resourceAttributes"] == {"verb": "create", "resource": "pods", "subresource": "portforward",
                                          "namespace": "higress-system", "group": ""}


async def test_unknown_token_is_401_and_unauthorized_identity_is_403(api: ApiServer, tmp_path: Path) -> None:
    auth = auth_for(api, tmp_path)
    with pytest.raises(AuthFailed) as unknown:
        await auth.authenticate("Bearer nobody")
    assert unknown.value.status == 401
    with pytest.raises(AuthFailed) as denied:
        await auth.authenticate("Bearer carol-token")
    assert denied.value.status == 403 and "carol may not create pods/portforward in namespace higress-system" in \
        denied.value.message
    for header in (None, "", "Basic YWxpY2U6eA==", "Bearer", "Bearer a\x01b"):
        with pytest.raises(AuthFailed) as bad:
            await auth.authenticate(header)
        assert bad.value.status == 401


async def test_verdicts_are_cached_and_concurrent_checks_share_one_review(api: ApiServer, tmp_path: Path) -> None:
    auth = auth_for(api, tmp_path, allowed_ttl=30, denied_ttl=0.3)
    principals = await asyncio.gather(*(auth.authenticate("Bearer alice-token") for _ in range(20)))
    assert {p.name for p in principals} == {"alice"}
    assert auth.reviews == 1 and len(api.reviews) == 2  # one TokenReview + one SubjectAccessReview for 20 calls
    for _ in range(2):
        with pytest.raises(AuthFailed):
            await auth.authenticate("Bearer carol-token")
    assert auth.reviews == 2  # the denial was cached too
    await asyncio.sleep(0.35)
    api.grants.add(("carol", *PORTFORWARD))  # a RoleBinding appears: after the short denied TTL it counts
    assert (await auth.authenticate("Bearer carol-token")).name == "carol"
    assert "alice-token" not in repr(auth._cache._entries)  # keyed by hash, never the token


async def test_api_server_trouble_is_unavailable_not_a_401(api: ApiServer, tmp_path: Path) -> None:
    api.client_token = "something-else"  # the server's own credentials are refused (an RBAC/SA problem)
    auth = auth_for(api, tmp_path)
    with pytest.raises(AuthUnavailable, match="may not create tokenreviews"):
        await auth.authenticate("Bearer alice-token")
    gone = KubernetesAuth(api_client(None, str(ApiServer(port=9).kubeconfig(tmp_path / "gone"))), Right(),
                          timeout=1)
    with pytest.raises(AuthUnavailable, match="unreachable"):
        await gone.authenticate("Bearer alice-token")


async def test_audiences_are_asked_for_and_checked(api: ApiServer, tmp_path: Path) -> None:
    api.users["minted-for-ops"] = {"username": "alice", "audiences": ["higress-ops"]}  # kubectl create token --audience
    ours = KubernetesAuth(api_client(None, str(api.kubeconfig(tmp_path / "kubeconfig"))), Right(),
                          audiences=["higress-ops"])
    assert (await ours.authenticate("Bearer minted-for-ops")).name == "alice"
    assert api.reviews[0]["body"]["spec"]["audiences"] == ["higress-ops"]
    with pytest.raises(AuthFailed) as for_the_api_server:  # a default token: good for the API server, not here
        await ours.authenticate("Bearer alice-token")
    assert for_the_api_server.value.status == 401 and "--audience higress-ops" in for_the_api_server.value.message
    plain = auth_for(api, tmp_path)  # without --auth-audience the API server's own audience is asked for
    with pytest.raises(AuthFailed):
        await plain.authenticate("Bearer minted-for-ops")
    api.audience_aware = False  # an authenticator that ignores audiences: its yes would hold for any audience
    unaware = KubernetesAuth(api_client(None, str(api.kubeconfig(tmp_path / "kubeconfig"))), Right(),
                             audiences=["higress-ops"])
    with pytest.raises(AuthFailed) as no_audience:
        await unaware.authenticate("Bearer minted-for-ops")
    assert "not for audience higress-ops" in no_audience.value.message
    for auth in (ours, plain, unaware):
        await auth.aclose()


async def test_reviews_are_bounded_per_client_and_in_all(api: ApiServer, tmp_path: Path) -> None:
    api.review_latency = 0.5
    auth = KubernetesAuth(api_client(None, str(api.kubeconfig(tmp_path / "kubeconfig"))), Right(),
                          max_reviews=6, max_reviews_per_client=2)

    async def attempt(token: str, client: str) -> int:
        try:
            await auth.authenticate(f"Bearer {token}", client)
        except AuthFailed as exc:
            return exc.status
        except AuthBusy as exc:
            assert exc.retry_after >= 1
            return exc.status
        return 200

    junk = [attempt(f"junk-{i}", "10.0.0.2") for i in range(5)]
    spread = [attempt(f"spread-{i}", f"10.0.1.{i}") for i in range(6)]
    statuses = await asyncio.gather(*junk, *spread)
    assert statuses[:5] == [401, 401, 429, 429, 429]  # two reviews from one address, the rest refused at once
    assert sorted(statuses[5:]) == [401] * 4 + [503] * 2  # six under review in all: the last two 503
    assert auth.reviews == 6  # the API server saw six reviews, not eleven
    await auth.aclose()


async def test_reviews_leave_the_default_thread_pool_free(api: ApiServer, tmp_path: Path) -> None:
    """Pod listings and upstream DNS run on the default pool: junk-token reviews must never fill it."""
    api.review_latency = 3.0
    auth = KubernetesAuth(api_client(None, str(api.kubeconfig(tmp_path / "kubeconfig"))), Right())
    flood = [asyncio.ensure_future(auth.authenticate(f"Bearer junk-{i}", f"10.0.2.{i}")) for i in range(40)]
    while len(api.reviews) < 4:  # every review thread is busy at the API server
        await asyncio.sleep(0.01)
    await asyncio.wait_for(asyncio.to_thread(lambda: None), 1.0)  # the default pool still has a thread
    for task in flood:
        task.cancel()
    await asyncio.gather(*flood, return_exceptions=True)
    await auth.aclose()
