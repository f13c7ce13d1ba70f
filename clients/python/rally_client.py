"""Minimal Rally protocol v1 client (written from docs/protocol.md only).

Transports: raw TCP (u32 big-endian length-prefixed frames) and WebSocket
(binary messages on ws://HOST:PORT/ws; the WebSocket client is implemented
here with the standard library). Bodies are MessagePack arrays.

In a cluster (revision 4, section 11b) a join may be answered by `redirect`:
the joins follow it by themselves (a new connection of the same transport to
the node named, `hello` with the session token, `claim_seat` with the ticket)
and return that room, so the caller never sees the redirect.

Everything is blocking with bounded timeouts; no threads.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import os
import random
import socket
import struct
import time

import msgpack

PROTOCOL_VERSION = 1
DEFAULT_TIMEOUT = 10.0
MAX_SERVER_FRAME = 16 * 1024 * 1024  # our own sanity limit (section 2)

# Client message types (section 5)
HELLO, JOIN, LEAVE, INPUT, CHAT, PING = 1, 2, 3, 4, 5, 6
LOGIN, GET_DATA, PUT_DATA, DELETE_DATA, GET_PROFILE, SET_NAME = 7, 8, 9, 10, 11, 12
# Revision 2: rooms and matchmaking (section 5c)
CREATE, JOIN_OR_CREATE, JOIN_BY_ID, JOIN_BY_CODE, LIST_ROOMS, QUEUE, LEAVE_QUEUE = range(13, 20)
# Revision 4: clusters (section 11b)
CLAIM_SEAT = 23
# Server message types (section 6)
WELCOME, JOINED, LEFT, STATE, CHAT_LINE, PONG, OK, ERROR, ROOM_CLOSED, SHUTDOWN = range(64, 74)
SESSION, DATA, WRITTEN, PROFILE, ROOMS = 74, 75, 76, 77, 78
REDIRECT = 84

MESSAGE_NAMES = {
    64: "welcome", 65: "joined", 66: "left", 67: "state", 68: "chat", 69: "pong",
    70: "ok", 71: "error", 72: "room_closed", 73: "shutdown", 74: "session", 75: "data",
    76: "written", 77: "profile", 78: "rooms", 84: "redirect",
}

# Error codes (section 9)
ERROR_CODES = {
    1: "BAD_MESSAGE", 2: "MESSAGE_TOO_LARGE", 3: "UNSUPPORTED_VERSION",
    10: "SERVER_FULL", 11: "TIMEOUT", 12: "SLOW_CONSUMER", 13: "SERVER_SHUTDOWN",
    14: "KICKED", 15: "DRAINING",
    20: "NOT_IN_ROOM", 21: "ROOM_FULL", 22: "UNKNOWN_ROOM_KIND", 23: "ALREADY_IN_ROOM",
    24: "INVALID_ARGUMENT", 25: "INPUT_REJECTED", 26: "ROOM_BUSY", 27: "RATE_LIMITED",
    28: "RESUME_FAILED", 29: "ROOM_CLOSED", 30: "INTERNAL",
    31: "CONFLICT", 32: "FORBIDDEN", 33: "NOT_FOUND", 34: "UNAVAILABLE", 35: "UNAUTHORIZED",
    36: "NO_SUCH_ROOM", 37: "ROOM_LOCKED", 38: "BAD_OPTIONS", 39: "JOIN_REFUSED",
    40: "MATCH_TIMEOUT", 41: "NOT_IN_QUEUE", 42: "ALREADY_QUEUED", 43: "QUEUE_FULL",
    46: "NO_SUCH_MATCH", 47: "SPECTATORS_FULL", 48: "NOT_SPECTATING",
    50: "TICKET_INVALID", 51: "TICKET_EXPIRED", 52: "TICKET_USED", 53: "TICKET_WRONG_NODE",
    54: "CLUSTER_UNAVAILABLE",
}
ERROR_NUMBERS = {v: k for k, v in ERROR_CODES.items()}
FATAL_CODES = {1, 2, 3, 10, 11, 12, 14, 15}

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class RallyError(Exception):
    """An `error` message from the server, raised as the reply to a request."""

    def __init__(self, code: int, message: str, req: int, current_version: int | None = None):
        self.code = code
        # CONFLICT's fifth element: the entry's current version (0: no such entry).
        self.current_version = current_version
        self.name = ERROR_CODES.get(code, f"UNKNOWN_{code}")
        self.message = message
        self.req = req
        super().__init__(f"{self.name} ({code}) req={req}: {message}")


class ConnectionClosed(Exception):
    """The server closed the connection. `code`/`reason` are the WebSocket close
    status (None over TCP); `error` is the last fatal `error` message seen, if any."""

    def __init__(self, msg: str, code: int | None = None, reason: str = "", error: list | None = None):
        self.code = code
        self.reason = reason
        self.error = error
        super().__init__(msg)


class ProtocolViolation(Exception):
    """The server sent something the protocol does not allow."""


class RecvTimeout(TimeoutError):
    pass


# --------------------------------------------------------------------------
# Transports. Each buffers incoming bytes so a timeout never loses data, and
# exposes send_body(bytes) / recv_body(deadline) -> bytes | None (None: timed out).


class _BufferedSocket:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()
        self.eof = False

    def _fill(self, deadline: float) -> bool:
        """Read more bytes into the buffer. False if the deadline passed first."""
        if self.eof:
            raise ConnectionClosed("connection closed by server")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError as e:
            self.eof = True
            raise ConnectionClosed(f"connection reset: {e}") from e
        if not chunk:
            self.eof = True
            raise ConnectionClosed("connection closed by server")
        self.buf += chunk
        return True

    def _sendall(self, data: bytes, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise ConnectionClosed(f"send failed: {e}") from e


class TcpTransport(_BufferedSocket):
    name = "tcp"

    def __init__(self, host: str, port: int, timeout: float = DEFAULT_TIMEOUT):
        super().__init__(socket.create_connection((host, port), timeout=timeout))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send_body(self, body: bytes) -> None:
        self._sendall(struct.pack(">I", len(body)) + body)

    def send_raw(self, data: bytes) -> None:
        """Send raw bytes as-is (for tests of malformed framing)."""
        self._sendall(data)

    def recv_body(self, deadline: float) -> bytes | None:
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack(">I", self.buf[:4])
                if n > MAX_SERVER_FRAME:
                    raise ProtocolViolation(f"server frame of {n} bytes exceeds sanity limit")
                if len(self.buf) >= 4 + n:
                    body = bytes(self.buf[4:4 + n])
                    del self.buf[:4 + n]
                    return body
            try:
                if not self._fill(deadline):
                    return None
            except ConnectionClosed:
                if self.buf:
                    raise ConnectionClosed(f"connection closed mid-frame ({len(self.buf)} bytes pending)")
                raise

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def _ws_mask(data: bytes, key: bytes) -> bytes:
    if not data:
        return b""
    n = len(data)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


class WsTransport(_BufferedSocket):
    name = "ws"

    OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

    def __init__(self, host: str, port: int, path: str = "/ws", timeout: float = DEFAULT_TIMEOUT,
                 subprotocol: str | None = "rally.v1"):
        super().__init__(socket.create_connection((host, port), timeout=timeout))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.close_sent = False
        self.close_received: tuple[int | None, str] | None = None
        self.pongs: list[bytes] = []  # payloads of WebSocket-level pongs received
        self._frag_op: int | None = None
        self._frag: bytearray = bytearray()
        self.subprotocol = None
        self.response_status, self.response_headers = self._handshake(host, port, path, timeout, subprotocol)

    # -- opening handshake (RFC 6455 section 4.1)
    def _handshake(self, host, port, path, timeout, subprotocol):
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if subprotocol:
            lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
        self._sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 65536:
                raise ProtocolViolation("HTTP response head too large")
            if not self._fill(deadline):
                raise RecvTimeout("timed out waiting for the WebSocket upgrade response")
        end = self.buf.index(b"\r\n\r\n")
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[:end + 4]  # anything after the head is already WebSocket frames
        status_line, *header_lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
        headers: dict[str, str] = {}
        for line in header_lines:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if status != 101:
            raise ProtocolViolation(f"WebSocket upgrade refused: {status_line!r}")
        if headers.get("upgrade", "").lower() != "websocket":
            raise ProtocolViolation(f"bad Upgrade header: {headers.get('upgrade')!r}")
        if "upgrade" not in [t.strip().lower() for t in headers.get("connection", "").split(",")]:
            raise ProtocolViolation(f"bad Connection header: {headers.get('connection')!r}")
        expected = base64.b64encode(hashlib.sha1((key + WS_GUID).encode("ascii")).digest()).decode("ascii")
        if headers.get("sec-websocket-accept") != expected:
            raise ProtocolViolation(
                f"bad Sec-WebSocket-Accept: got {headers.get('sec-websocket-accept')!r}, expected {expected!r}")
        if headers.get("sec-websocket-extensions"):
            raise ProtocolViolation("server negotiated an extension we did not offer")
        proto = headers.get("sec-websocket-protocol")
        offered = [x.strip() for x in (subprotocol or "").split(",") if x.strip()]
        if proto is not None and proto not in offered:  # RFC 6455 4.1: must be one we offered
            raise ProtocolViolation(f"server selected subprotocol {proto!r}, offered {subprotocol!r}")
        self.subprotocol = proto
        return status, headers

    # -- frames
    def send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        if n < 126:
            header = struct.pack(">BB", b0, 0x80 | n)
        elif n < 65536:
            header = struct.pack(">BBH", b0, 0x80 | 126, n)
        else:
            header = struct.pack(">BBQ", b0, 0x80 | 127, n)
        key = os.urandom(4)
        self._sendall(header + key + _ws_mask(payload, key))

    def send_body(self, body: bytes) -> None:
        self.send_frame(self.OP_BINARY, body)

    def send_fragmented(self, body: bytes, pieces: int = 2) -> None:
        """Send one binary message split into `pieces` frames (test helper)."""
        step = max(1, -(-len(body) // pieces))
        chunks = [body[i:i + step] for i in range(0, len(body), step)] or [b""]
        for i, chunk in enumerate(chunks):
            op = self.OP_BINARY if i == 0 else self.OP_CONT
            self.send_frame(op, chunk, fin=(i == len(chunks) - 1))

    def send_text(self, text: str) -> None:
        self.send_frame(self.OP_TEXT, text.encode("utf-8"))

    def send_ping(self, payload: bytes = b"") -> None:
        self.send_frame(self.OP_PING, payload)

    def _parse_frame(self):
        buf = self.buf
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        pos = 2
        n = b1 & 0x7F
        if n == 126:
            if len(buf) < 4:
                return None
            (n,) = struct.unpack(">H", buf[2:4])
            pos = 4
        elif n == 127:
            if len(buf) < 10:
                return None
            (n,) = struct.unpack(">Q", buf[2:10])
            pos = 10
        if n > MAX_SERVER_FRAME:
            raise ProtocolViolation(f"server WebSocket frame of {n} bytes exceeds sanity limit")
        masked = bool(b1 & 0x80)
        key = b""
        if masked:
            if len(buf) < pos + 4:
                return None
            key = bytes(buf[pos:pos + 4])
            pos += 4
        if len(buf) < pos + n:
            return None
        payload = bytes(buf[pos:pos + n])
        del buf[:pos + n]
        if masked:
            raise ProtocolViolation("server sent a masked frame (RFC 6455 5.1)")
        if b0 & 0x70:
            raise ProtocolViolation("server set RSV bits without a negotiated extension")
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_body(self, deadline: float) -> bytes | None:
        while True:
            if self.close_received is not None:
                code, reason = self.close_received
                raise ConnectionClosed(f"WebSocket closed by server (status {code}, {reason!r})", code, reason)
            frame = self._parse_frame()
            if frame is None:
                try:
                    if not self._fill(deadline):
                        return None
                except ConnectionClosed:
                    raise ConnectionClosed("TCP connection closed without a WebSocket close frame")
                continue
            fin, op, payload = frame
            if op == self.OP_PING:
                if not self.close_sent:
                    self.send_frame(self.OP_PONG, payload)
            elif op == self.OP_PONG:
                self.pongs.append(payload)
            elif op == self.OP_CLOSE:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                reason = payload[2:].decode("utf-8", "replace")
                self.close_received = (code, reason)
                if not self.close_sent:
                    try:
                        self.send_frame(self.OP_CLOSE, payload[:2])
                        self.close_sent = True
                    except (ConnectionClosed, OSError):
                        pass
            elif op in (self.OP_TEXT, self.OP_BINARY):
                if self._frag_op is not None:
                    raise ProtocolViolation("new data frame while a fragmented message is in progress")
                if op == self.OP_TEXT:
                    raise ProtocolViolation("server sent a text message; Rally uses binary messages")
                if fin:
                    return payload
                self._frag_op, self._frag = op, bytearray(payload)
            elif op == self.OP_CONT:
                if self._frag_op is None:
                    raise ProtocolViolation("continuation frame without a started message")
                self._frag += payload
                if fin:
                    body = bytes(self._frag)
                    self._frag_op, self._frag = None, bytearray()
                    return body
            else:
                raise ProtocolViolation(f"unknown WebSocket opcode {op}")

    def close(self, code: int = 1000, wait: float = 2.0) -> None:
        """Close handshake: send a close frame, wait (bounded) for the server's, close TCP."""
        try:
            if not self.close_sent and not self.eof:
                self.send_frame(self.OP_CLOSE, struct.pack(">H", code))
                self.close_sent = True
            deadline = time.monotonic() + wait
            while self.close_received is None and not self.eof:
                frame = self._parse_frame()
                if frame is None:
                    if not self._fill(deadline):
                        break
                    continue
                if frame[1] == self.OP_CLOSE:
                    p = frame[2]
                    self.close_received = (struct.unpack(">H", p[:2])[0] if len(p) >= 2 else None,
                                           p[2:].decode("utf-8", "replace"))
        except (ConnectionClosed, OSError, ProtocolViolation):
            pass
        finally:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()


