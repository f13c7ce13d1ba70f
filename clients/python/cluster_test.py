#!/usr/bin/env python3
"""Cluster test: the Python client follows `redirect` (protocol section 11b) against a
real two-node cluster: its own nats-server (JetStream) and two `rally serve` child
processes, nodes "a" and "b", sharing an `auth_secret`.

A player seated on b makes b hold the only arena room; a player who connects to a and
joins is then redirected to b's room by a. The test checks, over TCP and WebSocket, that
`join` returns that room as if a had seated the player, that play goes on there, that a
ticket claimed too late surfaces TICKET_EXPIRED from `join`, that `claim_seat` refuses
a ticket on the wrong node, a forged one and a replayed one with their codes, and that
two players queued on different nodes meet in one room (`wait_match` follows the
queue's `redirect`).

Usage: python3 cluster_test.py  (RALLY_NATS_SERVER: the nats-server binary, as
`eval "$(scripts/nats.sh)"` sets it; RALLY_BIN: the rally binary, default
target/debug/rally). Without a nats-server it prints a marked `skipped` line and exits
0, or exits 1 when RALLY_REQUIRE_NATS=1 (CI). Exit code 0 and a last line
`N passed, 0 failed` on success.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import rally_client as rc  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ADMIN_TOKEN = "cluster-admin-token-0123456789"
AUTH_SECRET = "py-cluster-test-secret-0123456789"
OP_TIMEOUT_S = 5.0
TICKET_TTL_MS = 1000  # the smallest seat_ticket_ttl_ms: the expiry case waits past it


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while True:
        v = check()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.05)


def http_json(url: str, token: str | None = None):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except (OSError, ValueError):
        return 0, None


class Cluster:
    """nats-server plus nodes a and b, all children of this process, on loopback ports."""

    def __init__(self, nats_bin: str, rally_bin: str):
        self.dir = tempfile.mkdtemp(prefix="rally-py-cluster-")
        self.procs: list[subprocess.Popen] = []
        port = free_port()
        self.nats_url = f"nats://127.0.0.1:{port}"
        self.procs.append(subprocess.Popen(
            [nats_bin, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", os.path.join(self.dir, "js")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_until(lambda: self._accepts(port), 20, "nats-server")
        self.nodes = {n: self._node(rally_bin, n) for n in ("a", "b")}
        for n in self.nodes.values():
            wait_until(lambda: http_json(f"http://{n['admin']}/readyz")[0] == 200, 30, "a node ready")
        for n in self.nodes.values():
            wait_until(lambda: len(self.view(n["id"]).get("nodes", [])) == 2, 20, "both nodes in membership")

    @staticmethod
    def _accepts(port: int) -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def _node(self, rally_bin: str, node_id: str) -> dict:
        tcp, http, admin = free_port(), free_port(), free_port()
        args = [
            rally_bin, "serve",
            "--tcp", f"127.0.0.1:{tcp}", "--http", f"127.0.0.1:{http}", "--admin", f"127.0.0.1:{admin}",
            # One SQLite file, shared: the accounts a node creates at login must exist on
            # the other (a session token is checked against them). It stands in for the
            # shared PostgreSQL of a real cluster; these are tests of the SDK, not storage.
            "--database-url", f"sqlite://{os.path.join(self.dir, 'rally.db')}",
            "--admin-token", ADMIN_TOKEN, "--auth-secret", AUTH_SECRET,
            "--cluster-nats-url", self.nats_url, "--node-id", node_id,
            "--cluster-node-ttl-ms", "1500", "--seat-ticket-ttl-ms", str(TICKET_TTL_MS),
            # The checks send requests back to back, past the default command_rate.
            "--command-rate", "1000", "--shutdown-grace-ms", "1000", "--log-level", "warn",
        ]
        self.procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL))
        return {"id": node_id, "tcp": ("127.0.0.1", tcp), "ws": ("127.0.0.1", http), "admin": f"127.0.0.1:{admin}"}

    def view(self, node_id: str) -> dict:
        """What `GET /admin/cluster` of node `node_id` says."""
        _, body = http_json(f"http://{self.nodes[node_id]['admin']}/admin/cluster", ADMIN_TOKEN)
        return body or {}

    def rooms_seen_by(self, viewer: str, owner: str) -> list[int]:
        """The room ids `viewer`'s directory lists on node `owner`."""
        for n in self.view(viewer).get("nodes", []):
            if n.get("node") == owner:
                return [r.get("room_id") for r in n.get("room_list", [])]
        return []

    def stop(self) -> None:
        # Nodes first (SIGTERM: they leave the membership), then nats-server; bounded.
        nats, *nodes = self.procs
        for group in (nodes, [nats]):
            for p in group:
                if p.poll() is None:
                    p.terminate()
            for p in group:
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)


