"""The contract between the MCP host and a server type.

A server type is a factory `build(entry: ServerEntry) -> McpServer`. The host (transport + MCP core)
only ever talks to `McpServer`; it knows nothing about istiod or Envoy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from higress_ops.auth.base import ANONYMOUS, Principal
from higress_ops.servers.held import CallBytes

if TYPE_CHECKING:  # config imports the registry, which imports this module
    from higress_ops.config.model import ServerEntry


@dataclass(frozen=True)
class ToolSpec:
    """What tools/list shows for one tool (MCP `Tool`)."""

    name: str
    description: str
    input_schema: Mapping[str, Any]
    title: str | None = None
    output_schema: Mapping[str, Any] | None = None
    annotations: Mapping[str, Any] | None = None

    def to_mcp(self) -> dict[str, Any]:
        tool: dict[str, Any] = {"name": self.name, "description": self.description, "inputSchema": self.input_schema}
        if self.title:
            tool["title"] = self.title
        if self.output_schema is not None:
            tool["outputSchema"] = self.output_schema
        if self.annotations:
            tool["annotations"] = dict(self.annotations)
        return tool


@dataclass(frozen=True)
class ToolResult:
    """A tools/call result. Failures a model can act on are results with is_error, not exceptions."""

    content: Sequence[Mapping[str, Any]]
    structured: Mapping[str, Any] | None = None
    is_error: bool = False

    @classmethod
    def text(cls, text: str, *, is_error: bool = False, structured: Mapping[str, Any] | None = None) -> ToolResult:
        return cls(content=[{"type": "text", "text": text}], structured=structured, is_error=is_error)

    @classmethod
    def error(cls, message: str) -> ToolResult:
        return cls.text(message, is_error=True)

    def to_mcp(self) -> dict[str, Any]:
        result: dict[str, Any] = {"content": [dict(c) for c in self.content], "isError": self.is_error}
        if self.structured is not None:
            result["structuredContent"] = dict(self.structured)
        return result


@dataclass(frozen=True)
class PromptArgument:
    name: str
    description: str
    required: bool = False


@dataclass(frozen=True)
class PromptSpec:
    """What prompts/list shows for one prompt (MCP `Prompt`): a playbook the client fills in and hands to
    its model."""

    name: str
    description: str
    arguments: Sequence[PromptArgument] = ()
    title: str | None = None

    def to_mcp(self) -> dict[str, Any]:
        prompt: dict[str, Any] = {"name": self.name, "description": self.description,
                                  "arguments": [{"name": a.name, "description": a.description,
                                                 "required": a.required} for a in self.arguments]}
        if self.title:
            prompt["title"] = self.title
        return prompt


LogFn = Callable[[str, Any], Awaitable[None]]  # (level, data) -> sends notifications/message if enabled


async def _no_log(level: str, data: Any) -> None:
    return None


@dataclass
class CallContext:
    """Per-call facts from the transport a tool may need.

    `headers` holds this request's own headers (lower-case names, never Authorization), e.g.
    `x-istiod-token`. Never log it.
    """

    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    session_id: str | None = None
    caller: str = ""  # who a rate limit counts: the authenticated identity, else the real client address
    address: str = ""  # the real client address (white_list may name it)
    principal: Principal = ANONYMOUS  # who authenticated (anonymous with auth none)
    # Whether server-held credentials (the config's istiodToken) may act for this caller: authenticated
    # callers, or anyone on a loopback bind without auth. Never for anonymous callers from the network.
    use_server_token: bool = True
    target: str | None = None  # the session's pinned target (a gateway pod's name); the server resolves None
    log: LogFn = _no_log
    via: Literal["mcp", "cli"] = "mcp"  # how the call arrived: an error names the knob the caller actually has
    held: CallBytes | None = None  # this call's share of the bytes upstream answers may hold (servers/held.py)

    def derive(self, **changes: Any) -> CallContext:
        """A copy with `changes`, for one call or one target: dataclasses.replace re-runs __init__ over every
        field, several microseconds each time on the per-call path (bench P1's span table)."""
        if not changes.keys() <= _CONTEXT_FIELDS:
            raise TypeError(f"CallContext has no field {sorted(changes.keys() - _CONTEXT_FIELDS)[0]!r}")
        clone = object.__new__(CallContext)
        clone.__dict__.update(self.__dict__)
        clone.__dict__.update(changes)
        return clone


_CONTEXT_FIELDS = frozenset(CallContext.__dataclass_fields__)


@runtime_checkable
class McpServer(Protocol):
    """One configured server, as the MCP core sees it."""

    name: str  # the servers[] entry name
    version: str
    instructions: str | None

    def tools(self) -> Sequence[ToolSpec]:
        """Tools in a stable order."""
        ...

    async def call_tool(self, name: str, arguments: Mapping[str, Any], ctx: CallContext) -> ToolResult:
        """Run a tool whose arguments already passed its input schema. Raise KeyError for an unknown name."""
        ...

    async def aclose(self) -> None:
        """Release upstream connections; called when the server is removed or the process stops."""
        ...

    # Optional: `def probes(self) -> dict[str, tuple[str, str]]`, upstream name -> (a URL that answers when it is
    # there, the config key holding it); `serve` says in its `listening` line which answered.
    # Optional: `async def session_target(self) -> str | None`, asked once at initialize. Its answer is kept in
    # the session record and comes back as CallContext.target on every call of that session, on any replica.


@runtime_checkable
class PromptProvider(Protocol):
    """A server that also offers prompts (optional: a tools-only server does not implement this)."""

    def prompts(self) -> Sequence[PromptSpec]:
        """Prompts in a stable order."""
        ...

    def get_prompt(self, name: str, arguments: Mapping[str, str]) -> list[dict[str, Any]]:
        """The prompt's messages (MCP `PromptMessage`s). Raise KeyError for an unknown name and ValueError,
        with a message for the client, for missing or bad arguments."""
        ...


ServerFactory = Callable[["ServerEntry"], McpServer]


@dataclass(frozen=True)
class ServerType:
    """A registered server type: what `type:` in a servers[] entry names.

    Built by the registry from plugin.yaml, or provided directly by a third-party package as the object
    its `higress_ops.server_types` entry point resolves to.
    """

    name: str
    build: ServerFactory
    config_schema: Mapping[str, Any]
    description: str = ""
