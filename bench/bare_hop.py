"""The floor under P1: the cheapest Python hop there is on the same stack (uvicorn with uvloop and httptools, an
aiohttp pool to Envoy), doing no MCP work at all: it reads the POST, GETs /server_info, and answers a fixed body the
size of higress-ops' answer. What P1 measures above this is the MCP layer's own cost; what this costs above the
direct GET is the hop itself (two more loopback exchanges and a process). Run as
`python -m bench.bare_hop ENVOY_ADMIN_URL PORT ANSWER_BYTES`."""

from __future__ import annotations

import sys
from typing import Any

import aiohttp
import uvicorn

ENVOY = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:15000"
ANSWER = b'{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"' + \
    b"x" * (int(sys.argv[3]) if len(sys.argv) > 3 else 25_000) + b'"}],"isError":false}}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]
_session: aiohttp.ClientSession | None = None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _session
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if _session is None:
        _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8), auto_decompress=False)
    async with _session.get(ENVOY + "/server_info") as response:
        await response.read()
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False, loop="uvloop",
                http="httptools", lifespan="off")
