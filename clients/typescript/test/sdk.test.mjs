// The SDK against a real `rally serve` (WebSocket), in Node with the `ws` package.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import WebSocket from "ws";

import { ConflictError, ErrorCode, RallyClient, RallyError } from "../dist/index.js";
import { ADMIN_TOKEN, memoryStorage, startProxy, startServer, until } from "./harness.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

function connect(extra = {}) {
  return RallyClient.connect({
    url: server.wsUrl,
    WebSocket,
    storage: memoryStorage(),
    clientName: "sdk-test",
    ...extra,
  });
}

/** The latest arena state's entry of `playerId`: [id, x, y, last_seq]. */
function tracker(client) {
  const seen = { entries: new Map(), states: 0 };
  client.on("state", (s) => {
    seen.states += 1;
    for (const e of s.payload) seen.entries.set(e[0], e);
  });
  return seen;
}

test("two clients join one arena room and each sees the other move", async () => {
  const a = await connect();
  const b = await connect();
  try {
    await a.loginDevice();
    await b.loginDevice();
    assert.notEqual(a.session.accountId, b.session.accountId, "two storages, two accounts");
    const seenByA = tracker(a);
    const seenByB = tracker(b);
    const joined = [];
    a.on("joined", (r) => joined.push(r));
    const ra = await a.join("arena");
    const rb = await b.join("arena");
    assert.equal(joined.length, 1, "the joined event fires with the reply");
    assert.equal(ra.roomId, rb.roomId);
    assert.equal(ra.kind, "arena");
    assert.notEqual(ra.playerId, rb.playerId);
    await until(() => seenByA.entries.has(rb.playerId), 3000, "a to see b");
    const start = seenByA.entries.get(rb.playerId);
    // b steers towards the centre (the spawn points are spread over the field).
    const dx = start[1] < 500 ? 1 : -1;
    const seq = b.sendInput([dx, 0]);
    assert.equal(seq, 1);
    await until(() => {
      const e = seenByA.entries.get(rb.playerId);
      return e && Math.abs(e[1] - start[1]) > 5 && e[3] >= 1;
    }, 3000, "a to see b move");
    // And the other way round.
    const startA = seenByB.entries.get(ra.playerId);
    a.sendInput([0, startA[2] < 500 ? 1 : -1]);
    await until(() => Math.abs(seenByB.entries.get(ra.playerId)[2] - startA[2]) > 5, 3000, "b to see a move");
    assert.equal(await a.leave(), ra.roomId);
    assert.equal(a.room, null);
  } finally {
    a.close();
    b.close();
  }
});

test("an ordinary client start passes the rate limit; player data, CONFLICT, profiles, chat", async () => {
  const c = await connect();
  const other = await connect();
  try {
    // Login, name, profile, six writes and reads in one burst: 12 requests at once.
    const session = await c.loginDevice();
    const burst = await Promise.all([
      c.setName("Ada"),
      c.getProfile(),
      ...["a", "b", "c", "d", "e", "f"].map((k) => c.putData(k, { k }, 0)),
      c.getData("a"),
      c.getData("none"),
      c.getData("b"),
    ]);
    assert.equal(burst[1].accountId, session.accountId);
    assert.deepEqual(burst.slice(2, 8), [1, 1, 1, 1, 1, 1]);
    assert.deepEqual(burst[8].value, { k: "a" });
    assert.equal(burst[9].value, null);
    assert.equal(burst[9].version, 0);

    // A stale version is a typed CONFLICT carrying the current version.
    assert.equal(await c.putData("a", { k: 2 }, 1, true), 2);
    await assert.rejects(c.putData("a", { k: 3 }, 1), (e) => {
      assert.ok(e instanceof ConflictError, String(e));
      assert.equal(e.code, ErrorCode.CONFLICT);
      assert.equal(e.currentVersion, 2);
      return true;
    });
    await assert.rejects(c.deleteData("missing", 1), (e) => e instanceof ConflictError && e.currentVersion === 0);
    await c.deleteData("b", 1);
    assert.equal((await c.getData("b")).version, 0);

    // Another player reads a public entry; a private one and a missing one answer alike.
    await other.loginDevice();
    const pub = await other.getData("a", session.accountId);
    assert.deepEqual(pub.value, { k: 2 });
    assert.equal(pub.public, true);
    const priv = await other.getData("c", session.accountId);
    const missing = await other.getData("no-such-key", session.accountId);
    assert.equal(priv.value, null);
    assert.equal(priv.version, 0);
    assert.deepEqual({ ...priv, key: "" }, { ...missing, key: "" });

    const profile = await other.getProfile(session.accountId);
    assert.equal(profile.displayName, "Ada");

    // Chat reaches everyone in the room, the sayer included.
    await c.join("arena");
    await other.join("arena");
    const heard = [];
    other.on("chat", (l) => heard.push(l));
    await c.chat("hello there");
    await until(() => heard.length === 1, 3000, "the chat line");
    assert.equal(heard[0].name, "Ada");
    assert.equal(heard[0].text, "hello there");
  } finally {
    c.close();
    other.close();
  }
});

