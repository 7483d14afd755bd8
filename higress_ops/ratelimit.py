"""Higress's `rate_limit` (limit calls per window, white_list exempt), so a looping model cannot hammer istiod or
Envoy through tools/call.

Same algorithm and key shape as Higress's mcp-server filter: a fixed window that starts at a caller's first call
(`SET key limit-1 EX window`, then `DECR`), keyed `mcp-server-limit:<server>:<caller>:<window>:<limit>`, shared by
every replica through Redis. Higress's caller is the uid of a user-level path; here it is the client address (the
first X-Forwarded-For hop, else the peer), and white_list holds such callers. When Redis is down the limiter lets
calls through (logged): protecting the upstreams must never take the diagnosis tool down with Redis.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from higress_ops.config.model import McpServerConfig, RateLimit

logger = logging.getLogger(__name__)

_SCRIPT = """
local ttl = redis.call('ttl', KEYS[1])
if ttl < 0 then
  redis.call('set', KEYS[1], ARGV[1] - 1, 'EX', ARGV[2])
  return {ARGV[1] - 1, tonumber(ARGV[2])}
end
return {redis.call('decr', KEYS[1]), ttl}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after: int  # seconds until the window resets


ALLOW = Decision(True, -1, 0)


class RateLimiter(Protocol):
    rule: RateLimit

    async def check(self, server: str, caller: str) -> Decision: ...

    async def aclose(self) -> None: ...


def key(rule: RateLimit, server: str, caller: str) -> str:
    return f"mcp-server-limit:{server}:{caller}:{rule.window}:{rule.limit}"


class MemoryRateLimiter:
    """One replica: the same fixed window, in this process."""

    def __init__(self, rule: RateLimit) -> None:
        self.rule = rule
        self._windows: dict[str, tuple[int, float]] = {}  # key -> (remaining, resets at)

    async def check(self, server: str, caller: str) -> Decision:
        if caller in self.rule.white_list:
            return ALLOW
        now = time.monotonic()
        name = key(self.rule, server, caller)
        remaining, resets = self._windows.get(name, (0, 0.0))
        if now >= resets:
            remaining, resets = self.rule.limit, now + self.rule.window
            if len(self._windows) > 100_000:  # callers come and go: forget finished windows
                self._windows = {k: v for k, v in self._windows.items() if v[1] > now}
        remaining -= 1
        self._windows[name] = (remaining, resets)
        return Decision(remaining >= 0, max(remaining, 0), max(1, int(resets - now + 0.999)))

    async def aclose(self) -> None:
        return None


class RedisRateLimiter:
    """Several replicas: the window lives in Redis, so the limit holds across them."""

    def __init__(self, rule: RateLimit, client: aioredis.Redis) -> None:
        self.rule = rule
        self._client = client
        self._script = client.register_script(_SCRIPT)
        self._warned = 0.0

    async def check(self, server: str, caller: str) -> Decision:
        if caller in self.rule.white_list:
            return ALLOW
        try:
            remaining, ttl = await self._script(keys=[key(self.rule, server, caller)],
                                                args=[self.rule.limit, self.rule.window])
        except (RedisError, OSError) as exc:
            if time.monotonic() - self._warned > 30:
                self._warned = time.monotonic()
                logger.warning("rate limit not enforced while Redis is unreachable (%s)", type(exc).__name__)
            return ALLOW
        remaining = int(remaining)
        return Decision(remaining >= 0, max(remaining, 0), max(1, int(ttl)))

    async def aclose(self) -> None:
        await self._client.aclose()


def make_limiter(config: McpServerConfig, redis_password: str | None = None) -> RateLimiter | None:
    rule = config.rate_limit
    if rule.limit <= 0 or rule.window <= 0:
        return None
    if config.redis is None:
        return MemoryRateLimiter(rule)
    from higress_ops.sessions.redis import target_from_config

    target = target_from_config(config.redis, redis_password)
    client = aioredis.Redis(host=target.host, port=target.port, db=target.db, username=target.username,
                            password=target.password, socket_timeout=0.5, socket_connect_timeout=0.5)
    return RedisRateLimiter(rule, client)
