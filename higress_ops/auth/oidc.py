"""`--auth oidc`: a bearer JWT from an OpenID Connect issuer, checked against the issuer's JWKS.

Discovery at `{issuer}/.well-known/openid-configuration` names the JWKS; keys are cached, and a token
signed with a key id the cache does not know triggers one refresh (at most one per `refresh_interval`), so
a key rotation is picked up while a flood of made-up key ids costs nothing. Only asymmetric algorithms are
accepted: `none` and HS* would let anyone who knows a public value mint tokens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jwt

from higress_ops.auth.base import AuthFailed, AuthUnavailable, Principal, bearer

logger = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
MAX_DOCUMENT = 1024 * 1024  # discovery and JWKS documents are a few KB
MAX_SUBJECT = 255  # OpenID Connect Core 1.0, section 2: `sub` "MUST NOT exceed 255 ASCII characters in length"
MISCONFIGURED = "cannot check credentials: the identity provider is misconfigured"


class OidcAuth:
    mode = "oidc"

    def __init__(self, issuer: str, audience: str, *, leeway: float = 30.0, refresh_interval: float = 30.0,
                 timeout: float = 5.0) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.leeway = leeway
        self.refresh_interval = refresh_interval
        self.timeout = timeout
        self._keys: dict[str, jwt.PyJWK] = {}
        self._anonymous_keys: list[jwt.PyJWK] = []  # JWKS entries without a kid
        self._fetched_at = -float("inf")
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self.refreshes = 0  # JWKS fetches, for tests

    # -- checking a token ---------------------------------------------------------------------------

    async def authenticate(self, authorization: str | None, client: str = "") -> Principal:
        token = bearer(authorization)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthFailed(401, "Unauthorized: the bearer token is not a JWT", error="invalid_token") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise AuthFailed(401, f"Unauthorized: JWT algorithm {str(alg)[:20]!r} is not accepted; the issuer must "
                                  "sign with an asymmetric algorithm (RS256, ES256, ...)", error="invalid_token")
        key = await self._key(header.get("kid"))
        try:
            claims = jwt.decode(token, key.key, algorithms=[alg], audience=self.audience, issuer=self.issuer,
                                leeway=self.leeway, options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError:
            raise AuthFailed(401, "Unauthorized: the token has expired", error="invalid_token") from None
        except jwt.ImmatureSignatureError:
            raise AuthFailed(401, "Unauthorized: the token is not valid yet (nbf)", error="invalid_token") from None
        except jwt.InvalidAudienceError:
            raise AuthFailed(401, f"Unauthorized: the token's audience is not {self.audience!r}",
                             error="invalid_token") from None
        except jwt.InvalidIssuerError:
            raise AuthFailed(401, f"Unauthorized: the token was not issued by {self.issuer}",
                             error="invalid_token") from None
        except jwt.PyJWTError as exc:
            raise AuthFailed(401, f"Unauthorized: invalid token ({type(exc).__name__})",
                             error="invalid_token") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise AuthFailed(401, "Unauthorized: the token has no subject", error="invalid_token")
        if len(sub) > MAX_SUBJECT:  # never cut: two subjects sharing a prefix would become one identity
            raise AuthFailed(401, f"Unauthorized: the token's subject is longer than the {MAX_SUBJECT} characters "
                                  "OpenID Connect allows", error="invalid_token")
        return Principal(sub, self.mode)

    async def _key(self, kid: Any) -> jwt.PyJWK:
        if not isinstance(kid, str | None):
            raise AuthFailed(401, "Unauthorized: malformed JWT key id", error="invalid_token")
        key = self._lookup(kid)
        if key is None and time.monotonic() - self._fetched_at >= self.refresh_interval:
            async with self._lock:  # concurrent misses share one refresh
                if time.monotonic() - self._fetched_at >= self.refresh_interval:
                    await self._refresh()
            key = self._lookup(kid)
        if key is None:
            raise AuthFailed(401, "Unauthorized: the token is signed with a key the issuer does not publish",
                             error="invalid_token")
        return key

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is not None:
            return self._keys.get(kid)
        return self._anonymous_keys[0] if len(self._anonymous_keys) == 1 else None

    # -- the issuer's documents ---------------------------------------------------------------------

    async def _refresh(self) -> None:
        self._fetched_at = time.monotonic()
        self.refreshes += 1
        discovery = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
        issuer, jwks_uri = discovery.get("issuer"), discovery.get("jwks_uri")
        if not isinstance(issuer, str) or not isinstance(jwks_uri, str) or \
                urlsplit(jwks_uri).scheme not in ("http", "https"):
            logger.error("OIDC discovery document: issuer and jwks_uri must be strings, jwks_uri an http(s) URL",
                         extra={"issuer": self.issuer})
            raise AuthUnavailable(f"{MISCONFIGURED} (its discovery document needs an issuer and a jwks_uri URL)")
        if issuer.rstrip("/") != self.issuer:
            logger.error("OIDC discovery names another issuer", extra={"expected": self.issuer})
            raise AuthUnavailable(f"{MISCONFIGURED} (its discovery document names another issuer)")
        document = await self._get_json(jwks_uri)
        entries = document.get("keys")
        if not isinstance(entries, list):
            logger.error("OIDC JWKS has no keys list", extra={"issuer": self.issuer})
            raise AuthUnavailable(f"{MISCONFIGURED} (its JWKS has no keys list)")
        keys: dict[str, jwt.PyJWK] = {}
        anonymous: list[jwt.PyJWK] = []
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or entry.get("kty") == "oct":
                continue  # encryption keys and shared secrets never verify a token here
            try:
                key = jwt.PyJWK(entry)
            except (jwt.PyJWTError, ValueError, TypeError, KeyError, AttributeError):
                continue  # a key this library cannot use (unknown type, fields of the wrong type): skip it
            if isinstance(entry.get("kid"), str):
                keys[entry["kid"]] = key
            else:
                anonymous.append(key)
        self._keys, self._anonymous_keys = keys, anonymous
        logger.info("OIDC keys loaded", extra={"issuer": self.issuer, "keys": len(keys) + len(anonymous)})

    async def _get_json(self, url: str) -> dict[str, Any]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        try:
            async with self._session.get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise AuthUnavailable(f"cannot check credentials: the identity provider answered "
                                          f"{response.status}")
                body = await response.content.read(MAX_DOCUMENT + 1)
                if len(body) > MAX_DOCUMENT:
                    raise AuthUnavailable("cannot check credentials: the identity provider's document is too large")
                data = json.loads(body)
        except AuthUnavailable:
            raise
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            logger.warning("OIDC fetch failed", extra={"error": type(exc).__name__})
            raise AuthUnavailable("cannot check credentials: the identity provider is unreachable; retry") from None
        if not isinstance(data, dict):
            raise AuthUnavailable("cannot check credentials: the identity provider's document is not an object")
        return data

    # -- what clients discover ----------------------------------------------------------------------

    def resource_metadata(self, resource: str) -> Mapping[str, Any] | None:
        return {"resource": resource, "authorization_servers": [self.issuer],
                "bearer_methods_supported": ["header"], "resource_name": "Higress Ops MCP Server"}

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
