"""`tls: true` against a real redis-server serving only TLS, verified with the CA from `caFile`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from higress_ops.config.model import RedisConfig
from higress_ops.sessions.base import StoreUnavailable
from higress_ops.sessions.redis import RedisSessionStore
from tests.sessions.stores import frame, new_record, next_frame, open_store
from tests.support.istio_envoy import make_cert
from tests.support.procs import free_port
from tests.support.redis import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[RedisServer, Path]]:
    cert = make_cert("localhost", sans=("localhost",), is_ca=True)  # self-signed: it is its own CA
    (tmp_path / "server.pem").write_text(cert.cert_pem)
    (tmp_path / "server.key").write_text(cert.key_pem)
    port = free_port()
    server = RedisServer(port, tmp_path / "redis", extra=(
        "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tmp_path / "server.pem"),
        "--tls-key-file", str(tmp_path / "server.key"), "--tls-ca-cert-file", str(tmp_path / "server.pem"),
        "--tls-auth-clients", "no")).start()
    yield server, tmp_path / "server.pem"
    server.stop()


async def test_sessions_over_tls(tls_redis: tuple[RedisServer, Path]) -> None:
    server, ca = tls_redis
    config = RedisConfig(address=f"localhost:{server.port}", tls=True, ca_file=str(ca))
    async with open_store(config, "a") as a, open_store(config, "b") as b:
        await a.create(new_record("tls-1", stream_replica="a"))
        assert (await b.get("tls-1")) is not None
        async with a.open_stream("tls-1") as stream:
            assert await b.deliver("tls-1", frame({"over": "tls"})) is True
            assert await next_frame(stream) == frame({"over": "tls"})
        assert await a.healthy()


@pytest.mark.parametrize("case", ["plain text to a TLS port", "a CA that did not sign the server"])
async def test_tls_mismatch_is_unavailable_not_a_hang(case: str, tls_redis: tuple[RedisServer, Path],
                                                      tmp_path: Path) -> None:
    server, _ = tls_redis
    other = tmp_path / "other-ca.pem"
    other.write_text(make_cert("someone-else", is_ca=True).cert_pem)
    config = RedisConfig(address=f"localhost:{server.port}") if case.startswith("plain") else \
        RedisConfig(address=f"localhost:{server.port}", tls=True, ca_file=str(other))
    store = RedisSessionStore.from_config(config, replica_id="a", ttl_seconds=30)
    await store.start()
    try:
        with pytest.raises(StoreUnavailable, match="session store unavailable") as caught:
            await store.create(new_record("x"))
        if not case.startswith("plain"):
            assert "certificate verify failed" in str(caught.value)
        assert await store.healthy() is False
    finally:
        await store.aclose()
