"""The real processes the suite relies on start and answer."""

import redis
import requests

from tests.support.envoy import Envoy, http_listener, static_cluster
from tests.support.procs import free_port


def test_redis_server_answers(redis_server):
    assert redis.Redis(port=redis_server.port).ping() is True


def test_envoy_starts_from_a_written_bootstrap(tmp_path):
    route = {"name": "local", "virtual_hosts": [{"name": "vh", "domains": ["*"],
                                                 "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "b"}}]}]}
    envoy = Envoy({"static_resources": {"clusters": [static_cluster("b", 9)],
                                        "listeners": [http_listener("l", free_port(), route)]}}, tmp_path).start()
    try:
        info = requests.get(f"{envoy.admin_url}/server_info", timeout=5).json()
        assert info["state"] == "LIVE"
        assert info["version"].split("/")[1].startswith("1.40")
    finally:
        envoy.stop()
