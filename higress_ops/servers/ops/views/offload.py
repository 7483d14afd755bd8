"""The server's side of the view process (remote.py): a view tool runs there, and every read it makes comes back
here to be made with the call's own context (target pod, istiod token, the byte ledger's bounds, metrics), its
body sent on as it was read.

Why a process: parsing a multi-MB document is one C call that holds the GIL for tens of milliseconds, in a worker
thread as on the loop, and the detectors' pure-Python work in a thread takes the GIL from the loop in 5 ms
slices, each time the loop needs it. Either stalled every other session of this process (benchmarks P5 and P7:
a concurrent ping's p99 of 70-370 ms during the views of a 12 MB dump and analyze of a 2,500-route Higress
gateway; about 5 ms now). Here the loop only moves bytes: the view process parses, computes and sends back the
answer alone, which is small.

One view process serves every call and every event loop of this process (a call's messages are handed to its
own loop); it is spawned on first use, and again after it ends (a call it was running answers with an error).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import multiprocessing
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from higress_ops import jsonfast
from higress_ops.servers.base import CallContext, ToolResult
from higress_ops.servers.ops.upstream import Fetched, UpstreamError, Upstreams
from higress_ops.servers.ops.views import remote
from higress_ops.servers.ops.views.channel import Channel, Header

_JOBS = itertools.count(1)


@dataclass(eq=False)
class _Job:
    """One call running in the view process, and the reads it asked this process for."""

    id: int
    tool: str
    loop: asyncio.AbstractEventLoop
    upstreams: Upstreams
    ctx: CallContext
    context: contextvars.Context  # the call's (spans marks, ...), for the reads made on its behalf
    result: asyncio.Future[ToolResult]
    reads: set[asyncio.Task[None]] = field(default_factory=set)


class ViewProcess:
    """The spawned process and the socket to it."""

    def __init__(self) -> None:
        spawn = multiprocessing.get_context("spawn")
        here, there = socket.socketpair()
        self.process = spawn.Process(target=remote.main, args=(there,), name="higress-ops-views", daemon=True)
        self.process.start()
        there.close()
        self.alive = True
        self._jobs: dict[int, _Job] = {}
        self._lock = threading.Lock()
        self.channel = Channel(here, self._received, self._ended, "higress-ops-views")

    async def run(self, tool: str, arguments: Mapping[str, Any], upstreams: Upstreams,
                  ctx: CallContext) -> ToolResult:
        loop = asyncio.get_running_loop()
        job = _Job(next(_JOBS), tool, loop, upstreams, ctx, contextvars.copy_context(), loop.create_future())
        with self._lock:
            if not self.alive:
                return _gone(tool, self.process.exitcode)
            self._jobs[job.id] = job
        self.channel.send("run", job.id, 0, (tool, dict(arguments), upstreams.max_bytes, upstreams.namespace,
                                             tuple(upstreams.kube_namespaces)))
        try:
            return await job.result
        except BaseException:  # cancelled, or a read met a bug: the view there stops too
            self.channel.send("cancel", job.id)
            raise
        finally:
            with self._lock:
                self._jobs.pop(job.id, None)
            for task in list(job.reads):
                task.cancel()

    # -- in the reader thread: hand each message to its call's loop -------------------------------------------

    def _received(self, header: Header, frames: list[bytearray]) -> None:
        with self._lock:
            job = self._jobs.get(header[1])
        if job is not None:
            with contextlib.suppress(RuntimeError):  # its loop is closed: the call is gone
                job.loop.call_soon_threadsafe(self._handle, job, header)

    def _ended(self) -> None:
        with self._lock:
            self.alive = False
            jobs = list(self._jobs.values())
        self.process.join(timeout=5)
        for job in jobs:
            with contextlib.suppress(RuntimeError):
                job.loop.call_soon_threadsafe(_settle, job.result, _gone(job.tool, self.process.exitcode))

    # -- on the call's loop ------------------------------------------------------------------------------

    def _handle(self, job: _Job, header: Header) -> None:
        kind, _, seq, data = header
        if kind == "read":
            task = job.loop.create_task(self._serve(job, seq, data), context=job.context)
            job.reads.add(task)
            task.add_done_callback(job.reads.discard)
        elif kind == "done":
            _settle(job.result, data)
        elif kind == "raised" and not job.result.done():
            job.result.set_exception(data)

    async def _serve(self, job: _Job, seq: int, request: tuple[str, tuple[Any, ...]]) -> None:
        what, args = request
        try:
            data, frames = await _read(job.upstreams, job.ctx, what, args)
        except (UpstreamError, ValueError) as exc:  # the view's to handle, as when it read here
            self.channel.send("error", job.id, seq, remote.error_info(exc))
            return
        except Exception as exc:  # a bug: the call raises it, as it did when the view ran here
            if not job.result.done():
                job.result.set_exception(exc)
            return
        self.channel.send("reply", job.id, seq, data, frames)


async def _read(upstreams: Upstreams, ctx: CallContext, what: str, args: tuple[Any, ...]) -> tuple[Any, list[bytes]]:
    """One read of RemoteSource's, as (small data, the bodies): Envoy's and istiod's bodies as they came, the
    Kubernetes API's objects as JSON (they were parsed here, by its client's worker thread)."""
    if what in ("envoy", "istiod"):
        path, params = args
        fetched = await upstreams.fetch(what, path, list(params.items()), ctx)
        return None, [fetched.body]
    if what == "istiod_each":
        path, params = args
        answers = await upstreams.istiod_fetch_each(path, params, ctx)
        heads = [(name, who, None if isinstance(a, Fetched) else remote.error_info(a)) for name, who, a in answers]
        return heads, [a.body for _, _, a in answers if isinstance(a, Fetched)]
    if what == "kube_list":
        listed = await upstreams.kube_list(*args)
        return (listed.kind, listed.namespace, listed.cut, listed.resource_version), [jsonfast.dumps(listed.items)]
    if what == "kube_get":
        found = await upstreams.kube_get(*args)
        return found is not None, [] if found is None else [jsonfast.dumps(found)]
    raise ValueError(f"the view process asked for an unknown read: {what!r}")


def _settle(future: asyncio.Future[ToolResult], result: ToolResult) -> None:
    if not future.done():
        future.set_result(result)


def _gone(tool: str, code: int | None) -> ToolResult:
    how = f"exit code {code}" if code is not None else "it stopped answering"
    return ToolResult.error(f"{tool}: the view process ended during the call ({how}); the next call starts a new "
                            "one, so retry")


_LOCK = threading.Lock()
_CURRENT: ViewProcess | None = None


def view_process() -> ViewProcess:
    """The running view process, or a new one."""
    global _CURRENT
    with _LOCK:
        if _CURRENT is None or not _CURRENT.alive:
            _CURRENT = ViewProcess()
        return _CURRENT


async def run(tool: str, arguments: Mapping[str, Any], upstreams: Upstreams, ctx: CallContext) -> ToolResult:
    """Run the view tool `tool` in the view process; its reads are made here, with `ctx`."""
    return await view_process().run(tool, arguments, upstreams, ctx)