class Checker:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name: str, cond: bool, detail: str = "") -> bool:
        if cond:
            self.passed += 1
            print(f"PASS  {name}")
        else:
            self.failed += 1
            print(f"FAIL  {name}" + (f": {detail}" if detail else ""))
        return bool(cond)

    def raises(self, name: str, code: str, fn) -> None:
        try:
            fn()
        except rc.RallyError as e:
            self.check(name, e.name == code, f"got {e}")
            return
        self.check(name, False, f"no error, expected {code}")


def device_id() -> str:
    return f"py-cluster-{os.getpid()}-{random.getrandbits(64):016x}"


def connect(cluster: Cluster, node: str, transport: str, connector=None) -> rc.RallyClient:
    host, port = cluster.nodes[node][transport]
    if transport == "ws":
        c = rc.connect_ws(host, port, timeout=OP_TIMEOUT_S, connector=connector)
    else:
        c = rc.connect_tcp(host, port, timeout=OP_TIMEOUT_S, connector=connector)
    c.hello(name=f"py-cluster-{transport}")
    c.device_login(device_id())
    return c


def seat_first(cluster: Cluster, transport: str) -> tuple[rc.RallyClient, str, str]:
    """A player who joins arena through b; returns it, the node its room is on and the
    other node, once the other's directory lists that room (so it redirects there).
    With no room anywhere b places the room on the least-loaded node, ties going to the
    smaller id, a: so this first join is often a redirect itself."""
    p = connect(cluster, "b", transport)
    room_id, _ = p.join("arena")
    owner = p.node or "b"
    other = "a" if owner == "b" else "b"
    wait_until(lambda: room_id in cluster.rooms_seen_by(other, owner), 10, f"{other} to list {owner}'s room")
    return p, owner, other


