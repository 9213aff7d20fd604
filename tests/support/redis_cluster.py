"""A real Redis Cluster for tests: 3 masters + 3 replicas on loopback, up in a few seconds.

cluster = RedisCluster()          # starts 6 redis-server processes and forms the cluster
cluster.url                       # "redis+cluster://127.0.0.1:<p1>,127.0.0.1:<p2>"
cluster.masters()                 # [(port, node id, [(start, end), …])] as the cluster sees it
cluster.master_of(slot)           # port of the master serving ``slot``
cluster.replica_of(port)          # port of the replica of that master
cluster.kill(port) / restart(port) / pause(port) / resume(port)
cluster.wait_for_master(slot, not_port)   # until a replica has taken ``slot`` over
cluster.ensure_healthy()          # restart/resume what a test broke; every slot served again
cluster.stop()

Each node has its own data directory (``nodes.conf`` survives a restart, the data does not:
no RDB, no AOF), a short ``cluster-node-timeout`` and ``cluster-require-full-coverage no``
(docs/DEPLOYMENT.md explains both). The cluster bus port is chosen explicitly
(``cluster-port``), so a node needs two free ports, not port + 10000.

The ``redis_cluster`` fixture gives one cluster for the whole session; ``cluster_url`` hands a
test that cluster healthy and empty.
"""

from __future__ import annotations

import itertools
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis_server import START_TIMEOUT_S, _answers_ping, _free_port, find_redis_server

from verifier.store.slots import key_slot

NODE_TIMEOUT_MS = 2000
SLOTS = 16384
READY_TIMEOUT_S = 30.0


class ClusterNode:
    """One redis-server with cluster mode on; started by :meth:`start`."""

    def __init__(self, binary: str, root: Path, index: int) -> None:
        self.binary = binary
        self.dir = root / f"node{index}"
        self.dir.mkdir()
        self.port = _free_port()
        self.bus_port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False

    def start(self) -> None:
        log = self.dir / "redis.log"
        self.proc = subprocess.Popen(
            [
                self.binary,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
                *("--cluster-port", str(self.bus_port)),
                *("--cluster-node-timeout", str(NODE_TIMEOUT_MS)),
                *("--cluster-require-full-coverage", "no"),
                *("--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"),
                *("--dir", str(self.dir), "--logfile", str(log)),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.paused = False
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers_ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"redis-server did not start on port {self.port}:\n{text}")
            time.sleep(0.01)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if self.paused:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
        self.paused = False

    def pause(self) -> None:
        assert self.proc is not None and self.running
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.proc is not None and self.running
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if self.paused:
                self.resume()
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)


