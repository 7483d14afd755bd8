"""`mcpServer.redis.secret`: what this server stores in Redis, sealed the way Higress's mcp-session does it.

alibaba/higress plugins/golang-filter/mcp-session/common/crypto.go: the key is SHA-256 of the secret's UTF-8
bytes, the cipher AES-256-GCM with a random 12-byte nonce and no associated data, and what is stored is standard
base64 (with padding) of nonce || ciphertext || 16-byte tag. Sealing the same way, byte for byte, lets the gateway
and this server share one Redis and one secret. GCM authenticates too: a value written without the secret, under
another secret, or changed in Redis does not open (`Unreadable`), and the caller treats it as absent.

Values a Lua script must compare (which replica holds a session's stream) cannot be sealed, since a seal is
randomised; they are stored as `tag`s instead: a keyed digest that names nothing without the secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12  # Go's cipher.NewGCM: gcm.NonceSize()
TAG_BYTES = 16


class Unreadable(ValueError):
    """A stored value that does not open under this secret. The message says why, never the secret."""


class Sealer:
    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("an empty secret seals nothing; leave redis.secret out instead")
        key = hashlib.sha256(secret.encode()).digest()
        self._aead = AESGCM(key)
        self._tag_key = hmac.new(key, b"higress-ops tag key", hashlib.sha256).digest()  # never the AES key itself

    def __repr__(self) -> str:
        return "Sealer(<secret>)"

    def seal(self, plaintext: bytes, *, nonce: bytes | None = None) -> bytes:
        """base64(nonce || AES-256-GCM(plaintext) || tag), as Higress's Crypto.Encrypt. `nonce` is for test
        vectors only: a nonce must never repeat under one key."""
        nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
        return base64.b64encode(nonce + self._aead.encrypt(nonce, plaintext, None))

    def open(self, sealed: bytes | str) -> bytes:
        """The plaintext of a sealed value; Unreadable when it is not one, or not sealed under this secret."""
        try:
            raw = base64.b64decode(sealed, validate=True)
        except (binascii.Error, ValueError):
            raise Unreadable("not a sealed value (stored without redis.secret?)") from None
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise Unreadable("too short to be a sealed value (stored without redis.secret?)")
        try:
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], None)
        except InvalidTag:
            raise Unreadable("does not open under this redis.secret (sealed under another secret, or "
                             "changed in Redis)") from None

    def tag(self, text: str) -> str:
        """A stable keyed digest of `text` (22 url-safe characters, 132 bits): equal inputs, equal tags."""
        digest = hmac.new(self._tag_key, text.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode()[:22]


def sealer_for(secret: str) -> Sealer | None:
    return Sealer(secret) if secret else None
