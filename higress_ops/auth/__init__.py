"""Client authentication: who is calling, checked once per request before any MCP handling.

`none` (loopback only unless asked for explicitly), `kubernetes` (TokenReview + SubjectAccessReview) and
`oidc` (a JWT checked against the issuer's JWKS). Each answers `authenticate(authorization)` with a
`Principal` or raises `AuthFailed`.
"""

from higress_ops.auth.base import (
    ANONYMOUS,
    AuthBusy,
    Authenticator,
    AuthFailed,
    AuthUnavailable,
    NoAuth,
    Principal,
    bearer,
)

__all__ = ["ANONYMOUS", "AuthBusy", "AuthFailed", "AuthUnavailable", "Authenticator", "NoAuth", "Principal", "bearer"]
