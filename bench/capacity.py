"""P4: thousands of idle legacy SSE sessions on one replica: RSS per session, and what keep-alives cost."""

from __future__ import annotations

import asyncio
import resource
import time
from pathlib import Path
from typing import Any

from bench.harness import ProcStat
from tests.support.serve import ServeProcess, echo_config, write_config

REQUEST = b"GET /e/sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"


async def _open(port: int, count: int) -> list[asyncio.StreamWriter]:
    writers: list[asyncio.StreamWriter] = []
    semaphore = asyncio.Semaphore(200)

    async def one() -> None:
        async with semaphore:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(REQUEST)
            await writer.drain()
            data = b""
            while b"event: endpoint" not in data:
                chunk = await reader.read(4096)
                assert chunk, "stream closed before its endpoint event"
                data += chunk
            writers.append(writer)

    await asyncio.gather(*(one() for _ in range(count)))
    return writers


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def run(workdir: Path, scale: str) -> dict[str, Any]:
    sessions, window = {"smoke": (50, 1.0), "quick": (500, 3.0)}.get(scale, (10_000, 15.0))
    keepalive = 1.0  # 15x the default rate, so the window sees enough of them; scaled back below
    _raise_fd_limit(sessions * 2 + 1000)  # the server inherits it
    config = write_config(workdir / "cap.yaml", echo_config(("e", "/e")))
    limits = ("--max-sessions", str(sessions + 100), "--max-sessions-per-identity", str(sessions + 100),
              "--max-connections", str(sessions + 1000))  # one client address opens them all
    server = ServeProcess(config, workdir, ("--keepalive", str(keepalive), "--log-level", "warning", *limits)).start()
    try:
        stat = ProcStat(server.proc.pid)  # type: ignore[union-attr]

        async def measure() -> dict[str, Any]:
            warm = await _open(server.port, 50)
            await asyncio.sleep(0.5)
            before = stat.rss_bytes()
            writers = await _open(server.port, sessions)
            await asyncio.sleep(1.0)
            after = stat.rss_bytes()
            cpu0, t0 = stat.cpu_seconds(), time.monotonic()
            await asyncio.sleep(window)
            busy = (stat.cpu_seconds() - cpu0) / (time.monotonic() - t0)
            for writer in writers + warm:
                writer.close()
            return {"before": before, "after": after, "busy": busy}

        figures = asyncio.run(measure())
    finally:
        server.stop()
    per_session = (figures["after"] - figures["before"]) / sessions
    at_default = figures["busy"] * keepalive / 15.0
    return {"P4": {"sessions": sessions, "rss_before_mb": figures["before"] / 2**20,
                   "rss_after_mb": figures["after"] / 2**20, "rss_per_session_kb": per_session / 1024,
                   "idle_cpu_at_1s_keepalive": figures["busy"], "keepalive_cpu_at_default_15s": at_default,
                   "target": "rss_per_session_kb <= 15 and keepalive cpu < 0.10 of a core",
                   "met": per_session / 1024 <= 15 and at_default < 0.10}}
