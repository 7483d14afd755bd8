"""MCP protocol revisions this host speaks, and how an initialize request picks one."""

from __future__ import annotations

LEGACY = "2024-11-05"  # HTTP+SSE
STREAMABLE = ("2025-03-26", "2025-06-18", "2025-11-25")  # streamable HTTP with the initialize handshake
STATELESS = "2026-07-28"  # per-request envelope, no handshake, no session

SESSION_VERSIONS = (LEGACY, *STREAMABLE)
LATEST_SESSION = SESSION_VERSIONS[-1]
SUPPORTED = (*SESSION_VERSIONS, STATELESS)
BATCH_VERSIONS = ("2025-03-26",)  # the only revision whose transport allows JSON-RPC batches


def negotiate(requested: str | None) -> str:
    """The client's version when we speak it over a handshake, else our latest (the client then decides)."""
    if requested in SESSION_VERSIONS:
        return requested
    return LATEST_SESSION