test("errors carry the protocol's codes", async () => {
  const c = await connect();
  try {
    await assert.rejects(c.join("arena"), (e) => e instanceof RallyError && e.code === ErrorCode.UNAUTHORIZED);
    await c.loginDevice();
    await assert.rejects(c.join("no-such-kind"), (e) => {
      assert.equal(e.code, ErrorCode.UNKNOWN_ROOM_KIND);
      assert.equal(e.codeName, "UNKNOWN_ROOM_KIND");
      assert.ok(e.req > 0);
      return true;
    });
    await assert.rejects(c.chat("x"), (e) => e.code === ErrorCode.NOT_IN_ROOM);
    await assert.rejects(c.login("device", "short"), (e) => e.code === ErrorCode.INVALID_ARGUMENT);
  } finally {
    c.close();
  }
});

test("two friends meet by code; a private room is never listed; join by id", async () => {
  const [a, b, c] = [await connect(), await connect(), await connect()];
  try {
    for (const x of [a, b, c]) await x.loginDevice();
    const mine = await a.create("tictactoe", {}, true);
    assert.match(mine.code, /^[A-Z0-9]{6}$/);
    const page = await b.listRooms("tictactoe");
    assert.ok(!page.rooms.some((r) => r.roomId === mine.roomId), "private rooms are not listed");
    const friend = await b.joinByCode(mine.code);
    assert.equal(friend.roomId, mine.roomId);
    assert.equal(friend.code, mine.code);
    assert.notEqual(friend.playerId, mine.playerId);
    await assert.rejects(c.joinByCode(mine.code === "ZZZZZZ" ? "YYYYYY" : "ZZZZZZ"), (e) => {
      assert.equal(e.codeName, "NO_SUCH_ROOM");
      return true;
    });
    const open = await c.create("tictactoe", {}, false);
    const listed = await a.listRooms("tictactoe", {}, 0, 50);
    const entry = listed.rooms.find((r) => r.roomId === open.roomId);
    assert.ok(entry, "a public room is listed");
    assert.equal(entry.code, open.code);
    assert.equal(entry.players, 1);
    assert.ok(listed.total >= 1);
    await b.leave();
    const byId = await b.joinById(open.roomId);
    assert.equal(byId.roomId, open.roomId);
  } finally {
    for (const x of [a, b, c]) x.close();
  }
});

test("the matchmaking queue matches close ratings; leaveQueue; its errors", async () => {
  const [a, b, c] = [await connect(), await connect(), await connect()];
  try {
    for (const x of [a, b, c]) await x.loginDevice();
    const matchA = a.waitForMatch(10_000);
    const matchB = b.waitForMatch(10_000);
    await a.queue("tictactoe", { rating: 1500 });
    assert.equal(a.queued, true);
    await assert.rejects(a.queue("tictactoe", { rating: 1500 }), (e) => e.code === ErrorCode.ALREADY_QUEUED);
    assert.equal(a.queued, true, "still queued after ALREADY_QUEUED");
    await c.queue("tictactoe", { rating: 1490 });
    await c.leaveQueue();
    assert.equal(c.queued, false);
    await assert.rejects(c.leaveQueue(), (e) => e.code === ErrorCode.NOT_IN_QUEUE);
    await b.queue("tictactoe", { rating: 1510.5 });
    const [ra, rb] = await Promise.all([matchA, matchB]);
    assert.equal(ra.roomId, rb.roomId);
    assert.equal(ra.kind, "tictactoe");
    assert.equal(a.room?.roomId, ra.roomId);
    assert.equal(a.queued, false);
    assert.equal(c.room, null, "the player who left the queue was not matched");
  } finally {
    for (const x of [a, b, c]) x.close();
  }
});

