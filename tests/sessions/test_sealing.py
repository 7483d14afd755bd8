"""`redis.secret`: values sealed byte for byte as Higress's mcp-session seals them, and a RedisSessionStore on a
real redis-server that keeps every session field sealed and reads a value it cannot open as absent.

The vectors below were computed by Higress's own Go code: alibaba/higress
plugins/golang-filter/mcp-session/common/crypto.go (commit 4e0d691), compiled with go1.19 as `package main` with

    c, _ := NewCrypto("higress-ops-test-secret")
    enc, _ := c.Encrypt([]byte(PLAINTEXT))                       // RANDOM_NONCE
    gcm.Seal(nonce, nonce, []byte(PLAINTEXT), nil)              // FIXED_NONCE, nonce = 00 01 .. 0b, key SHA-256
and the other way round, Go's `c.Decrypt` opened a value sealed by `Sealer.seal` to the same plaintext.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis

from higress_ops.config.model import RedisConfig
from higress_ops.sessions.redis import RedisSessionStore
from higress_ops.sessions.sealing import Sealer, Unreadable
from tests.sessions.stores import frame, new_record, next_frame, open_store
from tests.support.redis import RedisServer

SECRET = "higress-ops-test-secret"
PLAINTEXT = b'{"id":"sid","server":"higress-ops-mcp-server"}'
RANDOM_NONCE = b"bixUBtYOTleH0v4Bicr+Uz2uDLPfBrEUG0sRewxfZk/iu2zpb4L53L8KayBXdlO8bovphLJbEjbxTkRg8rIwOTib1+wAgO0mrgQ="
FIXED_NONCE = b"AAECAwQFBgcICQoLfJsEo/irBlDy2UzyHoaRAECi5NwcgEDQEwFnRoHFCOpHE6jevQk1FzqCNmZEPpjsMM8zaOW/JsjnWKW/Z5c="


def test_opens_what_higress_sealed_and_seals_what_higress_opens() -> None:
    sealer = Sealer(SECRET)
    assert sealer.open(RANDOM_NONCE) == PLAINTEXT
    assert sealer.seal(PLAINTEXT, nonce=bytes(range(12))) == FIXED_NONCE  # key, nonce layout, tag, base64: all equal
    sealed = sealer.seal(PLAINTEXT)
    raw = base64.b64decode(sealed)
    assert len(raw) == 12 + len(PLAINTEXT) + 16 and sealer.open(sealed) == PLAINTEXT
    assert sealer.seal(PLAINTEXT) != sealed  # a fresh nonce every time


@pytest.mark.parametrize(("stored", "why"), [
    (PLAINTEXT, "stored without redis.secret"),  # a record from before the secret was set
    (base64.b64encode(b"short"), "too short"),
    (Sealer("another-secret").seal(PLAINTEXT), "another secret"),
    (FIXED_NONCE[:-4] + b"AAA=", "another secret, or changed in Redis"),  # the tag no longer matches
], ids=["plain", "short", "other-secret", "tampered"])
def test_what_does_not_open_says_why_and_never_the_secret(stored: bytes, why: str) -> None:
    with pytest.raises(Unreadable, match=why) as info:
        Sealer(SECRET).open(stored)
    assert SECRET not in str(info.value) and SECRET not in repr(Sealer(SECRET))


def test_tags_are_stable_keyed_and_name_nothing() -> None:
    sealer = Sealer(SECRET)
    assert sealer.tag("replica-a") == Sealer(SECRET).tag("replica-a") != sealer.tag("replica-b")
    assert sealer.tag("replica-a") != Sealer("another-secret").tag("replica-a")
    assert "replica" not in sealer.tag("replica-a") and len(sealer.tag("replica-a")) == 22
    with pytest.raises(ValueError, match="empty"):
        Sealer("")



@asynccontextmanager
async def store(server: RedisServer, replica: str, secret: str = "") -> AsyncIterator[RedisSessionStore]:
    async with open_store(RedisConfig(address=server.address, secret=secret), replica) as s:
        yield s


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_the_store_keeps_every_session_field_sealed(redis_server: RedisServer) -> None:
    raw = aioredis.Redis(host="127.0.0.1", port=redis_server.port)
    watcher = raw.pubsub()
    try:
        async with store(redis_server, "replica-a", SECRET) as a, store(redis_server, "replica-b", SECRET) as b:
            record = new_record("sealed-1", stream_replica="replica-a")
            record.principal, record.target = "user:jane@example.com", "higress-gateway-7d9c-abcde"
            await a.create(record)
            stored = await raw.hgetall("higress-ops:session:sealed-1")
            assert set(stored) == {b"record", b"owner"}
            for clear in (b"inspector", b"jane", b"higress-gateway-7d9c", b"replica-a", b"2024-11-05"):
                assert not any(clear in value for value in stored.values()), clear
            assert Sealer(SECRET).open(stored[b"record"]).startswith(b'{"id":"sealed-1"')
            seen = await b.get("sealed-1")  # another replica with the same secret reads it whole
            assert seen is not None and (seen.principal, seen.target, seen.stream_replica) == (
                record.principal, record.target, "replica-a")

            await watcher.subscribe("mcp-server-sse:sealed-1")
            confirmed = await watcher.get_message(timeout=2)
            assert confirmed is not None and confirmed["type"] == "subscribe"
            async with a.open_stream("sealed-1") as stream:
                assert await b.deliver("sealed-1", frame({"answer": "jane's secret listener"})) is True
                assert await next_frame(stream) == frame({"answer": "jane's secret listener"})
            published = await watcher.get_message(timeout=2)
            assert published is not None and b"listener" not in published["data"]
            assert Sealer(SECRET).open(published["data"]) == frame({"answer": "jane's secret listener"})
            assert (await raw.hgetall("higress-ops:session:sealed-1"))[b"owner"] == b""  # released, by its tag
    finally:
        await watcher.aclose()
        await raw.aclose()


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_without_the_key_or_under_another_a_record_is_absent(redis_server: RedisServer,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    async with store(redis_server, "plain") as plain, store(redis_server, "keyed", SECRET) as keyed, \
            store(redis_server, "other", "another-secret") as other:
        await plain.create(new_record("before-the-key"))  # written before the secret was set
        await plain.create(new_record("before-the-key-2"))
        await keyed.create(new_record("under-the-key"))
        assert await keyed.get("before-the-key") is None and await keyed.get("before-the-key-2") is None
        assert await plain.get("under-the-key") is None  # sealed JSON is no JSON
        assert await other.get("under-the-key") is None
        assert await keyed.get("under-the-key") is not None
        # A frame published under another secret is dropped, not delivered as garbage.
        async with keyed.open_stream("under-the-key") as stream:
            assert await other.deliver("under-the-key", frame({"forged": True})) is True  # Redis took it
            assert await plain.deliver("under-the-key", frame({"forged": True})) is True
            assert await keyed.deliver("under-the-key", frame({"real": True})) is True  # local: the only one
            assert await next_frame(stream) == frame({"real": True})
            assert await stream.next(0.3) == b""  # nothing else arrived
    warnings = [r.getMessage() for r in caplog.records if "treated as absent" in r.getMessage()]
    keyed_says = [w for w in warnings if w.startswith("replica keyed:")]
    assert len([w for w in keyed_says if "a record" in w]) == 1  # once, not once per record
    assert len([w for w in keyed_says if "a frame" in w]) == 1
    assert any("stored without redis.secret" in w for w in keyed_says)
    assert not any(SECRET in m or "another-secret" in m for m in caplog.messages)
