"""Port-forward to one pod the way `istioctl proxy-config` and `kubectl port-forward` do: the API server's
`pods/portforward` subresource over WebSocket (the kubernetes client's `kubernetes.stream.portforward`).

Istio-based gateways bind Envoy's admin API to the pod's loopback, so nothing outside the pod can reach it
except through the kubelet, which connects inside the pod's network namespace. Each pod gets one loopback
listener here; every connection accepted on it is one forwarded stream. The HTTP client's keep-alive pool in
front of the listener is what pools the streams: a call reuses an open stream, it does not open one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

from kubernetes.stream import portforward as kube_portforward

from higress_ops import kube

logger = logging.getLogger(__name__)
_CHUNK = 1 << 16


class PortForward:
    """A loopback listener whose connections are forwarded to `port` of pod `namespace/name`."""

    def __init__(self, namespace: str, name: str, port: int) -> None:
        self.namespace = namespace
        self.name = name
        self.port = port
        self.opened = 0  # streams opened so far (each is one WebSocket to the API server)
        self.last_error = ""  # why the last stream could not be opened, for the caller's error message
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._forwards: set[Any] = set()

    async def start(self) -> int:
        """Listen on a free loopback port and return it."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def _open(self) -> Any:
        api = kube.stream_api()
        return kube_portforward(api.connect_get_namespaced_pod_portforward, self.name, self.namespace,
                                ports=str(self.port), _request_timeout=10)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.CancelledError):  # aclose: end quietly, a raising callback is logged
            await self._forward(reader, writer)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        forward: Any = None
        try:
            try:
                forward = await asyncio.to_thread(self._open)
            except Exception as exc:  # ApiException(status 0, "Handshake status 404 ...") when the pod is gone
                self.last_error = _why(exc)
                logger.warning("port-forward to pod %s/%s failed: %s", self.namespace, self.name, self.last_error)
                return
            self.opened += 1
            self.last_error = ""
            self._forwards.add(forward)
            # The socketpair end the client's proxy thread serves; its wrapper only hides a TCP option an AF_UNIX
            # socket lacks, and asyncio needs the real socket.
            pod_side: socket.socket = forward.socket(self.port)._socket
            pod_side.setblocking(False)
            pod_reader, pod_writer = await asyncio.open_connection(sock=pod_side)
            try:
                await _pump_both(reader, writer, pod_reader, pod_writer)
            finally:
                pod_writer.close()
        finally:
            writer.close()
            if forward is not None:
                self._forwards.discard(forward)
                with contextlib.suppress(Exception):
                    forward.close()
            if task is not None:
                self._tasks.discard(task)

    async def aclose(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for forward in list(self._forwards):
            with contextlib.suppress(Exception):
                forward.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def _pump_both(a_reader: asyncio.StreamReader, a_writer: asyncio.StreamWriter,
                     b_reader: asyncio.StreamReader, b_writer: asyncio.StreamWriter) -> None:
    """Copy both ways until either side ends; then both end (HTTP over it needs no half-close)."""
    pumps = [asyncio.ensure_future(_pump(a_reader, b_writer)), asyncio.ensure_future(_pump(b_reader, a_writer))]
    try:
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()


def _why(exc: BaseException) -> str:
    """A short reason without URLs or tokens: the kubernetes client puts the whole handshake in its message."""
    text = str(getattr(exc, "reason", "") or exc)
    for status, meaning in (("403", "403 Forbidden: the ServiceAccount needs create on pods/portforward"),
                            ("404", "404 Not Found: the pod is gone"), ("401", "401 Unauthorized"),
                            ("Connection refused", "the API server refused the connection")):
        if status in text:
            return meaning
    return type(exc).__name__
