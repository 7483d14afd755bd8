"""Real Redis processes on free loopback ports, no persistence, each stopped by its PID: one redis-server,
a Sentinel group (1 master, 2 replicas, 3 sentinels) and a Redis Cluster (3 masters, 3 replicas)."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support.procs import free_port, port_open, stop, wait_until


def _binary(name: str) -> str:
    binary = shutil.which(name)
    if binary is None:
        raise RuntimeError(f"{name} is not installed: run scripts/test, whose bootstrap installs it")
    return binary


@dataclass
class RedisServer:
    port: int
    workdir: Path
    password: str | None = None
    extra: tuple[str, ...] = ()  # more redis-server arguments (replicaof, cluster-enabled, tls-port ...)
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        binary = _binary("redis-server")
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir), "--logfile", str(self.workdir / "redis.log"),
                "--repl-diskless-sync-delay", "0", *self.extra]  # replicas sync at once, not after 5 s
        if self.password:
            args += ["--requirepass", self.password, "--masterauth", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: port_open(self.port), 10, "redis-server", self.proc)
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=2)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def kill(self) -> None:
        """SIGKILL: no goodbye to replicas, sentinels or cluster peers."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        """Start again on the same port (after stop or kill)."""
        self.stop()
        self.start()


def start_redis(workdir: Path, password: str | None = None, port: int | None = None) -> RedisServer:
    return RedisServer(port=port or free_port(), workdir=workdir, password=password).start()


@dataclass
class SentinelGroup:
    """A master, its replicas and the sentinels watching it, all on loopback; failover after ~1 s of silence."""

    master_name: str
    servers: list[RedisServer]
    sentinel_ports: list[int]
    workdir: Path
    sentinels: list[subprocess.Popen] = field(default_factory=list, repr=False)
    sentinel_password: str | None = None  # the Sentinels' own `requirepass`

    def sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=self.sentinel_password, socket_timeout=1)

    @property
    def sentinel_addresses(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.sentinel_ports]

    def master(self) -> RedisServer:
        """The server the sentinels name as master now."""
        for port in self.sentinel_ports:
            try:
                _host, master_port = self.sentinel(port).sentinel_get_master_addr_by_name(self.master_name)
            except (redis.RedisError, OSError, TypeError):
                continue
            return next(s for s in self.servers if s.port == int(master_port))
        raise RuntimeError("no sentinel names a master")

    def wait_ready(self, timeout: float = 20) -> None:
        """Every replica linked to the master, and every sentinel sees them all and the other sentinels."""
        def ready() -> bool:
            master = self.master()
            if any(s.client().info("replication").get("master_link_status") != "up"
                   for s in self.servers if s.port != master.port):
                return False
            for port in self.sentinel_ports:
                state = self.sentinel(port).sentinel_master(self.master_name)
                if int(state["num-slaves"]) < len(self.servers) - 1 or \
                        int(state["num-other-sentinels"]) < len(self.sentinel_ports) - 1:
                    return False
            return True
        wait_until(ready, timeout, "sentinel group")

    def wait_failover(self, old: RedisServer, timeout: float = 20) -> tuple[RedisServer, float]:
        """Block until the sentinels name a new master; (it, seconds waited)."""
        started = time.monotonic()
        wait_until(lambda: self.master().port != old.port and self.master().client().ping(), timeout, "failover")
        return self.master(), time.monotonic() - started

    def stop(self) -> None:
        for proc in self.sentinels:
            stop(proc)
        for server in self.servers:
            server.stop()


def start_sentinel_group(workdir: Path, *, replicas: int = 2, sentinels: int = 3, master_name: str = "mymaster",
                         sentinel_password: str | None = None) -> SentinelGroup:
    master = RedisServer(free_port(), workdir / "r0").start()
    servers = [master]
    group = SentinelGroup(master_name, servers, [], workdir, sentinel_password=sentinel_password)
    try:
        for i in range(replicas):
            servers.append(RedisServer(free_port(), workdir / f"r{i + 1}",
                                       extra=("--replicaof", "127.0.0.1", str(master.port))).start())
        binary = _binary("redis-sentinel")
        for i in range(sentinels):
            port = free_port()
            home = workdir / f"s{i}"
            home.mkdir(parents=True, exist_ok=True)
            conf = home / "sentinel.conf"  # sentinel rewrites it as the group changes
            conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {home}\nlogfile {home / 'sentinel.log'}\n"
                            f"sentinel monitor {master_name} 127.0.0.1 {master.port} 2\n"
                            f"sentinel down-after-milliseconds {master_name} 1000\n"
                            f"sentinel failover-timeout {master_name} 5000\n"
                            + (f"requirepass {sentinel_password}\n" if sentinel_password else ""))
            proc = subprocess.Popen([binary, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            group.sentinels.append(proc)
            group.sentinel_ports.append(port)
            wait_until(lambda p=port: port_open(p), 10, "redis-sentinel", proc)
        group.wait_ready()
    except Exception:
        group.stop()
        raise
    return group


@dataclass
class RedisClusterNodes:
    """A Redis Cluster made by `redis-cli --cluster create`: masters and one replica each."""

    servers: list[RedisServer]
    workdir: Path

    @property
    def addresses(self) -> list[str]:
        return [s.address for s in self.servers]

    def alive(self) -> list[RedisServer]:
        return [s for s in self.servers if s.proc is not None and s.proc.poll() is None]

    def node_of_slot(self, slot: int) -> RedisServer:
        """The master serving `slot` now, as a live node's CLUSTER SLOTS says."""
        for server in self.alive():
            try:
                for start, end, master, *_ in server.client().execute_command("CLUSTER SLOTS"):
                    if start <= slot <= end:
                        return next(s for s in self.servers if s.port == int(master[1]))
            except (redis.RedisError, OSError):
                continue
        raise RuntimeError(f"no live node knows slot {slot}")

    def slot_count(self, master: RedisServer) -> int:
        """How many slots `master` serves now."""
        ranges = master.client().execute_command("CLUSTER SLOTS")
        return sum(end - start + 1 for start, end, owner, *_ in ranges if int(owner[1]) == master.port)

    def wait_agreed(self, timeout: float = 15) -> None:
        """Until `redis-cli --cluster check` passes: every node agrees on the slot map and no slot is open.
        A reshard started before the nodes agree after the previous one refuses to run."""
        def agreed() -> bool:
            done = subprocess.run([_binary("redis-cli"), "--cluster", "check", self.alive()[0].address],
                                  capture_output=True, text=True, timeout=10)
            return done.returncode == 0 and "[ERR]" not in done.stdout and "[WARNING]" not in done.stdout
        wait_until(agreed, timeout, "cluster nodes to agree")

    def move_slots(self, source: RedisServer, target: RedisServer, count: int) -> None:
        """`redis-cli --cluster reshard`: `count` slots, with their keys, from source to target."""
        self.wait_agreed()
        self.redis_cli("--cluster", "reshard", source.address, "--cluster-from", source.client().cluster("myid"),
                       "--cluster-to", target.client().cluster("myid"), "--cluster-slots", str(count),
                       "--cluster-yes", "--cluster-pipeline", "100")

    def masters(self) -> list[RedisServer]:
        return [s for s in self.alive() if s.client().info("replication")["role"] == "master"]

    def wait_ok(self, timeout: float = 30) -> None:
        """cluster_state:ok on every live node, and every replica in sync with its master."""
        def ok() -> bool:
            for server in self.alive():
                info = server.client().info("replication")
                if info["role"] == "slave" and info.get("master_link_status") != "up":
                    return False
            return all(s.client().cluster("info")["cluster_state"] == "ok" for s in self.alive())
        wait_until(ok, timeout, "redis cluster")

    def redis_cli(self, *args: str, timeout: float = 60) -> str:
        done = subprocess.run([_binary("redis-cli"), *args], capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli {' '.join(args[:3])} failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")
        return done.stdout

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def start_redis_cluster(workdir: Path, *, masters: int = 3, replicas_each: int = 1) -> RedisClusterNodes:
    servers: list[RedisServer] = []
    nodes = RedisClusterNodes(servers, workdir)
    try:
        for i in range(masters * (1 + replicas_each)):
            home = workdir / f"n{i}"
            servers.append(RedisServer(free_port(), home, extra=(
                "--cluster-enabled", "yes", "--cluster-config-file", str(home / "nodes.conf"),
                "--cluster-port", str(free_port()),  # the bus port, instead of port + 10000
                "--cluster-node-timeout", "1000", "--cluster-replica-validity-factor", "0")).start())
        nodes.redis_cli("--cluster", "create", *nodes.addresses, "--cluster-replicas", str(replicas_each),
                        "--cluster-yes")
        nodes.wait_ok()
    except Exception:
        nodes.stop()
        raise
    return nodes
