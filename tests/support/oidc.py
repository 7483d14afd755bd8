"""A local OpenID Connect issuer: discovery and JWKS over real HTTP, signing keys made by the test.

Tests mint tokens with `issue(...)` (PyJWT), rotate keys (`rotate`), count JWKS fetches (`jwks_fetches`) and
misconfigure the provider: `discovery` and `jwks`, when set, are served as they are instead of the real documents.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.support.procs import http_server


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        public = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "alg": self.alg, "use": "sig"}


def new_key(kid: str, alg: str = "RS256") -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1()) if alg == "ES256" else \
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return SigningKey(kid, alg, private)


@dataclass
class Issuer:
    port: int = 0
    keys: list[SigningKey] = field(default_factory=list)
    jwks_fetches: int = 0
    discovery: Any = None
    jwks: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rotate(self, key: SigningKey) -> None:
        self.keys = [key]

    def issue(self, sub: str = "alice", *, audience: str = "higress-ops", key: SigningKey | None = None,
              lifetime: float = 300, issuer: str | None = None, **claims: Any) -> str:
        key = key or self.keys[0]
        now = int(time.time())
        payload = {"iss": issuer or self.url, "sub": sub, "aud": audience, "iat": now, "exp": now + int(lifetime),
                   **claims}
        return jwt.encode(payload, key.private, algorithm=key.alg, headers={"kid": key.kid})


def _handler(issuer: Issuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body: Any
            if self.path == "/.well-known/openid-configuration":
                body = issuer.discovery if issuer.discovery is not None else {
                    "issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks",
                    "id_token_signing_alg_values_supported": ["RS256", "ES256"]}
            elif self.path == "/jwks":
                issuer.jwks_fetches += 1
                body = issuer.jwks if issuer.jwks is not None else {"keys": [key.jwk() for key in issuer.keys]}
            else:
                self.send_response(404)
                self.end_headers()
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            return None

    return Handler


@contextmanager
def oidc_issuer() -> Iterator[Issuer]:
    issuer = Issuer(keys=[new_key("k1")])
    with http_server(_handler(issuer)) as issuer.port:
        yield issuer
