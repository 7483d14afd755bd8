"""The `mcpServer.redis` block in its three modes: what loads, what is refused and with which pointer, and that
the schema and the address parser accept exactly the same address forms."""

from __future__ import annotations

from typing import Any

import pytest

from higress_ops.config import ConfigError, load_document
from higress_ops.config.model import RedisConfig
from higress_ops.sessions.redis_client import RedisSettingsError, parse_address, target_from_config


def load_redis(block: dict[str, Any]) -> RedisConfig:
    config = load_document({"mcpServer": {"enable": True, "redis": block}})
    assert config.redis is not None
    return config.redis


def problems(block: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_document({"mcpServer": {"enable": True, "redis": block}})
    return [str(p) for p in caught.value.problems]


def test_single_address_form_is_unchanged() -> None:
    redis = load_redis({"address": "redis.higress-system.svc.cluster.local:6379", "db": 2})
    assert (redis.mode, redis.address, redis.addresses, redis.db) == (
        "single", "redis.higress-system.svc.cluster.local:6379", ("redis.higress-system.svc.cluster.local:6379",), 2)
    assert (redis.tls, redis.ca_file) == (False, "")


def test_sentinel_form() -> None:
    redis = load_redis({"sentinel": {"masterName": "mymaster", "addresses": ["s1:26379", "[fd00::2]:26379"],
                                     "password": "sentinel-pw"}, "password": "data-pw"})
    assert (redis.mode, redis.master_name, redis.addresses) == ("sentinel", "mymaster", ("s1:26379", "[fd00::2]:26379"))
    assert (redis.password, redis.sentinel_auth.password) == ("data-pw", "sentinel-pw")
    assert "sentinel-pw" not in repr(redis) and "data-pw" not in repr(redis)
    target = target_from_config(redis)
    assert target.nodes == (("s1", 26379), ("fd00::2", 26379))
    assert "pw" not in repr(target) and "mymaster" in target.where


def test_cluster_form_with_tls() -> None:
    redis = load_redis({"cluster": {"addresses": ["n1:7000", "n2:7001"]}, "tls": True, "caFile": "/etc/ca.pem"})
    assert (redis.mode, redis.addresses, redis.tls, redis.ca_file) == ("cluster", ("n1:7000", "n2:7001"), True,
                                                                        "/etc/ca.pem")


@pytest.mark.parametrize(("block", "expected"), [
    ({"address": "r:1", "cluster": {"addresses": ["n:1"]}},
     "/mcpServer/redis: give exactly one of address (one server), sentinel or cluster; found address and cluster"),
    ({"sentinel": {"masterName": "m", "addresses": ["s:1"]}, "cluster": {"addresses": ["n:1"]}},
     "/mcpServer/redis: give exactly one of address (one server), sentinel or cluster; found sentinel and cluster"),
    ({"username": "u"}, "/mcpServer/redis: give exactly one of address (one server), sentinel or cluster; found none"),
    ({"cluster": {"addresses": ["n:1"]}, "db": 3},
     "/mcpServer/redis/db: must be 0 with cluster: Redis Cluster has only db 0"),
    ({"address": "r:1", "caFile": "/ca.pem"}, "/mcpServer/redis/caFile: caFile is only used with tls: true"),
    ({"sentinel": {"addresses": ["s:1"]}}, "/mcpServer/redis/sentinel/masterName: 'masterName' is a required property"),
    ({"sentinel": {"masterName": "m", "addresses": []}}, "/mcpServer/redis/sentinel/addresses: [] should be non-empty"),
    ({"cluster": {"addresses": ["n:1", "n2"]}},
     "/mcpServer/redis/cluster/addresses/1: 'n2' must be host:port or [v6]:port, e.g. "
     "redis.higress-system.svc.cluster.local:6379"),
    ({"cluster": {"addresses": ["n:99999"]}},
     "/mcpServer/redis/cluster/addresses/0: port 99999 is out of range 1-65535"),
    ({"sentinel": {"masterName": "m", "addresses": ["s:1"], "pasword": "x"}},
     "/mcpServer/redis/sentinel/pasword: unknown key 'pasword'; did you mean 'password'?"),
    ({"address": "r:1", "tls": "yes"}, "/mcpServer/redis/tls: 'yes' is not of type 'boolean'"),
])
def test_refused_with_a_pointer(block: dict[str, Any], expected: str) -> None:
    assert expected in problems(block)


@pytest.mark.parametrize("block", [{"sentinel": "s:1"}, {"cluster": {"addresses": "n:1"}}, {"cluster": None},
                                   {"sentinel": {"masterName": "m", "addresses": [7]}}])
def test_wrong_shapes_are_problems_not_crashes(block: dict[str, Any]) -> None:
    assert problems(block)


def test_sentinel_password_never_echoed() -> None:
    found = problems({"sentinel": {"masterName": "m", "addresses": ["s:1"], "password": 4242424242}})
    assert found == ["/mcpServer/redis/sentinel/password: <hidden> is not of type 'string'"]


# Every form either both accept or both refuse (the schema once refused `[v6]:port`, which the parser took).
ADDRESSES = ["redis:6379", "10.0.0.1:6379", "[::1]:6379", "[fd00::1:2]:7000", "redis.ns.svc.cluster.local:1",
             "under_score:65535", "redis", "redis:", ":6379", "[::1]", "::1:6379", "a b:1", "r:6379:1", "",
             "http://r:6379", "r:123456", "[zz]:1", "r/x:1"]


@pytest.mark.parametrize("address", ADDRESSES)
def test_schema_and_parser_agree(address: str) -> None:
    try:
        parse_address(address)
        parser_ok = True
    except RedisSettingsError as exc:
        assert str(exc).startswith("/mcpServer/redis/address: ")
        parser_ok = False
    try:
        load_redis({"address": address})
        schema_ok = True
    except ConfigError as exc:
        assert all(p.pointer == "/mcpServer/redis/address" for p in exc.problems), exc.problems
        schema_ok = False
    assert parser_ok == schema_ok, address
    assert parser_ok == (address in ADDRESSES[:6])


def test_v6_address_parsed_without_brackets() -> None:
    assert parse_address("[::1]:7000") == ("::1", 7000)
    assert target_from_config(load_redis({"address": "[::1]:7000"})).nodes == (("::1", 7000),)


def test_the_three_modes_in_docs_replicas_md_load() -> None:
    """The examples a user copies from docs/replicas.md are valid configs, one per mode."""
    import re
    from pathlib import Path

    import yaml

    text = (Path(__file__).resolve().parents[2] / "docs" / "replicas.md").read_text(encoding="utf-8")
    block = re.search(r"## Three modes.*?```yaml\n(.*?)```", text, re.S)
    assert block is not None
    modes = [load_redis(yaml.safe_load(piece)["redis"]).mode for piece in block.group(1).split("---\n")]
    assert modes == ["single", "sentinel", "cluster"]
