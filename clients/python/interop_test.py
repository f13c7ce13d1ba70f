#!/usr/bin/env python3
"""Interop test: a Python client (TCP and WebSocket) against a running Rally server.

Usage: python3 interop_test.py --tcp 127.0.0.1:17000 --ws 127.0.0.1:18080

Written from docs/protocol.md alone. Exit code 0 if every check passed.
The last line printed is "N passed, M failed".
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import rally_client as rc  # noqa: E402

TOTAL_BUDGET_S = 28      # the whole script must finish in under 30 s
OP_TIMEOUT_S = 5.0       # every single wait on the server


class Watchdog(BaseException):
    pass


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

    def fail(self, name: str, detail: str) -> None:
        self.check(name, False, detail)


def tag() -> str:
    return f"{os.getpid()}-{random.randrange(1 << 16):04x}"


def device_id() -> str:
    """A fresh device id (section 5a: 8 to 128 visible ASCII characters)."""
    return f"py-device-{os.getpid()}-{random.getrandbits(64):016x}"


def login(c: rc.RallyClient, name: str | None = None) -> dict:
    """Device login with a new device id; sets the display name when given."""
    session = c.device_login(device_id())
    if name is not None:
        c.set_name(name)
    return session


class Env:
    def __init__(self, tcp: tuple[str, int], ws: tuple[str, int]):
        self.tcp, self.ws = tcp, ws

    def connect(self, transport: str) -> rc.RallyClient:
        if transport == "tcp":
            return rc.connect_tcp(*self.tcp, timeout=OP_TIMEOUT_S)
        return rc.connect_ws(*self.ws, timeout=OP_TIMEOUT_S)


def expect_open(c: rc.RallyClient) -> bool:
    """True if the connection still answers a ping."""
    nonce = random.getrandbits(64)
    try:
        return c.ping(nonce, timeout=OP_TIMEOUT_S) == nonce
    except (rc.ConnectionClosed, rc.RecvTimeout, OSError):
        return False


def wait_closed(c: rc.RallyClient, timeout: float = OP_TIMEOUT_S):
    """Read until the server closes the connection. Returns (closed, ConnectionClosed|None, msgs)."""
    msgs = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            m = c.poll(max(0.0, deadline - time.monotonic()))
            if m is None:
                return False, None, msgs
            msgs.append(m)
    except rc.ConnectionClosed as e:
        return True, e, msgs


# --------------------------------------------------------------------------
# (a) arena with one TCP and one WebSocket player, (b) ping, (g) chat, (f) leave


def scenario_arena(env: Env, ck: Checker) -> None:
    t = tag()
    names = {"tcp": f"py-tcp-{t}", "ws": f"py-ws-{t}"}
    cl = {}
    try:
        for tr in ("tcp", "ws"):
            cl[tr] = env.connect(tr)
        ws_t = cl["ws"].t
        ck.check("ws: upgrade answered 101 with a valid Sec-WebSocket-Accept", ws_t.response_status == 101)
        ck.check("ws: offered subprotocol rally.v1 is selected", ws_t.subprotocol == "rally.v1",
                 f"got {ws_t.subprotocol!r}")

        welcome = {}
        for tr, c in cl.items():
            w = c.hello(names[tr])
            welcome[tr] = w
            login(c, names[tr])
            ck.check(f"{tr}: hello -> welcome version 1 with sane limits",
                     w["version"] == 1 and w["tick_hz"] >= 1 and w["max_message_bytes"] >= 64
                     and w["timeout_ms"] >= 100 and w["queue_capacity"] >= 1, f"{w}")
        ck.check("session ids differ between the two connections",
                 welcome["tcp"]["session_id"] != welcome["ws"]["session_id"])

        joined = {}
        for tr, c in cl.items():
            req = 1000 + (1 if tr == "tcp" else 2)
            room, pid = c.join("arena", req=req)
            m = c.joined_msg
            joined[tr] = (room, pid)
            ck.check(f"{tr}: join arena -> joined with our req, kind 'arena'",
                     m[1] == req and m[4] == "arena" and m[5] >= 2 and pid >= 1, f"{m}")
            ck.check(f"{tr}: no state arrived before joined",
                     not any(x[0] == rc.STATE for x in c.backlog), f"{list(c.backlog)}")
        ck.check("TCP and WebSocket players are in the same room",
                 joined["tcp"][0] == joined["ws"][0], f"{joined}")
        ck.check("the two players have different player ids", joined["tcp"][1] != joined["ws"][1])

        room_id = joined["tcp"][0]
        peer = {"tcp": "ws", "ws": "tcp"}
        pid = {tr: joined[tr][1] for tr in cl}

        # Wait for a state in which both players are present, to learn positions.
        first_pos = {}
        for tr, c in cl.items():
            m = c.wait_for(lambda m: m[0] == rc.STATE and
                           {e[0] for e in m[3]} >= {pid["tcp"], pid["ws"]}, keep_others=False)
            first_pos[tr] = {e[0]: (e[1], e[2]) for e in m[3]}
        # Each moves toward the centre (never clamped at an edge).
        own0 = {tr: first_pos[tr][pid[tr]] for tr in cl}
        vel = {tr: [1.0 if own0[tr][0] < 500 else -1.0, 1.0 if own0[tr][1] < 500 else -1.0] for tr in cl}

        n_inputs = 8
        interval = 1.0 / welcome["tcp"]["tick_hz"]
        sent = {tr: 0 for tr in cl}
        seen_peer_move = {tr: False for tr in cl}
        max_last_seq = {tr: 0 for tr in cl}
        last_seq_values = {tr: [] for tr in cl}
        ticks = {tr: [] for tr in cl}
        format_ok = {tr: True for tr in cl}
        format_detail = {tr: "" for tr in cl}
        float32_ok = {tr: True for tr in cl}
        next_send = time.monotonic()
        deadline = time.monotonic() + 6.0
        while time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_send and sent["tcp"] < n_inputs:
                for tr, c in cl.items():
                    sent[tr] += 1
                    c.send_input(sent[tr], vel[tr])
                next_send += interval
            for tr, c in cl.items():
                while True:
                    m = c.poll(0.005)
                    if m is None:
                        break
                    if m[0] == rc.ERROR:
                        raise AssertionError(f"{tr}: unexpected error during arena play: {m}")
                    if m[0] != rc.STATE:
                        continue
                    tick, last_seq, players = m[1], m[2], m[3]
                    ticks[tr].append(tick)
                    last_seq_values[tr].append(last_seq)
                    max_last_seq[tr] = max(max_last_seq[tr], last_seq)
                    # state payload format (section 12)
                    for e in players:
                        if not (isinstance(e, list) and len(e) >= 4 and isinstance(e[0], int)
                                and isinstance(e[1], float) and isinstance(e[2], float)
                                and 0.0 <= e[1] <= 1000.0 and 0.0 <= e[2] <= 1000.0 and isinstance(e[3], int)):
                            format_ok[tr] = False
                            format_detail[tr] = f"bad entry {e!r}"
                    own = [e for e in players if e[0] == pid[tr]]
                    if not own or own[0][3] != last_seq:
                        format_ok[tr] = False
                        format_detail[tr] = f"own entry missing or its last_seq != {last_seq}: {players!r}"
                    if b"\xcb" in c.last_body:  # float 64 marker; section 12 says float 32
                        float32_ok[tr] = False
                    for e in players:
                        if e[0] == pid[peer[tr]] and (e[1], e[2]) != first_pos[tr][e[0]]:
                            seen_peer_move[tr] = True
            done = all(sent[tr] >= n_inputs and max_last_seq[tr] >= n_inputs and seen_peer_move[tr] for tr in cl)
            if done:
                break

        for tr in cl:
            ck.check(f"{tr}: sees the other player's ({peer[tr]}) position change", seen_peer_move[tr])
            ck.check(f"{tr}: own last_seq advances to the last input seq sent ({n_inputs})",
                     max_last_seq[tr] >= n_inputs and last_seq_values[tr][:1] != [n_inputs],
                     f"last_seq values {last_seq_values[tr]}")
            ck.check(f"{tr}: last_seq never goes backwards",
                     all(a <= b for a, b in zip(last_seq_values[tr], last_seq_values[tr][1:])))
            tk = ticks[tr]
            ck.check(f"{tr}: state tick numbers are consecutive",
                     len(tk) >= 2 and all(b == a + 1 for a, b in zip(tk, tk[1:])), f"ticks {tk}")
            ck.check(f"{tr}: arena state entries are [id, x, y, last_seq] in the field", format_ok[tr],
                     format_detail[tr])
            ck.check(f"{tr}: arena positions are encoded as float 32", float32_ok[tr])

        # (g) chat: the chat line, then ok; the other player gets the line too.
        for tr, c in cl.items():
            text = f"hello from {tr} {t}"
            req = 2000 + (1 if tr == "tcp" else 2)
            seen = c.chat(text, req=req)
            line_idx = next((i for i, m in enumerate(seen) if m[0] == rc.CHAT_LINE and m[4] == text), None)
            ok_idx = next((i for i, m in enumerate(seen) if m[0] == rc.OK and m[1] == req), None)
            ck.check(f"{tr}: chat -> the chat line, then ok with our req",
                     line_idx is not None and ok_idx is not None and line_idx < ok_idx,
                     f"seen {[m for m in seen if m[0] != rc.STATE]}")
            if line_idx is not None:
                line = seen[line_idx]
                ck.check(f"{tr}: chat line carries room id, our player id and our name",
                         line[1] == room_id and line[2] == pid[tr] and line[3] == names[tr], f"{line}")
            other = cl[peer[tr]]
            try:
                m = other.wait_for(lambda m: m[0] == rc.CHAT_LINE and m[4] == text, timeout=OP_TIMEOUT_S,
                                   keep_others=False)
                ck.check(f"{peer[tr]}: receives the {tr} player's chat line",
                         m[2] == pid[tr] and m[3] == names[tr], f"{m}")
            except rc.RecvTimeout:
                ck.fail(f"{peer[tr]}: receives the {tr} player's chat line", "timed out")

        # (b) ping/pong with the nonce echoed, including a full 64-bit nonce.
        for tr, c in cl.items():
            for nonce in (0, 7, (1 << 64) - 1, random.getrandbits(63)):
                got = c.ping(nonce)
                ck.check(f"{tr}: ping {nonce} -> pong with the same nonce", got == nonce, f"got {got}")
            c.backlog.clear()

        # (f) leave -> left [66, req, room_id]; no state of that room after it.
        got_room = cl["tcp"].leave(req=3001)
        ck.check("tcp: leave -> left with our req and the room id", got_room == room_id, f"left room {got_room}")
        cl["tcp"].backlog.clear()  # everything in it arrived before `left`
        after = []
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            m = cl["tcp"].poll(max(0.0, end - time.monotonic()))
            if m is not None:
                after.append(m)
        ck.check("tcp: no state follows left", not any(m[0] == rc.STATE for m in after), f"{after[:3]}")
        try:
            cl["ws"].wait_for(lambda m: m[0] == rc.STATE and all(e[0] != pid["tcp"] for e in m[3]),
                              timeout=OP_TIMEOUT_S, keep_others=False)
            ck.check("ws: the player who left disappears from the state", True)
        except rc.RecvTimeout:
            ck.fail("ws: the player who left disappears from the state", "still present after 5 s")
        got_room = cl["ws"].leave(req=3002)
        ck.check("ws: leave -> left with our req and the room id", got_room == room_id, f"left room {got_room}")
        ck.check("tcp: connection still open after leaving (ping)", expect_open(cl["tcp"]))
    finally:
        for c in cl.values():
            c.close()
    ws_t = cl["ws"].t
    ck.check("ws: our close frame is answered with a close frame",
             ws_t.close_received is not None, f"{ws_t.close_received}")


# --------------------------------------------------------------------------
# (c) input while not in a room


def scenario_not_in_room(env: Env, ck: Checker, tr: str) -> None:
    c = env.connect(tr)
    try:
        c.hello(f"py-nir-{tr}")
        login(c)
        c.send_input(1, [0.5, 0.5])
        m = c.wait_for(lambda m: m[0] == rc.ERROR, keep_others=False)
        ck.check(f"{tr}: input outside a room -> error NOT_IN_ROOM (20) with req 0",
                 m[1] == rc.ERROR_NUMBERS["NOT_IN_ROOM"] and m[3] == 0, f"{m}")
        ck.check(f"{tr}: connection stays open after NOT_IN_ROOM (ping answered)", expect_open(c))
    finally:
        c.close()


# --------------------------------------------------------------------------
# (d) unknown room kind


def scenario_unknown_kind(env: Env, ck: Checker, tr: str) -> None:
    c = env.connect(tr)
    try:
        c.hello(f"py-uk-{tr}")
        login(c)
        req = 424242
        try:
            c.join(f"no-such-kind-{tag()}", req=req)
            ck.fail(f"{tr}: join of an unknown kind -> UNKNOWN_ROOM_KIND", "got joined")
        except rc.RallyError as e:
            ck.check(f"{tr}: join of an unknown kind -> error UNKNOWN_ROOM_KIND (22) with our req {req}",
                     e.code == rc.ERROR_NUMBERS["UNKNOWN_ROOM_KIND"] and e.req == req, str(e))
        ck.check(f"{tr}: connection stays open after UNKNOWN_ROOM_KIND (ping answered)", expect_open(c))
    finally:
        c.close()


# --------------------------------------------------------------------------
# (h) accounts, session tokens and player data (sections 5a and 5b)


def expect_error(ck: Checker, name: str, code: str, fn, *args, **kw) -> None:
    try:
        fn(*args, **kw)
        ck.fail(name, f"expected {code}, the request succeeded")
    except rc.RallyError as e:
        ck.check(name, e.name == code and e.req != 0, str(e))


def scenario_accounts(env: Env, ck: Checker) -> None:
    a = env.connect("tcp")
    b = env.connect("ws")
    extra = []
    try:
        w = a.hello("py-acct-a")
        ck.check("welcome without a token carries account_id 0", w["account_id"] == 0, f"{w}")
        expect_error(ck, "join before login -> UNAUTHORIZED with our req", "UNAUTHORIZED", a.join, "arena")
        expect_error(ck, "get_data before login -> UNAUTHORIZED", "UNAUTHORIZED", a.get_data, "save")
        a.send_input(1, [0.0, 0.0])
        m = a.wait_for(lambda m: m[0] == rc.ERROR, keep_others=False)
        ck.check("input before login -> error UNAUTHORIZED with req 0",
                 m[1] == rc.ERROR_NUMBERS["UNAUTHORIZED"] and m[3] == 0, f"{m}")
        expect_error(ck, "login with an unknown provider -> INVALID_ARGUMENT", "INVALID_ARGUMENT",
                     a.login, "carrier-pigeon", "x" * 16)
        expect_error(ck, "device login with a too-short id -> INVALID_ARGUMENT", "INVALID_ARGUMENT",
                     a.device_login, "short")

        dev_a = device_id()
        s1 = a.device_login(dev_a)
        ck.check("device login -> session with an account id, a token and a future expiry",
                 s1["account_id"] > 0 and isinstance(s1["token"], str) and len(s1["token"]) > 20
                 and s1["expires_at_ms"] > time.time() * 1000, f"{s1}")
        ck.check("a new account's display name is player-<id>",
                 s1["display_name"] == f"player-{s1['account_id']}", f"{s1}")
        name = f"Ada {random.randrange(1000)}"
        a.set_name(name)
        p = a.get_profile()
        ck.check("get_profile 0 -> own profile with the name just set",
                 p["account_id"] == s1["account_id"] and p["display_name"] == name
                 and min(p["sessions"], p["play_ms"], p["games_played"]) >= 0, f"{p}")
        expect_error(ck, "set_name with a control character -> INVALID_ARGUMENT", "INVALID_ARGUMENT",
                     a.set_name, "bad\x07name")

        absent = a.get_data("save")
        ck.check("get_data of a missing key -> value nil, version 0",
                 absent["value"] is None and absent["version"] == 0, f"{absent}")
        v1 = a.put_data("save", {"level": 1, "items": ["sword"]})
        ck.check("put_data with expected_version 0 creates version 1", v1 == 1, f"{v1}")
        expect_error(ck, "put_data creating an existing key -> CONFLICT", "CONFLICT",
                     a.put_data, "save", {"level": 9})
        v2 = a.put_data("save", {"level": 2}, expected_version=v1)
        ck.check("put_data with the current version -> version 2", v2 == 2, f"{v2}")
        try:
            a.put_data("save", {"level": 3}, expected_version=v1)
            ck.fail("put_data with a stale version -> CONFLICT naming the current version", "succeeded")
        except rc.RallyError as e:
            ck.check("put_data with a stale version -> CONFLICT naming the current version",
                     e.name == "CONFLICT" and "2" in e.message and e.current_version == 2, str(e))
        got = a.get_data("save")
        ck.check("get_data returns the last value written, its version, private",
                 got["value"] == {"level": 2} and got["version"] == 2 and got["public"] is False, f"{got}")
        a.put_data("badge", "gold", public=True)
        expect_error(ck, "put_data of text that is not JSON -> INVALID_ARGUMENT", "INVALID_ARGUMENT",
                     a.request, [rc.PUT_DATA, a.new_req(), "junk", "{not json", 0, False], rc.WRITTEN)

        b.hello("py-acct-b")
        s2 = b.device_login(device_id())
        ck.check("another device id -> another account", s2["account_id"] != s1["account_id"], f"{s2}")
        priv = b.get_data("save", owner=s1["account_id"])
        missing = b.get_data("no-such-key", owner=s1["account_id"])
        ck.check("another player's private key reads exactly as a missing one",
                 priv["value"] is None and priv["version"] == 0
                 and {**priv, "key": ""} == {**missing, "key": ""}, f"{priv} {missing}")
        pub = b.get_data("badge", owner=s1["account_id"])
        ck.check("reading another player's public key works",
                 pub["value"] == "gold" and pub["public"] is True and pub["owner"] == s1["account_id"], f"{pub}")
        other = b.get_profile(s1["account_id"])
        ck.check("another player's profile shows its display name",
                 other["display_name"] == name and other["account_id"] == s1["account_id"], f"{other}")
        expect_error(ck, "profile of an account that does not exist -> NOT_FOUND", "NOT_FOUND",
                     b.get_profile, (1 << 62))

        a.delete_data("save", 2)
        ck.check("delete_data with the current version -> the key is gone",
                 a.get_data("save")["version"] == 0)

        # The token logs a new connection in without login.
        c = env.connect("tcp")
        extra.append(c)
        w = c.hello("py-acct-again", token=s1["token"])
        ck.check("hello with the session token -> welcome with that account id",
                 w["account_id"] == s1["account_id"], f"{w}")
        ck.check("... and data commands work at once",
                 c.get_data("badge")["value"] == "gold")
        d = env.connect("ws")
        extra.append(d)
        forged = s1["token"][:-4] + ("AAAA" if not s1["token"].endswith("AAAA") else "BBBB")
        w = d.hello("py-acct-forged", token=forged)
        ck.check("hello with a forged token -> welcome with account_id 0", w["account_id"] == 0, f"{w}")
        m = d.wait_for(lambda m: m[0] == rc.ERROR, keep_others=False)
        ck.check("... then error UNAUTHORIZED with req 0, not fatal",
                 m[1] == rc.ERROR_NUMBERS["UNAUTHORIZED"] and m[3] == 0 and expect_open(d), f"{m}")
        s3 = d.device_login(dev_a)
        ck.check("the same device id logs into the same account", s3["account_id"] == s1["account_id"], f"{s3}")
    finally:
        for c in [a, b, *extra]:
            c.close()


# --------------------------------------------------------------------------
# (e) malformed body -> BAD_MESSAGE, then the server closes


def scenario_bad_message(env: Env, ck: Checker, tr: str) -> None:
    c = env.connect(tr)
    try:
        c.hello(f"py-bad-{tr}")
        c.send_body(b"\xc1")  # 0xc1 is "never used" in MessagePack
        closed, exc, msgs = wait_closed(c)
        errs = [m for m in msgs if m[0] == rc.ERROR]
        ck.check(f"{tr}: body c1 -> error BAD_MESSAGE (1) with req 0",
                 len(errs) == 1 and errs[0][1] == rc.ERROR_NUMBERS["BAD_MESSAGE"] and errs[0][3] == 0,
                 f"{msgs}")
        ck.check(f"{tr}: BAD_MESSAGE is the last message and the server closes the connection",
                 closed and msgs and msgs[-1][0] == rc.ERROR, f"closed={closed} msgs={msgs}")
        if tr == "ws":
            ck.check("ws: close frame status is 1008 after BAD_MESSAGE", exc is not None and exc.code == 1008,
                     f"status {exc.code if exc else None}")
    finally:
        c.close()


# --------------------------------------------------------------------------
# A few WebSocket transport details from sections 1 and 2


def scenario_ws_transport(env: Env, ck: Checker) -> None:
    c = env.connect("ws")
    try:
        c.t.send_ping(b"rally")
        deadline = time.monotonic() + OP_TIMEOUT_S
        while not c.t.pongs and time.monotonic() < deadline:
            c.poll(0.05)
        ck.check("ws: a WebSocket ping frame is answered with a pong frame", c.t.pongs == [b"rally"],
                 f"{c.t.pongs}")
        c.t.send_fragmented(rc.pack([rc.HELLO, 1, "py-frag"]), pieces=3)
        m = c.recv()
        ck.check("ws: a hello fragmented over 3 frames is reassembled -> welcome", m[0] == rc.WELCOME, f"{m}")
    finally:
        c.close()
    host, port = env.ws
    s = socket.create_connection((host, port), timeout=OP_TIMEOUT_S)
    try:
        s.sendall(b"GET /not-ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        head = s.recv(4096)
        ck.check("ws: a path other than /ws gets 404", head.startswith(b"HTTP/1.1 404"), f"{head[:40]!r}")
    finally:
        s.close()


# --------------------------------------------------------------------------

# --------------------------------------------------------------------------
# (i) rooms and matchmaking (revision 2, sections 5c and 5d)


def scenario_rooms(env: Env, ck: Checker) -> None:
    a = env.connect("tcp")
    b = env.connect("ws")
    try:
        a.hello("py-rooms-a")
        b.hello("py-rooms-b")
        login(a)
        login(b)
        room = a.create("tictactoe", {}, private=True)
        code = room["code"]
        ck.check("create: a private room with a 6-character code",
                 isinstance(code, str) and len(code) == 6 and room["player_id"] >= 1, f"{room}")
        listed = b.list_rooms("tictactoe")
        ck.check("list_rooms: a private room is not listed",
                 all(r["room_id"] != room["room_id"] for r in listed["rooms"]), f"{listed}")
        joined = b.join_by_code(code)
        ck.check("join_by_code: the friend lands in the same room",
                 joined["room_id"] == room["room_id"] and joined["code"] == code, f"{joined}")
        b.leave()
        expect_error(ck, "join_by_code of an unknown code -> NO_SUCH_ROOM", "NO_SUCH_ROOM",
                     b.join_by_code, "ZZZZZZ" if code != "ZZZZZZ" else "YYYYYY")
        pub = b.create("tictactoe", {}, private=False)
        listed = a.list_rooms("tictactoe", {}, 0, 50)
        ck.check("list_rooms: a public room is listed with its code",
                 any(r["room_id"] == pub["room_id"] and r["code"] == pub["code"] for r in listed["rooms"])
                 and listed["total"] >= 1, f"{listed}")
        by_id = env.connect("tcp")
        try:
            by_id.hello("py-rooms-c")
            login(by_id)
            seat = by_id.join_by_id(pub["room_id"])
            ck.check("join_by_id: seated in that room", seat["room_id"] == pub["room_id"], f"{seat}")
        finally:
            by_id.close()
    finally:
        a.close()
        b.close()


def scenario_queue(env: Env, ck: Checker) -> None:
    players = [env.connect("tcp" if i % 2 == 0 else "ws") for i in range(3)]
    try:
        for i, c in enumerate(players):
            c.hello(f"py-queue-{i}")
            login(c)
        a, b, c = players
        a.queue("tictactoe", {}, 1500)
        expect_error(ck, "queue twice -> ALREADY_QUEUED", "ALREADY_QUEUED", a.queue, "tictactoe", {}, 1500)
        c.queue("tictactoe", {}, 1200.5)
        c.leave_queue()
        expect_error(ck, "leave_queue when not queued -> NOT_IN_QUEUE", "NOT_IN_QUEUE", c.leave_queue)
        b.queue("tictactoe", {}, 1510)
        ma = a.wait_match()
        mb = b.wait_match()
        ck.check("queue: two close ratings are matched into one room (joined with req 0)",
                 ma["room_id"] == mb["room_id"] and ma["kind"] == "tictactoe"
                 and a.joined_msg[1] == 0 and b.joined_msg[1] == 0, f"{ma} {mb}")
        ck.check("queue: the player who left the queue was not matched",
                 c.poll(0.3) is None and c.room_id is None, f"{c.room_id}")
    finally:
        for p in players:
            p.close()


def run_scenario(ck: Checker, name: str, fn, *args) -> None:
    try:
        fn(*args)
    except Watchdog:
        raise
    except Exception as e:  # any failure inside counts as a failed check
        ck.fail(f"{name}: completed without an unexpected exception", f"{type(e).__name__}: {e}")
        traceback.print_exc(limit=3, file=sys.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tcp", required=True, help="raw TCP address HOST:PORT")
    ap.add_argument("--ws", required=True, help="HTTP/WebSocket address HOST:PORT (path /ws)")
    args = ap.parse_args()
    env = Env(rc.parse_addr(args.tcp), rc.parse_addr(args.ws))
    ck = Checker()

    def on_alarm(signum, frame):
        raise Watchdog()

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TOTAL_BUDGET_S)
    started = time.monotonic()
    try:
        run_scenario(ck, "(a,b,f,g) arena tcp+ws", scenario_arena, env, ck)
        for tr in ("tcp", "ws"):
            run_scenario(ck, f"(c) not in room {tr}", scenario_not_in_room, env, ck, tr)
            run_scenario(ck, f"(d) unknown kind {tr}", scenario_unknown_kind, env, ck, tr)
            run_scenario(ck, f"(e) bad message {tr}", scenario_bad_message, env, ck, tr)
        run_scenario(ck, "ws transport details", scenario_ws_transport, env, ck)
        run_scenario(ck, "(h) accounts and data", scenario_accounts, env, ck)
        run_scenario(ck, "(i) rooms by code, id and listing", scenario_rooms, env, ck)
        run_scenario(ck, "(i) matchmaking queue", scenario_queue, env, ck)
    except Watchdog:
        ck.fail("whole run", f"did not finish within {TOTAL_BUDGET_S} s")
    finally:
        signal.alarm(0)
    print(f"elapsed {time.monotonic() - started:.1f} s")
    print(f"{ck.passed} passed, {ck.failed} failed")
    return 0 if ck.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