test("a request with no reply within timeoutMs fails with TIMEOUT", async () => {
  const proxy = await startProxy(server.http);
  const c = await RallyClient.connect({
    url: `ws://127.0.0.1:${proxy.port}/ws`,
    WebSocket,
    storage: memoryStorage(),
    timeoutMs: 300,
  });
  try {
    await c.loginDevice();
    proxy.stall(true);
    const t0 = Date.now();
    await assert.rejects(c.getProfile(), (e) => e.code === ErrorCode.TIMEOUT && e.retryable);
    const took = Date.now() - t0;
    assert.ok(took >= 290 && took < 2000, `timed out after ${took} ms`);
  } finally {
    c.close();
    await proxy.close();
  }
});

test("a dropped connection reconnects and resumes its seat", async () => {
  const proxy = await startProxy(server.http);
  const c = await RallyClient.connect({
    url: `ws://127.0.0.1:${proxy.port}/ws`,
    WebSocket,
    storage: memoryStorage(),
  });
  const watcher = await connect();
  try {
    await c.loginDevice();
    await watcher.loginDevice();
    const room = await c.join("arena");
    await watcher.join("arena");
    const events = [];
    c.on("disconnected", (e) => events.push(["disconnected", e.code]));
    c.on("reconnected", (w) => events.push(["reconnected", w.sessionId]));
    const resumed = new Promise((r) => c.on("resumed", r));
    const firstSession = c.welcome.sessionId;
    proxy.cut();
    const back = await resumed;
    assert.equal(back.roomId, room.roomId);
    assert.equal(back.playerId, room.playerId);
    assert.deepEqual(events.map((e) => e[0]), ["disconnected", "reconnected"]);
    assert.notEqual(c.welcome.sessionId, firstSession, "a new session took the seat");
    // Inputs flow again on the resumed seat, with seq going on from before the drop.
    const seen = tracker(c);
    const seq = c.sendInput([0.5, 0.5]);
    await until(() => seen.entries.get(room.playerId)?.[3] >= seq, 3000, "the input after resuming");
  } finally {
    c.close();
    watcher.close();
    await proxy.close();
  }
});

test("connect retries timeouts and resets per SPEC section 2: 3 attempts, 100 then 200 ms", async () => {
  const proxy = await startProxy(server.http);
  proxy.refuse(true);
  const t0 = Date.now();
  await assert.rejects(
    RallyClient.connect({ url: `ws://127.0.0.1:${proxy.port}/ws`, WebSocket, storage: memoryStorage() }),
    (e) => e instanceof RallyError && e.code === 0,
  );
  const took = Date.now() - t0;
  assert.equal(proxy.accepted, 3);
  assert.ok(took >= 300 && took < 3000, `gave up after ${took} ms`);
  await proxy.close();
});

test("a kick from the admin API reaches the player and is final", async () => {
  const c = await connect();
  try {
    await c.loginDevice();
    await c.join("arena");
    const closed = new Promise((r) => c.on("closed", r));
    const res = await fetch(`http://127.0.0.1:${server.admin}/admin/players/${c.welcome.sessionId}/kick`, {
      method: "POST",
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    assert.equal(res.status, 200);
    const why = await closed;
    assert.equal(why.byClient, false);
    assert.equal(why.error.code, ErrorCode.KICKED);
    assert.equal(c.connected, false);
  } finally {
    c.close();
  }
});

test("a spectator watches a room without a seat and sees the player's states", async () => {
  const player = await connect();
  const watcher = await connect();
  try {
    await player.loginDevice();
    await watcher.loginDevice();
    const room = await player.join("arena");
    const byTick = new Map();
    player.on("state", (s) => byTick.set(s.tick, JSON.stringify(s.payload)));
    const watched = [];
    watcher.on("spectatorState", (s) => watched.push(s));
    const w = await watcher.spectate(room.roomId);
    assert.equal(w.roomId, room.roomId);
    assert.equal(w.kind, "arena");
    assert.equal(watcher.room, null, "no seat");
    await until(() => watched.some((s) => byTick.has(s.tick)), 3000, "a tick seen by both");
    const both = watched.find((s) => byTick.has(s.tick));
    assert.equal(JSON.stringify(both.payload), byTick.get(both.tick));
    await watcher.stopSpectating();
    await assert.rejects(watcher.stopSpectating(), (e) => e.code === ErrorCode.NOT_SPECTATING);
    await assert.rejects(watcher.spectate(room.roomId + 1000), (e) => e.code === ErrorCode.NO_SUCH_MATCH);
  } finally {
    player.close();
    watcher.close();
  }
});
