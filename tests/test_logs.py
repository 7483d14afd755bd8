"""Structured logs as an operator reads them: one JSON object per line; access lines written in batches by their
own thread and never lost, not at exit, not when that thread falls behind."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx2 as httpx

from tests.support.serve import echo_config, serving

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
BOTH = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def test_access_lines_queued_at_exit_are_written(tmp_path: Path) -> None:
    """A burst of access lines, then the process ends at once: every line is in the output, whole and in order."""
    script = textwrap.dedent("""
        import logging
        from higress_ops import logs
        logs.setup("info", "r1")
        access = logging.getLogger(logs.ACCESS_LOGGER)
        for i in range(3000):
            access.info("request", extra={"n": i, "status": 200})
        logging.getLogger("higress_ops.other").warning("done")
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [json.loads(line) for line in run.stderr.splitlines()]
    numbers = [line["n"] for line in lines if line["msg"] == "request"]
    assert numbers == list(range(3000))
    access = next(line for line in lines if line["msg"] == "request")
    assert {"ts", "level", "logger", "replica", "status"} <= set(access) and access["logger"] == "higress_ops.access"
    assert any(line["msg"] == "done" and line["level"] == "warning" for line in lines)


def test_a_full_access_queue_writes_in_the_caller(tmp_path: Path) -> None:
    """Past the queue's bound a line is written at once by its caller: memory stays bounded, nothing is dropped."""
    script = textwrap.dedent("""
        import logging, threading
        from higress_ops import logs
        logs.ACCESS_QUEUE = 5
        logs.setup("info", "r1")
        handler = logging.getLogger().handlers[0]
        handler.acquire()  # the writer thread blocks on the stream's lock: its queue fills
        access = logging.getLogger(logs.ACCESS_LOGGER)
        done = threading.Event()
        def burst():
            for i in range(50):
                access.info("request", extra={"n": i})
            done.set()
        threading.Thread(target=burst).start()
        assert not done.wait(1)  # the burst waits on the same lock once the queue is full: it is bounded
        handler.release()
        assert done.wait(10)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    numbers = sorted(json.loads(line)["n"] for line in run.stderr.splitlines())
    assert numbers == list(range(50))


def test_served_requests_each_leave_one_access_line(tmp_path: Path) -> None:
    with serving(echo_config(("e", "/e")), tmp_path, "--log-level", "info") as server:
        for _ in range(20):
            assert httpx.post(server.url("/e"), json=INIT, headers=BOTH, timeout=10).status_code == 200
        assert server.terminate() == 0
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    requests = [line for line in lines if line["msg"] == "request" and line.get("method") == "initialize"]
    assert len(requests) == 20 and all(line["status"] == 200 and line["server"] == "e" for line in requests)
    assert all(logging.getLevelName(line["level"].upper()) == logging.INFO for line in requests)