def own_entry(c: rc.RallyClient, seq: int, timeout: float = OP_TIMEOUT_S):
    """Waits for a state listing this player with last_seq >= seq; returns the entry."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = c.recv(max(0.01, deadline - time.monotonic()))
        if m[0] == rc.STATE and isinstance(m[3], list):
            for e in m[3]:
                if isinstance(e, list) and len(e) >= 4 and e[0] == c.player_id and e[3] >= seq:
                    return e
    return None


def redirect_is_followed(cluster: Cluster, ck: Checker, transport: str) -> None:
    p1, owner, other = seat_first(cluster, transport)
    p2 = connect(cluster, other, transport)
    try:
        started = time.monotonic()
        room_id, player_id = p2.join("arena")
        took = (time.monotonic() - started) * 1000
        ck.check(f"{transport}: join through {other} seats the player in {owner}'s room ({took:.0f} ms)",
                 room_id == p1.room_id and p2.node == owner,
                 f"room {room_id} node {p2.node}, {owner}'s room {p1.room_id}")
        ck.check(f"{transport}: the connection moved to {owner}'s address",
                 p2.t.sock.getpeername()[1] == cluster.nodes[owner][transport][1],
                 f"peer {p2.t.sock.getpeername()}")
        ck.check(f"{transport}: still logged in as the same account on {owner}",
                 p2.welcome["account_id"] == p2.account_id and p2.account_id != 0,
                 f"welcome {p2.welcome}")
        p2.send_input(1, [1.0, 0.0])
        e = own_entry(p2, 1)
        ck.check(f"{transport}: inputs sent on {owner} come back in its states", e is not None)
        ck.check(f"{transport}: the other player sees the redirected one",
                 wait_for_player(p1, player_id) is not None)
    finally:
        p1.close()
        p2.close()


def wait_for_player(c: rc.RallyClient, player_id: int):
    deadline = time.monotonic() + OP_TIMEOUT_S
    while time.monotonic() < deadline:
        m = c.recv(max(0.01, deadline - time.monotonic()))
        if m[0] == rc.STATE and isinstance(m[3], list) and any(
                isinstance(e, list) and e and e[0] == player_id for e in m[3]):
            return m
    return None


def late_claim_surfaces_ticket_expired(cluster: Cluster, ck: Checker, transport: str) -> None:
    p1, owner, other = seat_first(cluster, transport)

    def slow(kind, host, port, timeout):
        # Longer than the ticket lives: the claim that follows comes too late.
        time.sleep(TICKET_TTL_MS / 1000 + 0.6)
        return rc.open_transport(kind, host, port, timeout)

    p3 = connect(cluster, other, transport, connector=slow)
    try:
        ck.raises(f"{transport}: a join whose claim comes too late raises TICKET_EXPIRED",
                  "TICKET_EXPIRED", lambda: p3.join("arena"))
        ck.check(f"{transport}: after the refusal the client is on {owner}, seatless",
                 p3.room_id is None and p3.node == owner)
        p3.connector = rc.open_transport
        room_id, _ = p3.join("arena")
        ck.check(f"{transport}: joining again seats it", room_id == p1.room_id, f"{room_id} vs {p1.room_id}")
    finally:
        p1.close()
        p3.close()


def claim_refusals(cluster: Cluster, ck: Checker, transport: str) -> None:
    p1, owner, other = seat_first(cluster, transport)
    p4 = connect(cluster, other, transport)
    stranger = None
    try:
        # The low-level request, to hold the redirect itself.
        m = p4.request([rc.JOIN, p4.new_req(), "arena"], (rc.JOINED, rc.REDIRECT))
        if not ck.check(f"{transport}: {other} answers join with redirect to {owner}",
                        m[0] == rc.REDIRECT and m[2] == owner,
                        f"{m!r}"):
            return
        ticket = m[5]
        ck.raises(f"{transport}: claim_seat on the wrong node: TICKET_WRONG_NODE",
                  "TICKET_WRONG_NODE", lambda: p4.claim_seat(ticket))
        # A forged ticket, on a connection of another account to the owner: flip one character.
        forged = ticket[:-3] + ("A" if ticket[-3] != "A" else "B") + ticket[-2:]
        stranger = connect(cluster, owner, transport)
        ck.raises(f"{transport}: a forged ticket: TICKET_INVALID", "TICKET_INVALID",
                  lambda: stranger.claim_seat(forged))
        ck.raises(f"{transport}: another account's ticket: TICKET_INVALID", "TICKET_INVALID",
                  lambda: stranger.claim_seat(ticket))
        room = p4.follow_redirect(m)
        ck.check(f"{transport}: the genuine ticket seats the player", room["room_id"] == p1.room_id)
        # The same account on a second connection to the owner replays the claimed ticket.
        host, port = cluster.nodes[owner][transport]
        replay = rc.RallyClient(rc.open_transport(transport, host, port, OP_TIMEOUT_S), OP_TIMEOUT_S)
        try:
            replay.hello(token=p4.token)
            ck.raises(f"{transport}: a replayed ticket: TICKET_USED", "TICKET_USED",
                      lambda: replay.claim_seat(ticket))
        finally:
            replay.close()
    finally:
        p1.close()
        p4.close()
        if stranger is not None:
            stranger.close()


def queue_match_is_followed(cluster: Cluster, ck: Checker, transport: str) -> None:
    """Two players queued on different nodes are matched by the cluster's queue leader
    into one room: the one whose node does not hold it gets `redirect` (req 0) and
    `wait_match` follows it."""
    pa = connect(cluster, "a", transport)
    pb = connect(cluster, "b", transport)
    try:
        pa.queue("tictactoe", {}, 1500)
        pb.queue("tictactoe", {}, 1510)
        ma = pa.wait_match()
        mb = pb.wait_match()
        where_a, where_b = pa.node or "a", pb.node or "b"
        ck.check(f"{transport}: players queued on a and b are matched into one room on one node",
                 ma["room_id"] == mb["room_id"] and where_a == where_b,
                 f"a: room {ma['room_id']} on {where_a}; b: room {mb['room_id']} on {where_b}")
        ck.check(f"{transport}: exactly one of them followed a redirect to get there",
                 (pa.node is not None) != (pb.node is not None), f"nodes {pa.node} {pb.node}")
    finally:
        pa.close()
        pb.close()


def main() -> int:
    nats_bin = os.environ.get("RALLY_NATS_SERVER", "")
    if not nats_bin:
        if os.environ.get("RALLY_REQUIRE_NATS") == "1":
            print("python cluster tests: RALLY_REQUIRE_NATS=1 but RALLY_NATS_SERVER is not set "
                  "(eval \"$(scripts/nats.sh)\")", file=sys.stderr)
            return 1
        print("rally-testkit: skipped (no NATS) python cluster redirect tests: set RALLY_NATS_SERVER "
              "(scripts/nats.sh)")
        return 0
    rally_bin = os.environ.get("RALLY_BIN", os.path.join(ROOT, "target", "debug", "rally"))
    ck = Checker()
    cluster = Cluster(nats_bin, rally_bin)
    try:
        for transport in ("tcp", "ws"):
            for case in (redirect_is_followed, late_claim_surfaces_ticket_expired, claim_refusals,
                         queue_match_is_followed):
                try:
                    case(cluster, ck, transport)
                except Exception as e:  # a case that crashes is one failure, the rest still run
                    traceback.print_exc()
                    ck.check(f"{transport}: {case.__name__} ran", False, repr(e))
    finally:
        cluster.stop()
    print(f"{ck.passed} passed, {ck.failed} failed")
    return 0 if ck.failed == 0 and ck.passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