# --------------------------------------------------------------------------
# Protocol client


def pack(msg: list) -> bytes:
    return msgpack.packb(msg, use_bin_type=True)


def unpack(body: bytes) -> list:
    msg = msgpack.unpackb(body, raw=False, strict_map_key=False, use_list=True)
    if not isinstance(msg, list) or not msg or not isinstance(msg[0], int):
        raise ProtocolViolation(f"server body is not an array starting with a type: {msg!r}")
    return msg


def open_transport(kind: str, host: str, port: int, timeout: float = DEFAULT_TIMEOUT):
    """A new connection of transport `kind` ("tcp" or "ws") to host:port."""
    if kind == "ws":
        return WsTransport(host, port, timeout=timeout)
    return TcpTransport(host, port, timeout)


# SPEC section 2: at most 3 attempts, 100 ms then 200 ms (plus jitter); only timeouts and
# connection resets are retried.
RETRY_ATTEMPTS = 3
RETRY_BASE_S = 0.1


def with_retry(attempt):
    """Runs `attempt()` with the SPEC section 2 retry policy."""
    for n in range(1, RETRY_ATTEMPTS + 1):
        try:
            return attempt()
        except (TimeoutError, ConnectionResetError):
            if n == RETRY_ATTEMPTS:
                raise
            time.sleep(RETRY_BASE_S * 2 ** (n - 1) * (1 + 0.25 * random.random()))


