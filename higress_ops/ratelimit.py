"""Higress's `rate_limit` (limit calls per window, white_list exempt), so a looping model cannot hammer istiod or
Envoy through tools/call.

Same algorithm and key shape as Higress's mcp-server filter: a fixed window that starts at a caller's first call
(`SET key limit-1 EX window`, then `DECR`), keyed `mcp-server-limit:<server>:<caller>:<window>:<limit>`, shared by
every replica through Redis. Higress's caller is the uid of a user-level path; here it is the authenticated identity,
else the real client address (the peer, or with --trusted-proxy the right-most untrusted X-Forwarded-For hop), and
white_list holds identities or addresses. When Redis is down the limiter lets calls through (logged): protecting
the upstreams must never take the diagnosis tool down with Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from higress_ops.config.model import McpServerConfig, RateLimit
from higress_ops.sessions.redis_client import REDIS_FAILURES, CommandClient, RedisClients, target_from_config
from higress_ops.sessions.sealing import sealer_for

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

    async def check(self, server: str, caller: str, address: str = "") -> Decision: ...

    async def aclose(self) -> None: ...


def exempt(rule: RateLimit, caller: str, address: str) -> bool:
    """white_list names identities or real client addresses."""
    return caller in rule.white_list or (bool(address) and address in rule.white_list)


def key(rule: RateLimit, server: str, caller: str) -> str:
    return f"mcp-server-limit:{server}:{caller}:{rule.window}:{rule.limit}"


class MemoryRateLimiter:
    """One replica: the same fixed window, in this process.

    O(1) per check with bounded memory: windows all last `rule.window`, so ordering them by start also orders
    them by end; finished ones are dropped from the front as calls come in. Past `max_callers` live windows
    the oldest is forgotten (that caller starts afresh) rather than letting a flood of addresses grow memory.
    """

    def __init__(self, rule: RateLimit, max_callers: int = 200_000) -> None:
        self.rule = rule
        self.max_callers = max_callers
        self._windows: OrderedDict[str, tuple[int, float]] = OrderedDict()  # key -> (remaining, resets at)

    async def check(self, server: str, caller: str, address: str = "") -> Decision:
        if exempt(self.rule, caller, address):
            return ALLOW
        now = time.monotonic()
        windows = self._windows
        while windows:
            oldest = next(iter(windows.values()))
            if oldest[1] > now and len(windows) < self.max_callers:
                break
            windows.popitem(last=False)
        name = key(self.rule, server, caller)
        remaining, resets = windows.get(name, (0, 0.0))
        if now >= resets:
            remaining, resets = self.rule.limit, now + self.rule.window
            windows.pop(name, None)  # a new window goes to the end: the order stays by end time
        remaining -= 1
        windows[name] = (remaining, resets)
        return Decision(remaining >= 0, max(remaining, 0), max(1, int(resets - now + 0.999)))

    def used_up(self, server: str, caller: str) -> int:
        """Seconds until `caller`'s window resets when it has none left, else 0; counts nothing."""
        window = self._windows.get(key(self.rule, server, caller))
        if window is None or window[0] > 0:
            return 0
        left = window[1] - time.monotonic()
        return max(1, int(left + 0.999)) if left > 0 else 0

    def __len__(self) -> int:
        return len(self._windows)

    async def aclose(self) -> None:
        return None


class RedisRateLimiter:
    """Several replicas: the window lives in Redis, so the limit holds across them."""

    def __init__(self, rule: RateLimit, client: CommandClient, clients: RedisClients | None = None,
                 secret: str = "") -> None:
        self.rule = rule
        self._sealer = sealer_for(secret)  # with redis.secret a key names a caller by a keyed tag, not in clear
        self._client = client
        self._clients = clients
        self._script = client.register_script(_SCRIPT)
        self._warned = 0.0

    async def check(self, server: str, caller: str, address: str = "") -> Decision:
        if exempt(self.rule, caller, address):
            return ALLOW
        try:
            async with asyncio.timeout(self._clients.call_timeout if self._clients else 2.0):
                who = self._sealer.tag(caller) if self._sealer is not None else caller
                remaining, ttl = await self._script(keys=[key(self.rule, server, who)],
                                                    args=[self.rule.limit, self.rule.window])
        except (TimeoutError, *REDIS_FAILURES) as exc:
            if time.monotonic() - self._warned > 30:
                self._warned = time.monotonic()
                logger.warning("rate limit not enforced while Redis is unreachable (%s)", type(exc).__name__)
            return ALLOW
        remaining = int(remaining)
        return Decision(remaining >= 0, max(remaining, 0), max(1, int(ttl)))

    async def aclose(self) -> None:
        await self._client.aclose()
        if self._clients is not None:
            await self._clients.aclose()


def make_limiter(config: McpServerConfig, redis_password: str | None = None) -> RateLimiter | None:
    rule = config.rate_limit
    if rule.limit <= 0 or rule.window <= 0:
        return None
    if config.redis is None:
        return MemoryRateLimiter(rule)
    clients = RedisClients(target_from_config(config.redis, redis_password), name="higress-ops:rate-limit")
    return RedisRateLimiter(rule, clients.commands(max_connections=16), clients, config.redis.secret)
