"""The view process: the server's view tools (views/tools.py) run here, over `RemoteSource`, whose every read is
made by the server process (offload.py) with the call's own context: its target pod, its istiod token, its share
of the byte ledger (servers/held.py). Bodies come back as they were read and are parsed here, beside the tools'
pure-Python work, so neither a multi-MB parse (one C call holding the GIL for tens of milliseconds) nor the
detectors' computing ever takes the GIL from the event loop the server's sessions share.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import pickle
import signal
import socket
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from higress_ops import jsonfast
from higress_ops.servers.base import CallContext
from higress_ops.servers.ops import kubeapi
from higress_ops.servers.ops.kubeapi import Listed
from higress_ops.servers.ops.upstream import UpstreamError, json_of
from higress_ops.servers.ops.views.channel import Channel, Header

if TYPE_CHECKING:
    from higress_ops.servers.ops.views.toolkit import ViewTool

# The errors a read may raise, by name: rebuilt here as the class the server process raised.
ERRORS: dict[str, type[Exception]] = {cls.__name__: cls for cls in (
    UpstreamError, kubeapi.KubeError, kubeapi.NotConfigured, kubeapi.NotServed, kubeapi.Forbidden, ValueError)}
ErrorInfo = tuple[str, str, dict[str, Any]]
Answer = tuple[Any, list[bytearray]]


def error_info(exc: Exception) -> ErrorInfo:
    """An error as data: the nearest class of ERRORS, the message, and (for that exact class) its attributes."""
    cls = next(c for c in type(exc).__mro__ if ERRORS.get(c.__name__) is c)
    return cls.__name__, str(exc), dict(vars(exc)) if cls is type(exc) else {}


def rebuilt(info: ErrorInfo) -> Exception:
    name, message, attrs = info
    cls = ERRORS[name]
    exc = cls.__new__(cls)
    exc.args = (message,)
    exc.__dict__.update(attrs)
    return exc


class Link:
    """One job's reads in flight, each asked of the server process and answered under its number."""

    def __init__(self, channel: Channel, job: int) -> None:
        self.channel = channel
        self.job = job
        self._seq = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Answer]] = {}

    async def ask(self, what: str, *args: Any) -> Answer:
        seq = next(self._seq)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting[seq] = future
        self.channel.send("read", self.job, seq, (what, args))
        try:
            return await future
        finally:
            del self._waiting[seq]

    def answer(self, kind: str, seq: int, data: Any, frames: list[bytearray]) -> None:
        future = self._waiting.get(seq)
        if future is None or future.done():
            return
        if kind == "error":
            future.set_exception(rebuilt(data))
        else:
            future.set_result((data, frames))


class RemoteSource:
    """The views' Source (source.py) in the view process. `ctx` is the server process's to apply: ignored here."""

    def __init__(self, link: Link, max_bytes: int, namespace: str, kube_namespaces: tuple[str, ...]) -> None:
        self.link = link
        self.max_bytes = max_bytes
        self.namespace = namespace
        self.kube_namespaces = kube_namespaces

    async def envoy_json(self, path: str, params: Mapping[str, str] | None = None,
                         ctx: CallContext | None = None) -> Any:
        _, (body,) = await self.link.ask("envoy", path, dict(params or {}))
        return json_of(body, "Envoy admin", path)

    async def istiod_json(self, path: str, params: Mapping[str, str] | None, ctx: CallContext) -> Any:
        _, (body,) = await self.link.ask("istiod", path, dict(params or {}))
        return json_of(body, "istiod", path)

    async def istiod_json_each(self, path: str, params: Mapping[str, str] | None,
                               ctx: CallContext) -> list[tuple[str, Any]]:
        heads, frames = await self.link.ask("istiod_each", path, dict(params or {}))
        bodies = iter(frames)
        answers: list[tuple[str, Any]] = []
        for name, who, error in heads:
            if error is not None:
                answers.append((name, rebuilt(error)))
                continue
            try:
                answers.append((name, json_of(next(bodies), who, path)))
            except UpstreamError as exc:
                answers.append((name, exc))
        return answers

    async def kube_list(self, kind: str, namespace: str, labels: str = "", fields: str = "") -> Listed:
        (listed_kind, listed_namespace, cut, version), (items,) = await self.link.ask(
            "kube_list", kind, namespace, labels, fields)
        return Listed(listed_kind, listed_namespace, tuple(jsonfast.loads(items)), cut, version)

    async def kube_get(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        found, frames = await self.link.ask("kube_get", kind, namespace, name)
        value: Mapping[str, Any] | None = jsonfast.loads(frames[0]) if found else None
        return value


def main(sock: socket.socket) -> None:
    """The view process (multiprocessing, spawn): run the jobs the server process sends until it is gone. A
    Ctrl-C in a terminal reaches the whole process group: the server process decides when this one ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_Worker(sock).serve())


class _Worker:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.links: dict[int, Link] = {}
        self.tasks: dict[int, asyncio.Task[None]] = {}

    async def serve(self) -> None:
        from higress_ops.servers.ops.views.tools import TOOLS  # here: the tools import offload, which imports this

        self.tools: dict[str, ViewTool] = {tool.spec.name: tool for tool in TOOLS}
        # What importing made lives as long as the process: out of the collector's sight, a full collection
        # walks only the calls' objects (bench P5's calls: 36 -> 10 ms each on average, one every call or two).
        gc.freeze()
        loop = asyncio.get_running_loop()
        gone = asyncio.Event()

        def received(header: Header, frames: list[bytearray]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: this process is ending
                loop.call_soon_threadsafe(self._handle, header, frames)

        def closed() -> None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(gone.set)

        self.channel = Channel(self.sock, received, closed, "higress-ops-views")
        await gone.wait()
        for task in list(self.tasks.values()):
            task.cancel()

    def _handle(self, header: Header, frames: list[bytearray]) -> None:
        kind, job, seq, data = header
        if kind == "run":
            self.links[job] = Link(self.channel, job)
            self.tasks[job] = asyncio.ensure_future(self._run(job, self.links[job], data))
        elif kind == "cancel":
            task = self.tasks.get(job)
            if task is not None:
                task.cancel()
        elif (link := self.links.get(job)) is not None:
            link.answer(kind, seq, data, frames)

    async def _run(self, job: int, link: Link, data: tuple[Any, ...]) -> None:
        name, arguments, max_bytes, namespace, kube_namespaces = data
        source = RemoteSource(link, max_bytes, namespace, kube_namespaces)
        try:
            result = await self.tools[name].run(arguments, source, CallContext())
        except asyncio.CancelledError:
            return  # the call is gone: nobody waits for its answer
        except Exception as exc:  # a bug: the server process raises it where the call was made, as before
            traceback.print_exc()
            self.channel.send("raised", job, 0, _picklable(exc))
        else:
            self.channel.send("done", job, 0, result)
        finally:
            self.links.pop(job, None)
            self.tasks.pop(job, None)


def _picklable(exc: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