class RallyClient:
    def __init__(self, transport, timeout: float = DEFAULT_TIMEOUT, connector=None):
        self.t = transport
        self.timeout = timeout
        # Opens the connection to another node when a join is redirected there:
        # `connector(kind, host, port, timeout)` -> transport. Replaceable (a test delays it).
        self.connector = connector or open_transport
        # The node that holds our seat after a redirect (None: the one we connected to).
        self.node: str | None = None
        self.client_name = "rally-py"
        self.backlog: collections.deque[list] = collections.deque()
        self.welcome: dict | None = None
        self.fatal_error: list | None = None
        self.room_id: int | None = None
        self.player_id: int | None = None
        self._next_req = 1
        self.closed = False
        self.last_body: bytes | None = None
        self.joined_msg: list | None = None
        self.account_id = 0
        self.token: str | None = None
        self.room_code: str | None = None
        self.team = 0

    @property
    def transport_name(self) -> str:
        return self.t.name

    # -- sending
    def send(self, msg: list) -> None:
        self.send_body(pack(msg))

    def send_body(self, body: bytes) -> None:
        self.t.send_body(body)

    def new_req(self) -> int:
        req = self._next_req
        self._next_req = req + 1 if req < 0xFFFFFFFF else 1
        return req

    # -- receiving
    def _read(self, deadline: float) -> list | None:
        try:
            body = self.t.recv_body(deadline)
        except ConnectionClosed as e:
            if e.error is None:
                e.error = self.fatal_error
            raise
        if body is None:
            return None
        self.last_body = body
        msg = unpack(body)
        if msg[0] == ERROR and len(msg) >= 4 and msg[3] == 0 and msg[1] in FATAL_CODES:
            self.fatal_error = msg
        return msg

    def poll(self, timeout: float = 0.0) -> list | None:
        """Next message, or None if none arrives within `timeout` seconds."""
        if self.backlog:
            return self.backlog.popleft()
        return self._read(time.monotonic() + timeout)

    def recv(self, timeout: float | None = None) -> list:
        """Next message as a list; raises RecvTimeout if none within the timeout."""
        timeout = self.timeout if timeout is None else timeout
        msg = self.poll(timeout)
        if msg is None:
            raise RecvTimeout(f"no message from server within {timeout:.1f} s")
        return msg

    def wait_for(self, pred, timeout: float | None = None, keep_others: bool = True) -> list:
        """Read until a message satisfies pred; others are kept for recv() (or dropped)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        for i, m in enumerate(self.backlog):
            if pred(m):
                del self.backlog[i]
                return m
        while True:
            m = self._read(deadline)
            if m is None:
                raise RecvTimeout(f"expected message not received within {timeout:.1f} s")
            if pred(m):
                return m
            if keep_others:
                self.backlog.append(m)

    def request(self, msg: list, success_type: int | tuple[int, ...], timeout: float | None = None) -> list:
        """Send a request (msg[1] is its req) and wait for its reply, of `success_type` (or
        one of a tuple of types); raise RallyError on `error`."""
        req = msg[1]
        types = success_type if isinstance(success_type, tuple) else (success_type,)
        self.send(msg)
        reply = self.wait_for(
            lambda m: (m[0] in types and len(m) > 1 and m[1] == req)
            or (m[0] == ERROR and len(m) > 3 and m[3] == req),
            timeout)
        if reply[0] == ERROR:
            raise RallyError(reply[1], reply[2], reply[3], reply[4] if len(reply) > 4 else None)
        return reply

    # -- protocol operations
    def hello(self, name: str = "rally-py", version: int = PROTOCOL_VERSION, timeout: float | None = None,
              token: str | None = None, resume_token: str | None = None) -> dict:
        """Handshake. With a session `token`, `welcome["account_id"]` says whether it was
        accepted (0: not; an `error` UNAUTHORIZED with req 0 follows, section 5a)."""
        self.client_name = name
        msg = [HELLO, version, name]
        if resume_token is not None or token is not None:
            msg.append(resume_token)  # nil: no resume
        if token is not None:
            msg.append(token)
        self.send(msg)
        m = self.recv(timeout)
        if m[0] == ERROR:
            raise RallyError(m[1], m[2], m[3], m[4] if len(m) > 4 else None)
        if m[0] != WELCOME or len(m) < 7:
            raise ProtocolViolation(f"expected welcome, got {m!r}")
        self.welcome = dict(zip(
            ["version", "session_id", "tick_hz", "max_message_bytes", "timeout_ms", "queue_capacity",
             "resume_token", "reconnect_grace_ms", "account_id"], m[1:10]))
        self.welcome.setdefault("account_id", 0)
        self.account_id = self.welcome["account_id"]
        if token is not None and self.account_id:
            self.token = token  # accepted: kept for following a redirect
        return self.welcome

    def login(self, provider: str, credential: str, req: int | None = None, timeout: float | None = None) -> dict:
        """`login`; returns the `session` reply as a dict and remembers the token."""
        req = req or self.new_req()
        m = self.request([LOGIN, req, provider, credential], SESSION, timeout)
        session = dict(zip(["account_id", "token", "expires_at_ms", "display_name"], m[2:6]))
        self.account_id, self.token = session["account_id"], session["token"]
        return session

    def device_login(self, device_id: str, **kw) -> dict:
        return self.login("device", device_id, **kw)

    def get_data(self, key: str, owner: int = 0, req: int | None = None, timeout: float | None = None) -> dict:
        """`get_data`; `value` is the decoded JSON value, or None when the key is absent."""
        req = req or self.new_req()
        m = self.request([GET_DATA, req, owner, key], DATA, timeout)
        entry = dict(zip(["owner", "key", "value", "version", "public"], m[2:7]))
        entry["value"] = None if entry["value"] is None else json.loads(entry["value"])
        return entry

    def put_data(self, key: str, value, expected_version: int = 0, public: bool = False,
                 req: int | None = None, timeout: float | None = None) -> int:
        """`put_data` of any JSON-serializable value; returns the new version."""
        req = req or self.new_req()
        text = json.dumps(value, separators=(",", ":"))
        m = self.request([PUT_DATA, req, key, text, expected_version, public], WRITTEN, timeout)
        return m[3]

    def delete_data(self, key: str, expected_version: int, req: int | None = None,
                    timeout: float | None = None) -> None:
        req = req or self.new_req()
        self.request([DELETE_DATA, req, key, expected_version], OK, timeout)

    def get_profile(self, account_id: int = 0, req: int | None = None, timeout: float | None = None) -> dict:
        req = req or self.new_req()
        m = self.request([GET_PROFILE, req, account_id], PROFILE, timeout)
        return dict(zip(["account_id", "display_name", "sessions", "play_ms", "games_played"], m[2:7]))

    def set_name(self, name: str, req: int | None = None, timeout: float | None = None) -> None:
        req = req or self.new_req()
        self.request([SET_NAME, req, name], OK, timeout)

    def _seated(self, m: list) -> dict:
        """Remembers the room a `joined` seats us in; returns it as a dict. `code` and
        `team` are revision 2's appended fields (absent from an older server)."""
        self.room_id, self.player_id = m[2], m[3]
        self.joined_msg = m
        room = dict(zip(["room_id", "player_id", "kind", "max_players", "code", "team"], m[2:8]))
        room.setdefault("code", "")
        room.setdefault("team", 0)
        self.room_code, self.team = room["code"], room["team"]
        return room

    def _join(self, msg: list, timeout: float | None) -> dict:
        """Sends one of the joins; its `joined`, or the room a `redirect` leads to."""
        m = self.request(msg, (JOINED, REDIRECT), timeout)
        if m[0] == REDIRECT:
            return self.follow_redirect(m, timeout)
        return self._seated(m)

    def join(self, kind: str, req: int | None = None, timeout: float | None = None) -> tuple[int, int]:
        """`join` (join-or-create by kind); in a cluster the seat may be on another node,
        and the client moves there (`follow_redirect`). Returns (room_id, player_id)."""
        room = self._join([JOIN, req or self.new_req(), kind], timeout)
        return room["room_id"], room["player_id"]

    def follow_redirect(self, m: list, timeout: float | None = None) -> dict:
        """Takes the seat a `redirect` `[84, req, node, tcp, ws, ticket, room_id]` reserved
        (section 11b): opens a connection of the same transport to the node's address
        (SPEC section 2 retries), says `hello` with the session token when logged in,
        closes the old connection (it holds no seat) and sends `claim_seat`. Returns the
        room as the joins do. A refused ticket raises RallyError (TICKET_INVALID,
        TICKET_EXPIRED, TICKET_USED, TICKET_WRONG_NODE); the client then stays connected
        to the new node, seatless, and may `join` again. The claim is never retried: a
        ticket works once."""
        if len(m) < 7 or not all(isinstance(x, str) for x in m[2:6]):
            raise ProtocolViolation(f"malformed redirect: {m!r}")
        node, tcp, ws, ticket = m[2:6]
        try:
            host, port = parse_addr(ws if self.t.name == "ws" else tcp)
        except ValueError as e:
            raise ProtocolViolation(f"redirect to a bad address: {m!r}") from e
        new = with_retry(lambda: self.connector(self.t.name, host, port, self.timeout))
        old, self.t = self.t, new
        old.close()
        # Nothing read from the old node matters here: it held no seat for us.
        self.backlog.clear()
        self.fatal_error = None
        self.room_id = self.player_id = None
        self.hello(name=self.client_name, token=self.token)
        self.node = node
        return self.claim_seat(ticket, timeout=timeout)

    def claim_seat(self, ticket: str, req: int | None = None, timeout: float | None = None) -> dict:
        """`claim_seat` (revision 4): takes the seat a redirect's ticket holds on this node."""
        req = req or self.new_req()
        return self._seated(self.request([CLAIM_SEAT, req, ticket], JOINED, timeout))

    def create(self, kind: str, options: dict | None = None, private: bool = False,
               req: int | None = None, timeout: float | None = None) -> dict:
        """`create`: a new room of `kind` with `options` (a map the game reads), the
        sender seated in it. A private room is reached only by id or code."""
        req = req or self.new_req()
        return self._join([CREATE, req, kind, options or {}, private], timeout)

    def join_or_create(self, kind: str, options: dict | None = None, req: int | None = None,
                       timeout: float | None = None) -> dict:
        """`join_or_create`: an open public room whose options match on the kind's filter
        keys, else a new one."""
        req = req or self.new_req()
        return self._join([JOIN_OR_CREATE, req, kind, options or {}], timeout)

    def join_by_id(self, room_id: int, req: int | None = None, timeout: float | None = None) -> dict:
        req = req or self.new_req()
        return self._join([JOIN_BY_ID, req, room_id], timeout)

    def join_by_code(self, code: str, req: int | None = None, timeout: float | None = None) -> dict:
        req = req or self.new_req()
        return self._join([JOIN_BY_CODE, req, code], timeout)

    def list_rooms(self, kind: str, filter: dict | None = None, offset: int = 0, limit: int = 50,
                   req: int | None = None, timeout: float | None = None) -> dict:
        """`list_rooms`: `{"total": n, "rooms": [dict, ...]}`, a page of the open public
        rooms of `kind` whose options match `filter`."""
        req = req or self.new_req()
        m = self.request([LIST_ROOMS, req, kind, filter or {}, offset, limit], ROOMS, timeout)
        fields = ["room_id", "kind", "code", "players", "max_players", "metadata", "age_ms", "locked"]
        return {"total": m[2], "rooms": [dict(zip(fields, r)) for r in m[3]]}

    def queue(self, kind: str, options: dict | None = None, rating: float = 0, party: bool = False,
              req: int | None = None, timeout: float | None = None) -> None:
        """`queue`: wait for a match of `kind` near `rating`. Returns on `ok` (queued);
        the match comes later as `joined` with req 0: `wait_match`. With `party` every
        player of the sender's room is queued with it."""
        req = req or self.new_req()
        self.request([QUEUE, req, kind, options or {}, rating, party], OK, timeout)

    def leave_queue(self, req: int | None = None, timeout: float | None = None) -> None:
        req = req or self.new_req()
        self.request([LEAVE_QUEUE, req], OK, timeout)

    def wait_match(self, timeout: float | None = None) -> dict:
        """Waits for the queue's answer: the match's `joined` (req 0), returned as a dict,
        or `error` MATCH_TIMEOUT (req 0), raised. A `left` (req 0) on the way, a party
        leaving its room for the match, is noted. In a cluster the match's room may be
        on another node: then the answer is `redirect` (req 0), followed here like a
        join's (`follow_redirect`), and the room it leads to is returned."""
        while True:
            m = self.wait_for(
                lambda m: (m[0] in (JOINED, LEFT, REDIRECT) and len(m) > 1 and m[1] == 0)
                or (m[0] == ERROR and len(m) > 3 and m[3] == 0 and m[1] == ERROR_NUMBERS["MATCH_TIMEOUT"]),
                timeout)
            if m[0] == ERROR:
                raise RallyError(m[1], m[2], m[3])
            if m[0] == LEFT:
                self.room_id = self.player_id = None
                continue
            if m[0] == REDIRECT:
                return self.follow_redirect(m, timeout)
            return self._seated(m)

    def leave(self, req: int | None = None, timeout: float | None = None) -> int:
        req = req or self.new_req()
        m = self.request([LEAVE, req], LEFT, timeout)
        self.room_id = self.player_id = None
        return m[2]

    def chat(self, text: str, req: int | None = None, timeout: float | None = None) -> list:
        """Send a chat line; returns the messages from our own chat line up to `ok`."""
        req = req or self.new_req()
        self.send([CHAT, req, text])
        seen = []
        reply = self.wait_for(
            lambda m: seen.append(m) or (m[0] == OK and m[1] == req) or (m[0] == ERROR and m[3] == req),
            timeout)
        if reply[0] == ERROR:
            raise RallyError(reply[1], reply[2], reply[3], reply[4] if len(reply) > 4 else None)
        return seen

    def send_input(self, seq: int, payload) -> None:
        self.send([INPUT, seq, payload])

    def send_ping(self, nonce: int) -> None:
        self.send([PING, nonce])

    def ping(self, nonce: int | None = None, timeout: float | None = None) -> int:
        """Send ping and wait for the pong with the same nonce; returns the echoed nonce.

        While seated in a room ticking at 20 Hz or more, the server reads the ping at the
        room's next tick (docs/protocol.md section 8): a round trip timed around this call
        includes up to one tick (50 ms at 20 Hz).
        """
        nonce = random.getrandbits(64) if nonce is None else nonce
        self.send_ping(nonce)
        m = self.wait_for(lambda m: m[0] == PONG, timeout)
        return m[1]

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.t.close()


def connect_tcp(host: str, port: int, timeout: float = DEFAULT_TIMEOUT, connector=None) -> RallyClient:
    return RallyClient(TcpTransport(host, port, timeout), timeout, connector)


def connect_ws(host: str, port: int, path: str = "/ws", timeout: float = DEFAULT_TIMEOUT,
               subprotocol: str | None = "rally.v1", connector=None) -> RallyClient:
    return RallyClient(WsTransport(host, port, path, timeout, subprotocol), timeout, connector)


def parse_addr(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)
