"""The authentication contract: a Principal, the two ways to fail, and the bearer-token parser."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

MAX_TOKEN_BYTES = 16 * 1024  # a service-account JWT is ~1 KB; an OIDC token a few KB


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. `name` is the username or `sub`: what the access log and rate limits show."""

    name: str
    method: str  # "none" | "kubernetes" | "oidc"

    @property
    def key(self) -> str:
        """What a session is bound to: two methods can never share an identity by name."""
        return f"{self.method}:{self.name}"

    @property
    def anonymous(self) -> bool:
        return self.method == "none"


ANONYMOUS = Principal("anonymous", "none")


class AuthFailed(Exception):
    """401 (no or bad credentials) or 403 (authenticated, not allowed). The message is safe to show."""

    def __init__(self, status: int, message: str, *, error: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error = error  # RFC 6750 error code for WWW-Authenticate ("invalid_token", "insufficient_scope")


class AuthUnavailable(Exception):
    """The authority (API server, issuer) cannot be reached: a 503, never a 401 the client would act on."""


class AuthBusy(Exception):
    """Too many credential checks at once, from this client address (429) or on this replica (503): retry after
    `retry_after` seconds. The authority was not asked."""

    def __init__(self, status: int, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def bearer(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or AuthFailed(401)."""
    if not authorization:
        raise AuthFailed(401, "Unauthorized: send Authorization: Bearer <token>")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthFailed(401, "Unauthorized: the Authorization header must be 'Bearer <token>'",
                         error="invalid_request")
    if len(token) > MAX_TOKEN_BYTES or not token.isascii() or not token.isprintable():
        raise AuthFailed(401, "Unauthorized: malformed bearer token", error="invalid_token")
    return token


class Authenticator(Protocol):
    mode: str

    async def authenticate(self, authorization: str | None, client: str = "") -> Principal:
        """The caller behind this Authorization header, sent from `client` (the real client address); raises
        AuthFailed, AuthBusy or AuthUnavailable."""
        ...

    def resource_metadata(self, resource: str) -> Mapping[str, Any] | None:
        """RFC 9728 Protected Resource Metadata for `resource`, when this mode has an authorization server."""
        ...

    async def aclose(self) -> None: ...


class NoAuth:
    """Everyone is the same anonymous principal: the embedded default on a loopback bind."""

    mode = "none"

    async def authenticate(self, authorization: str | None, client: str = "") -> Principal:
        return ANONYMOUS

    def resource_metadata(self, resource: str) -> Mapping[str, Any] | None:
        return None

    async def aclose(self) -> None:
        return None
