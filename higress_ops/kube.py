"""The one way this process reaches the Kubernetes API: the config source (kube_source.py) and the gateway and
istiod targets (servers/ops/targets.py) share its configuration.

`serve --context/--kubeconfig` sets the choice once (`use`); everything else asks `configuration()` or
`core_api()`. In a pod the in-cluster ServiceAccount is used, elsewhere the kubeconfig ($KUBECONFIG honoured).
"""

from __future__ import annotations

import os
import threading

from kubernetes import client
from kubernetes import config as kube_config

_lock = threading.Lock()
_choice: tuple[str | None, str | None] = (None, None)  # (context, kubeconfig)
_configuration: client.Configuration | None = None
_core: client.CoreV1Api | None = None


def use(context: str | None = None, kubeconfig: str | None = None) -> None:
    """Pick the kubeconfig context/file for the whole process (serve's --context/--kubeconfig)."""
    global _choice, _configuration, _core
    with _lock:
        if (context, kubeconfig) != _choice:
            _choice, _configuration, _core = (context, kubeconfig), None, None


def load(context: str | None = None, kubeconfig: str | None = None) -> client.Configuration:
    """A fresh Configuration: in-cluster when in a pod and nothing else was asked for, else the kubeconfig."""
    configuration = client.Configuration()
    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        kube_config.load_incluster_config(client_configuration=configuration)
    else:
        kube_config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    return configuration


def api_client(context: str | None = None, kubeconfig: str | None = None) -> client.ApiClient:
    """A new ApiClient for an explicit context/kubeconfig (the auth gate's TokenReviews use their own)."""
    return client.ApiClient(load(context, kubeconfig))


def configuration() -> client.Configuration:
    """The process's Configuration, loaded once (raises the kubernetes client's error when there is none)."""
    global _configuration
    with _lock:
        if _configuration is None:
            _configuration = load(*_choice)
        return _configuration


def core_api() -> client.CoreV1Api:
    """CoreV1Api over the shared Configuration, for plain requests (get, list, watch)."""
    global _core
    config = configuration()
    with _lock:
        if _core is None:
            _core = client.CoreV1Api(client.ApiClient(config))
        return _core


def stream_api() -> client.CoreV1Api:
    """CoreV1Api over its own ApiClient, for `kubernetes.stream` (port-forward): that helper swaps the ApiClient's
    call_api while it connects, which would turn a concurrent plain request on a shared ApiClient into a WebSocket."""
    return client.CoreV1Api(client.ApiClient(configuration()))
