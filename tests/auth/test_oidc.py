"""--auth oidc against a local issuer serving discovery and JWKS, with keys made by the test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest

from higress_ops.auth import AuthFailed, AuthUnavailable
from higress_ops.auth.oidc import OidcAuth
from tests.support.oidc import Issuer, new_key, oidc_issuer

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    with oidc_issuer() as running:
        yield running


async def refused(auth: OidcAuth, token: str, status: int = 401) -> str:
    with pytest.raises(AuthFailed) as failed:
        await auth.authenticate(f"Bearer {token}")
    assert failed.value.status == status
    return failed.value.message


async def test_valid_tokens_rsa_and_ec(issuer: Issuer) -> None:
    auth = OidcAuth(issuer.url, "higress-ops")
    assert (await auth.authenticate(f"Bearer {issuer.issue('alice')}")).name == "alice"
    ec_key = new_key("ec1", "ES256")
    issuer.keys.append(ec_key)
    await asyncio.sleep(0)
    auth.refresh_interval = 0  # let the unknown kid fetch at once
    principal = await auth.authenticate(f"Bearer {issuer.issue('bob', key=ec_key)}")
    assert (principal.name, principal.method, principal.key) == ("bob", "oidc", "oidc:bob")
    await auth.aclose()


async def test_claims_are_checked(issuer: Issuer) -> None:
    auth = OidcAuth(issuer.url, "higress-ops", leeway=5)
    assert "expired" in await refused(auth, issuer.issue(lifetime=-60))
    assert (await auth.authenticate(f"Bearer {issuer.issue(lifetime=-2)}")).name == "alice"  # within the leeway
    assert "not valid yet" in await refused(auth, issuer.issue(nbf=int(__import__("time").time()) + 120))
    assert "audience" in await refused(auth, issuer.issue(audience="another-api"))
    assert "not issued by" in await refused(auth, issuer.issue(issuer="https://evil.example"))
    assert "not a JWT" in await refused(auth, "not-a-jwt")
    await auth.aclose()


async def test_only_asymmetric_algorithms(issuer: Issuer) -> None:
    auth = OidcAuth(issuer.url, "higress-ops")
    now = int(__import__("time").time())
    claims = {"iss": issuer.url, "sub": "mallory", "aud": "higress-ops", "exp": now + 60}
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "k1"})  # type: ignore[arg-type]
    assert "'none' is not accepted" in await refused(auth, unsigned)
    public_pem = issuer.keys[0].jwk()["n"]  # the classic confusion: HMAC keyed with a public value
    forged = jwt.encode(claims, public_pem, algorithm="HS256", headers={"kid": "k1"})
    assert "'HS256' is not accepted" in await refused(auth, forged)
    other = new_key("k1")  # right kid, wrong key: the signature fails
    assert "InvalidSignatureError" in await refused(auth, issuer.issue(key=other))
    await auth.aclose()


async def test_unknown_kid_triggers_one_rate_limited_refresh(issuer: Issuer) -> None:
    auth = OidcAuth(issuer.url, "higress-ops", refresh_interval=60)
    await auth.authenticate(f"Bearer {issuer.issue()}")
    assert issuer.jwks_fetches == 1
    stranger = new_key("unknown-kid")
    for _ in range(20):  # a flood of made-up key ids
        await refused(auth, issuer.issue(key=stranger))
    assert issuer.jwks_fetches == 1  # inside the interval: no refetch
    rotated = new_key("k2")
    issuer.rotate(rotated)
    auth.refresh_interval = 0  # as if the interval had passed
    assert (await auth.authenticate(f"Bearer {issuer.issue('carol', key=rotated)}")).name == "carol"
    assert issuer.jwks_fetches == 2  # the rotation was picked up by exactly one refresh
    await auth.aclose()


async def test_issuer_unreachable_is_unavailable() -> None:
    auth = OidcAuth("http://127.0.0.1:9", "higress-ops", timeout=1)
    with pytest.raises(AuthUnavailable, match="unreachable"):
        await auth.authenticate("Bearer " + jwt.encode({"sub": "x"}, new_key("k").private, algorithm="RS256",
                                                        headers={"kid": "k"}))
    await auth.aclose()


async def test_subjects_are_never_cut(issuer: Issuer) -> None:
    auth = OidcAuth(issuer.url, "higress-ops")
    prefix = "u" * 255
    assert (await auth.authenticate(f"Bearer {issuer.issue(prefix)}")).name == prefix  # 255: OIDC's maximum
    for longer in (prefix + "-alice", prefix + "-bob"):  # cut to 256 these were one identity
        assert "longer than the 255 characters" in await refused(auth, issuer.issue(longer))
    await auth.aclose()


@pytest.mark.parametrize(("discovery", "jwks"), [
    ({"issuer": 42, "jwks_uri": "/jwks"}, None),
    ({"issuer": ["x"], "jwks_uri": "/jwks"}, None),
    ({"issuer": None}, None),
    ({"jwks_uri": "/jwks"}, None),
    ({"issuer": "ISSUER", "jwks_uri": 7}, None),
    ({"issuer": "ISSUER", "jwks_uri": "file:///etc/passwd"}, None),
    ({"issuer": "https://elsewhere.example", "jwks_uri": "/jwks"}, None),
    (None, {"keys": "not a list"}),
    (None, {"keys": [{"kty": "RSA", "kid": "k1", "n": 5, "e": []}, "junk", None]}),
])
async def test_a_misconfigured_provider_is_unavailable_not_an_error(issuer: Issuer, discovery: Any,
                                                                    jwks: Any) -> None:
    if discovery is not None:
        issuer.discovery = {k: (f"{issuer.url}{v}" if k == "jwks_uri" and isinstance(v, str) and v.startswith("/")
                                else issuer.url if v == "ISSUER" else v) for k, v in discovery.items()}
    issuer.jwks = jwks
    auth = OidcAuth(issuer.url, "higress-ops")
    try:
        with pytest.raises((AuthUnavailable, AuthFailed)) as failed:
            await auth.authenticate(f"Bearer {issuer.issue()}")
        if isinstance(failed.value, AuthUnavailable):
            assert "misconfigured" in str(failed.value)
        else:  # a JWKS whose only key is unusable: the token's key is simply not published
            assert jwks is not None and "does not publish" in failed.value.message
    finally:
        issuer.discovery = issuer.jwks = None
        await auth.aclose()
