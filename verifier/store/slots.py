"""Redis Cluster addressing, pure: key slots, the store URL, the slot map, redirections.

Nothing here does I/O; :mod:`verifier.store.cluster` uses it. The rules are the cluster
specification's (https://redis.io/docs/reference/cluster-spec/):

* A key's slot is CRC16-XMODEM of its hash tag (the text between the first ``{`` and the next
  ``}``, when not empty) or of the whole key, modulo 16384. ``binascii.crc_hqx`` is that CRC.
* ``CLUSTER SLOTS`` answers ``[[start, end, master, replica…], …]`` where each node is
  ``[endpoint, port, id, …]``; an endpoint of ``""``, ``"?"`` or nil means "the node you asked".
* ``-MOVED <slot> <host>:<port>``: the slot now lives there (refresh the map);
  ``-ASK <slot> <host>:<port>``: this one command goes there, after ``ASKING``.
"""

from __future__ import annotations

from binascii import crc_hqx
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from verifier.errors import ConfigError

SLOTS = 16384
SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

Address = tuple[str, int]


def key_slot(key: bytes) -> int:
    """The cluster slot of ``key`` (hash tag rules as Redis applies them)."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return crc_hqx(key, 0) & (SLOTS - 1)


def tag_slot(tag: bytes) -> int:
    """The slot of every key whose hash tag is ``tag`` (``vh:{sub}``: pass ``sub``)."""
    return crc_hqx(tag, 0) & (SLOTS - 1)


@dataclass(frozen=True, slots=True)
class ClusterURL:
    """``redis+cluster://[user:password@]host:port[,host:port…][/0]``, taken apart.

    ``rediss+cluster://`` speaks TLS to every node. Only database 0 exists on a cluster.
    """

    seeds: tuple[Address, ...]
    username: str | None
    password: str | None
    tls: bool

    @classmethod
    def parse(cls, url: str) -> ClusterURL:
        # Messages never quote the URL: it may carry a password.
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise ConfigError(
                "VERIFIER_STORE: a cluster store needs a redis+cluster:// or rediss+cluster:// URL"
            )
        if parts.path.strip("/") not in ("", "0") or parts.query or parts.fragment:
            raise ConfigError("VERIFIER_STORE: a Redis Cluster has database 0 only; no options")
        userinfo, _, hosts = parts.netloc.rpartition("@")
        username: str | None = None
        password: str | None = None
        if userinfo:
            user, colon, secret = userinfo.partition(":")
            username = unquote(user) or None
            password = unquote(secret) if colon else None
            if not colon:  # "redis+cluster://secret@host" means a password, as for redis://
                username, password = None, unquote(user)
        seeds = tuple(_parse_host_port(h) for h in hosts.split(",") if h.strip())
        if not seeds:
            raise ConfigError("VERIFIER_STORE: a cluster URL needs at least one HOST:PORT")
        return cls(seeds, username, password, parts.scheme == "rediss+cluster")

    def node_url(self, address: Address) -> str:
        """A ``redis://`` (or ``rediss://``) URL for one node, with this URL's credentials."""
        host, port = address
        if ":" in host:
            host = f"[{host}]"
        auth = ""
        if self.password is not None:
            user = quote(self.username, safe="") if self.username else ""
            auth = f"{user}:{quote(self.password, safe='')}@"
        return f"{'rediss' if self.tls else 'redis'}://{auth}{host}:{port}/0"


def _parse_host_port(text: str) -> Address:
    text = text.strip()
    host, sep, port = text.rpartition(":")
    host = host.strip("[]") if host.startswith("[") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"VERIFIER_STORE: expected HOST:PORT in the cluster URL, got {text!r}")
    return host, int(port)


@dataclass(frozen=True, slots=True)
class SlotRange:
    """Slots ``start``..``end`` (inclusive), served by ``master``, copied to ``replicas``."""

    start: int
    end: int
    master: Address
    replicas: tuple[Address, ...]


def parse_cluster_slots(reply: object, asked: str) -> list[SlotRange]:
    """The reply to ``CLUSTER SLOTS`` as slot ranges; ValueError for any other shape.

    ``asked`` is the host of the node that answered (it stands in for an unknown endpoint).
    """
    if not isinstance(reply, list):
        raise ValueError(f"CLUSTER SLOTS: expected a list, got {reply!r:.100}")
    ranges = []
    for item in reply:
        if not isinstance(item, list) or len(item) < 3:
            raise ValueError(f"CLUSTER SLOTS: bad slot range {item!r:.100}")
        start, end = item[0], item[1]
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end < SLOTS):
            raise ValueError(f"CLUSTER SLOTS: bad slot bounds {item!r:.100}")
        nodes = [_node_address(n, asked) for n in item[2:]]
        ranges.append(SlotRange(start, end, nodes[0], tuple(nodes[1:])))
    return ranges


def _node_address(node: object, asked: str) -> Address:
    if not isinstance(node, list) or len(node) < 2 or not isinstance(node[1], int):
        raise ValueError(f"CLUSTER SLOTS: bad node {node!r:.100}")
    endpoint = node[0]
    if isinstance(endpoint, bytes):
        endpoint = endpoint.decode()
    if endpoint in (None, "", "?"):
        endpoint = asked
    if not isinstance(endpoint, str):
        raise ValueError(f"CLUSTER SLOTS: bad endpoint {node!r:.100}")
    return endpoint, node[1]


def uncovered(ranges: list[SlotRange]) -> int:
    """How many of the 16384 slots no range covers."""
    covered = bytearray(SLOTS)
    for r in ranges:
        covered[r.start : r.end + 1] = b"\x01" * (r.end - r.start + 1)
    return SLOTS - sum(covered)


@dataclass(frozen=True, slots=True)
class Redirect:
    """A ``MOVED`` or ``ASK`` error reply, taken apart."""

    ask: bool
    slot: int
    address: Address


def parse_redirect(message: str, asked: str) -> Redirect | None:
    """``MOVED 3999 10.0.0.2:6381`` or ``ASK …`` as a Redirect; None for any other error.

    An empty host (``MOVED 3999 :6381``) means the host of the node that answered, ``asked``.
    """
    kind, _, rest = message.partition(" ")
    if kind not in ("MOVED", "ASK"):
        return None
    slot, _, where = rest.strip().partition(" ")
    host, sep, port = where.rpartition(":")
    if not slot.isdigit() or not sep or not port.isdigit() or int(slot) >= SLOTS:
        return None
    return Redirect(kind == "ASK", int(slot), (host.strip("[]") or asked, int(port)))