class RedisCluster:
    """``masters`` masters with one replica each, slots split evenly, formed by hand (seconds)."""

    def __init__(self, masters: int = 3) -> None:
        binary = find_redis_server()
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self._root = Path(tempfile.mkdtemp(prefix="redis-cluster-test-"))
        self.nodes = [ClusterNode(binary, self._root, i) for i in range(2 * masters)]
        try:
            for node in self.nodes:
                for attempt in range(3):  # another process may grab a free port first
                    try:
                        node.start()
                        break
                    except RuntimeError:
                        if attempt == 2:
                            raise
                        node.port, node.bus_port = _free_port(), _free_port()
            self._form(masters)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        """Two seeds, as an operator would give them."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port},127.0.0.1:{self.nodes[1].port}"

    def node(self, port: int) -> ClusterNode:
        return next(n for n in self.nodes if n.port == port)

    def _form(self, masters: int) -> None:
        per = SLOTS // masters
        for i, node in enumerate(self.nodes):
            with node.client() as c:
                # Distinct epochs up front, as redis-cli does: no epoch collision to resolve.
                c.execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
                if i < masters:
                    end = SLOTS - 1 if i == masters - 1 else (i + 1) * per - 1
                    c.execute_command("CLUSTER", "ADDSLOTSRANGE", i * per, end)
        with self.nodes[0].client() as c:
            for node in self.nodes[1:]:
                c.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, node.bus_port)
        self._wait(lambda: all(len(self._node_lines(n)) == len(self.nodes) for n in self.nodes))
        for master, replica in zip(self.nodes[:masters], self.nodes[masters:], strict=True):
            with master.client() as c:
                master_id = c.execute_command("CLUSTER", "MYID").decode()
            self._wait(lambda r=replica, m=master_id: m in self._known_ids(r))  # type: ignore[misc]
            with replica.client() as c:
                c.execute_command("CLUSTER", "REPLICATE", master_id)
        self._wait(self._healthy)

    # -- what the cluster says ------------------------------------------------------------

    @staticmethod
    def _node_lines(node: ClusterNode) -> list[list[str]]:
        """CLUSTER NODES of one node, without nodes still in handshake."""
        with node.client() as c:
            text = c.execute_command("CLUSTER", "NODES")
        text = text.decode() if isinstance(text, bytes) else text
        lines = [line.split() for line in text.splitlines() if line.strip()]
        return [f for f in lines if "handshake" not in f[2] and "noaddr" not in f[2]]

    def _known_ids(self, node: ClusterNode) -> set[str]:
        return {f[0] for f in self._node_lines(node)}

    def masters(self) -> list[tuple[int, str, list[tuple[int, int]]]]:
        """(port, node id, slot ranges) of every master serving slots, as a running node sees it."""
        node = next(n for n in self.nodes if n.running and not n.paused)
        out = []
        for f in self._node_lines(node):
            if "master" in f[2] and "fail" not in f[2] and len(f) > 8:
                ranges = []
                for part in f[8:]:
                    if part.startswith("["):
                        continue  # a migrating/importing marker
                    start, _, end = part.partition("-")
                    ranges.append((int(start), int(end or start)))
                port = int(f[1].split("@")[0].rsplit(":", 1)[1])
                out.append((port, f[0], ranges))
        return sorted(out)

    def master_of(self, slot: int) -> int:
        for port, _, ranges in self.masters():
            if any(a <= slot <= b for a, b in ranges):
                return port
        raise LookupError(f"no master serves slot {slot}")

    def subs_by_master(self, per_master: int, prefix: str = "h") -> dict[int, list[str]]:
        """``per_master`` holder ids whose slot each master serves, by master port."""
        masters = self.masters()
        found: dict[int, list[str]] = {port: [] for port, _, _ in masters}
        owners = [(a, b, port) for port, _, ranges in masters for a, b in ranges]
        for i in itertools.count():
            if all(len(subs) >= per_master for subs in found.values()):
                return found
            sub = f"{prefix}{i}"
            slot = key_slot(sub.encode())
            port = next(p for a, b, p in owners if a <= slot <= b)
            if len(found[port]) < per_master:
                found[port].append(sub)
        raise AssertionError("unreachable")

    def node_id(self, port: int) -> str:
        with self.node(port).client() as c:
            return str(c.execute_command("CLUSTER", "MYID").decode())

    def replica_of(self, port: int) -> int:
        master_id = self.node_id(port)
        for node in self.nodes:
            if node.port != port and node.running and not node.paused:
                with node.client() as c:
                    role = c.execute_command("ROLE")
                if role[0] == b"slave" and int(role[2]) == port:
                    return node.port
        raise LookupError(f"master {port} ({master_id}) has no replica")

    def _healthy(self) -> bool:
        """Every node up and agreeing on who is who: state ok, all slots served, one online
        replica per master, no node flagged failing."""
        views = set()
        for node in self.nodes:
            if not node.running or node.paused:
                return False
            with node.client() as c:
                info = c.execute_command("CLUSTER", "INFO")
                info = info.decode() if isinstance(info, bytes) else info
                if "cluster_state:ok" not in info or f"cluster_slots_ok:{SLOTS}" not in info:
                    return False
                role = c.info("replication")
                if role["role"] == "master" and (
                    role["connected_slaves"] != 1 or role["slave0"]["state"] != "online"
                ):
                    return False
                if role["role"] == "slave" and role["master_link_status"] != "up":
                    return False
            lines = self._node_lines(node)
            if len(lines) != len(self.nodes) or any("fail" in f[2] for f in lines):
                return False
            roles = tuple(sorted((f[0], f[3]) for f in lines))  # (id, its master or "-")
            views.add((roles, tuple(self._slot_owners(node))))
        return len(views) == 1

    def _slot_owners(self, node: ClusterNode) -> list[tuple[int, int, int]]:
        with node.client() as c:
            slots = c.execute_command("CLUSTER", "SLOTS")
        return sorted((int(s[0]), int(s[1]), int(s[2][1])) for s in slots)

    @staticmethod
    def _wait(ready: object, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready():  # type: ignore[operator]
                    return
            except (redis.RedisError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the test cluster did not settle in time")
            time.sleep(0.05)

    # -- faults ---------------------------------------------------------------------------

    def kill(self, port: int) -> None:
        self.node(port).kill()

    def restart(self, port: int) -> None:
        """Start a killed node again: empty, but it remembers the cluster (nodes.conf)."""
        node = self.node(port)
        node.kill()
        node.start()

    def pause(self, port: int) -> None:
        self.node(port).pause()

    def resume(self, port: int) -> None:
        self.node(port).resume()

    def wait_for_master(self, slot: int, not_port: int, timeout: float = READY_TIMEOUT_S) -> int:
        """Wait until a node other than ``not_port`` serves ``slot`` as master; its port."""
        found: list[int] = []

        def promoted() -> bool:
            for node in self.nodes:
                if node.port == not_port or not node.running or node.paused:
                    continue
                owners = self._slot_owners(node)
                if any(a <= slot <= b and port == node.port for a, b, port in owners):
                    found.append(node.port)
                    return True
            return False

        self._wait(promoted, timeout)
        return found[0]

    def ensure_healthy(self) -> None:
        """Undo what a test left: resume paused nodes, restart dead ones, close open slots."""
        for node in self.nodes:
            if node.paused and node.running:
                node.resume()
            if not node.running:
                node.start()
        for node in self.nodes:
            with node.client() as c:
                for slot in _open_slots(c):
                    c.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
        self._wait(self._healthy)

    def flush(self) -> None:
        """Empty every master; every node back to ``noeviction``."""
        for port, _, _ in self.masters():
            with self.node(port).client() as c:
                c.flushall()
        for node in self.nodes:
            with node.client() as c:
                c.config_set("maxmemory-policy", "noeviction")

    def put_raw(self, key: str, data: bytes) -> None:
        """SET ``key`` on the master of its slot, as another tool would write it."""
        with self.node(self.master_of(key_slot(key.encode()))).client() as c:
            c.set(key, data)

    def on_every_node(self, *command: str | int) -> None:
        """Run one command on every node (ACL SETUSER, CLUSTER DELSLOTS, …)."""
        for node in self.nodes:
            with node.client() as c:
                c.execute_command(*command)

    # -- resharding by hand, step by step (what redis-cli --cluster reshard does) ----------

    def open_migration(self, slot: int, to_port: int) -> None:
        """Mark ``slot`` importing on ``to_port`` and migrating on its master; keys stay put."""
        source = self.master_of(slot)
        with self.node(to_port).client() as c:
            c.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", self.node_id(source))
        with self.node(source).client() as c:
            c.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", self.node_id(to_port))

    def keys_in_slot(self, slot: int) -> list[str]:
        """The keys of ``slot`` on its master (the source, during a migration)."""
        with self.node(self.master_of(slot)).client() as c:
            keys = c.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 10_000)
        return [k.decode() for k in keys]

    def move_keys(self, slot: int, to_port: int, keys: list[str] | None = None) -> None:
        """MIGRATE ``keys`` (default: all of the slot) from the slot's master to ``to_port``."""
        if keys is None:
            keys = self.keys_in_slot(slot)
        if keys:
            with self.node(self.master_of(slot)).client() as c:
                c.execute_command("MIGRATE", "127.0.0.1", to_port, "", 0, 5000, "KEYS", *keys)

    def finish_migration(self, slot: int, to_port: int) -> None:
        """Give ``slot`` to ``to_port``, telling every master (as redis-cli does)."""
        owner = self.node_id(to_port)
        for port in [to_port] + [p for p, _, _ in self.masters() if p != to_port]:
            with self.node(port).client() as c:
                c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", owner)

    def migrate_slot(self, slot: int, to_port: int) -> None:
        """Move ``slot`` with all its keys to the master on ``to_port``."""
        self.open_migration(slot, to_port)
        self.move_keys(slot, to_port)
        self.finish_migration(slot, to_port)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self._root, ignore_errors=True)


def _open_slots(client: redis.Redis) -> list[int]:
    """Slots this node has marked migrating or importing (``[slot->-id]`` in CLUSTER NODES)."""
    text = client.execute_command("CLUSTER", "NODES")
    text = text.decode() if isinstance(text, bytes) else text
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 2 and "myself" in fields[2]:
            return [int(f[1:].split("-")[0]) for f in fields[8:] if f.startswith("[")]
    return []


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """One real cluster (3 masters + 3 replicas) for the whole run."""
    if find_redis_server() is None:
        pytest.fail(
            "redis-server is not installed: the cluster tests need a real server "
            "(apt-get install redis-server, or set REDIS_SERVER to its path)",
            pytrace=False,
        )
    cluster = RedisCluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_url(redis_cluster: RedisCluster) -> str:
    """URL of the session cluster: every node up, every slot served, every master emptied."""
    redis_cluster.ensure_healthy()
    redis_cluster.flush()
    return redis_cluster.url
