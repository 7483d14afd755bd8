"""Typed, validated configuration: what the rest of the code sees instead of raw dicts.

Built only by `higress_ops.config.load` after schema validation, so every field here is already
checked and defaulted; nothing downstream re-validates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

MatchRuleType = Literal["exact", "prefix", "suffix", "contains", "regex"]
RedisMode = Literal["single", "sentinel", "cluster"]
UpstreamType = Literal["rest", "sse", "streamable"]


@dataclass(frozen=True)
class SecretRef:
    name: str
    key: str
    namespace: str = ""  # empty: the ConfigMap's own namespace


@dataclass(frozen=True)
class SentinelAuth:
    """Credentials of the Sentinel processes themselves, which may differ from the data nodes'."""

    username: str = ""
    password: str = field(default="", repr=False)  # never printed; filled from password_secret by the kube source
    password_secret: SecretRef | None = None


@dataclass(frozen=True)
class RedisConfig:
    """`mcpServer.redis`: exactly one of `address` (single), `sentinel` or `cluster` was given.

    `addresses` is what to dial first in every mode: the one server, the Sentinels, or the cluster's
    seed nodes (`host:port` or `[v6]:port`)."""

    address: str = ""  # the single-address form, Higress's own; empty in the other modes
    username: str = ""
    password: str = field(default="", repr=False)  # never printed
    db: int = 0
    password_secret: SecretRef | None = None
    mode: RedisMode = "single"
    addresses: tuple[str, ...] = ()
    master_name: str = ""  # sentinel mode: the monitored master's name
    sentinel_auth: SentinelAuth = SentinelAuth()
    tls: bool = False
    ca_file: str = ""  # PEM bundle to verify the server with; empty: the system's CAs
    ca_secret: SecretRef | None = None  # or a Secret's key holding that PEM bundle
    ca_data: str = field(default="", repr=False)  # the PEM read from ca_secret (the kube source fills it)
    # Higress mcp-session's `secret`: every value stored in Redis is sealed with AES-256-GCM under SHA-256 of it
    secret: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if not self.addresses and self.address:  # the single form built directly (tests, Higress shape)
            object.__setattr__(self, "addresses", (self.address,))


@dataclass(frozen=True)
class MatchRule:
    domain: str  # Higress host pattern: "*", "*.x.com", "api.*" or exact
    path: str
    type: MatchRuleType
    upstream_type: UpstreamType = "rest"
    enable_path_rewrite: bool = False
    path_rewrite_prefix: str = ""


@dataclass(frozen=True)
class RateLimit:
    limit: int = 0  # 0: off
    window: int = 0  # seconds
    white_list: tuple[str, ...] = ()
    error_text: str = ""  # the message a refused call gets (Higress mcp-session's error_text); "" : ours


@dataclass(frozen=True)
class ServerEntry:
    name: str
    path: str  # message endpoint; the SSE endpoint is path + sse_path_suffix
    type: str
    domain_list: tuple[str, ...] = ("*",)
    # The type's own config, validated against the type's schema with defaults applied.
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class McpServerConfig:
    enable: bool = False
    sse_path_suffix: str = "/sse"
    redis: RedisConfig | None = None
    match_list: tuple[MatchRule, ...] = ()
    servers: tuple[ServerEntry, ...] = ()
    enable_user_level_server: bool = False
    rate_limit: RateLimit = RateLimit()
    # Not errors: e.g. an unknown key under mcpServer (Higress adds keys, so a typo cannot be refused).
    warnings: tuple[str, ...] = field(default=(), compare=False)
    # servers[] entries of a type no plugin here serves (the gateway's own: higress-api, rag, ...): not served
    skipped: tuple[ServerEntry, ...] = ()

    def server(self, name: str) -> ServerEntry:
        for entry in self.servers:
            if entry.name == name:
                return entry
        raise KeyError(name)


Access = Literal["local", "portforward", "direct"]


@dataclass(frozen=True)
class PodFleet:
    """A `gateways` or `istiods` block of a higress-ops server config: which pods, and how each is reached."""

    namespace: str
    selector: str
    access: Access = "local"  # local: the configured URL (envoyAdminURL or istiodURL), no pod discovery
    port: int = 15000  # gateways.adminPort, istiods.port

    @classmethod
    def of(cls, config: Mapping[str, Any], key: str) -> PodFleet:
        """The block under `key` ("gateways" or "istiods") of a validated server config, defaults applied."""
        block: Mapping[str, Any] = config.get(key) or {}
        port_key, default_port, selector = (("adminPort", 15000, "app=higress-gateway") if key == "gateways"
                                            else ("port", 15014, "app=higress-controller"))
        return cls(namespace=str(block.get("namespace") or config.get("namespace") or "higress-system"),
                   selector=str(block.get("selector") or selector), access=block.get("access", "local"),
                   port=int(block.get(port_key, default_port)))
