// The SDK in a real two-node cluster (protocol section 11b): a nats-server of the test's
// own and two `rally serve` nodes sharing an `auth_secret` and a database. A join through
// one node answered with `redirect` moves the client to the other, transparently; a seat
// ticket claimed too late rejects the join with TICKET_EXPIRED; players queued on
// different nodes meet in one room (the queue's `redirect` is followed); and when the
// node of the seat dies, the client falls back to its configured address and the game joins again.
// Skipped with a marked line without RALLY_NATS_SERVER (`eval "$(scripts/nats.sh)"`);
// RALLY_REQUIRE_NATS=1 (CI) makes that a failure.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import WebSocket from "ws";

import { ErrorCode, RallyClient, RallyError } from "../dist/index.js";
import { ADMIN_TOKEN, memoryStorage, startNats, startServer, until } from "./harness.mjs";

const TICKET_TTL_MS = 1000; // the smallest seat_ticket_ttl_ms: the expiry case waits past it

const noNats = !process.env.RALLY_NATS_SERVER;
if (noNats) {
  if (process.env.RALLY_REQUIRE_NATS === "1") {
    throw new Error('RALLY_REQUIRE_NATS=1 but RALLY_NATS_SERVER is not set (eval "$(scripts/nats.sh)")');
  }
  console.log("rally-testkit: skipped (no NATS) TypeScript cluster redirect tests: set RALLY_NATS_SERVER (scripts/nats.sh)");
}

let nats;
let dir;
const nodes = {};
before(async () => {
  if (noNats) return;
  nats = await startNats();
  // One SQLite file for both nodes: an account created at login on one must exist on the
  // other, where its session token is checked. It stands in for a real cluster's shared
  // PostgreSQL; these are tests of the SDK, not of storage.
  dir = mkdtempSync(join(tmpdir(), "rally-ts-cluster-"));
  for (const id of ["a", "b"]) {
    nodes[id] = await startServer(
      [
        "--cluster-nats-url", nats.url,
        "--node-id", id,
        "--cluster-node-ttl-ms", "1500",
        "--seat-ticket-ttl-ms", String(TICKET_TTL_MS),
        "--auth-secret", "ts-cluster-test-secret-0123456789",
        "--command-rate", "1000",
      ],
      { databaseUrl: `sqlite://${join(dir, "rally.db")}` },
    );
  }
  for (const id of ["a", "b"]) {
    await until(async () => (await view(id)).nodes?.length === 2, 20_000, `node ${id} to see both`);
  }
});
after(async () => {
  for (const n of Object.values(nodes)) await n.stop();
  await nats?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** What `GET /admin/cluster` of node `id` says. */
async function view(id) {
  try {
    const r = await fetch(`http://127.0.0.1:${nodes[id].admin}/admin/cluster`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    return r.status === 200 ? await r.json() : {};
  } catch {
    return {};
  }
}

async function player(id, extra = {}) {
  const c = await RallyClient.connect({
    url: nodes[id].wsUrl,
    WebSocket,
    storage: memoryStorage(),
    clientName: "cluster-test",
    ...extra,
  });
  await c.loginDevice();
  return c;
}

const nodeOf = (client) => Object.keys(nodes).find((id) => nodes[id].wsUrl === client.serverUrl);

/**
 * A player who joins arena through b, the node its room is on, and the other node once
 * that one's directory lists the room (so it redirects there). With no room anywhere b
 * places the room on the least-loaded node, ties going to the smaller id: often a.
 */
async function seatFirst() {
  const p = await player("b");
  const room = await p.join("arena");
  const owner = nodeOf(p);
  const other = owner === "a" ? "b" : "a";
  await until(
    async () =>
      (await view(other)).nodes
        ?.find((n) => n.node === owner)
        ?.room_list?.some((r) => r.room_id === room.roomId),
    10_000,
    `${other} to list ${owner}'s room`,
  );
  return { p, room, owner, other };
}

test("a join through one node is redirected to the other and plays there", { skip: noNats }, async () => {
  const { p, room, owner, other } = await seatFirst();
  const q = await player(other);
  try {
    const joined = [];
    q.on("joined", (r) => joined.push(r));
    const r = await q.join("arena");
    assert.equal(r.roomId, room.roomId, "the seat is in the owner's room");
    assert.equal(q.serverUrl, nodes[owner].wsUrl, "the client moved to the owner");
    assert.equal(joined.length, 1, "one joined event, as for a local join");
    assert.equal(q.welcome.accountId, q.session.accountId, "logged in on the owner by the session token");
    let seenByQ = null;
    q.on("state", (s) => {
      for (const e of s.payload) if (e[0] === r.playerId && e[3] >= 1) seenByQ = e;
    });
    let seenByP = false;
    p.on("state", (s) => {
      if (s.payload.some((e) => e[0] === r.playerId)) seenByP = true;
    });
    q.sendInput([1, 0]);
    await until(() => seenByQ, 5000, "the redirected player's input in its states");
    await until(() => seenByP, 5000, "the first player to see the redirected one");
    assert.ok(q.connected);
  } finally {
    p.close();
    q.close();
  }
});

/**
 * A `WebSocket` that opens `delayMs` late for `slowUrl` (a network slower than the seat
 * ticket's life), and at once for any other URL.
 */
function delayedWebSocket(slowUrl, delayMs) {
  return class Delayed {
    constructor(url, protocols) {
      this.binaryType = "arraybuffer";
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      this.inner = null;
      this.closed = false;
      const open = () => {
        if (this.closed) return;
        const ws = new WebSocket(url, protocols);
        ws.binaryType = this.binaryType;
        ws.onopen = (e) => this.onopen?.(e);
        ws.onmessage = (e) => this.onmessage?.(e);
        ws.onclose = (e) => this.onclose?.(e);
        ws.onerror = (e) => this.onerror?.(e);
        this.inner = ws;
      };
      if (url === slowUrl) setTimeout(open, delayMs);
      else open();
    }
    get readyState() {
      return this.inner?.readyState ?? 0;
    }
    send(data) {
      this.inner?.send(data);
    }
    close(code, reason) {
      this.closed = true;
      this.inner?.close(code, reason);
    }
  };
}

test("a seat ticket claimed too late rejects the join with TICKET_EXPIRED", { skip: noNats }, async () => {
  const { p, room, owner, other } = await seatFirst();
  const q = await player(other, {
    WebSocket: delayedWebSocket(nodes[owner].wsUrl, TICKET_TTL_MS + 600),
  });
  try {
    await assert.rejects(q.join("arena"), (e) => {
      assert.ok(e instanceof RallyError);
      assert.equal(e.code, ErrorCode.TICKET_EXPIRED, String(e));
      return true;
    });
    assert.equal(q.room, null);
    assert.equal(q.serverUrl, nodes[owner].wsUrl, "on the owner now, seatless");
    const again = await q.join("arena");
    assert.equal(again.roomId, room.roomId, "joining again seats it");
  } finally {
    p.close();
    q.close();
  }
});

test("players queued on different nodes meet in one room; the redirected one follows", { skip: noNats }, async () => {
  const a = await player("a");
  const b = await player("b");
  try {
    const ma = a.waitForMatch(10_000);
    const mb = b.waitForMatch(10_000);
    await a.queue("tictactoe", { rating: 1500 });
    await b.queue("tictactoe", { rating: 1510 });
    const [ra, rb] = await Promise.all([ma, mb]);
    assert.equal(ra.roomId, rb.roomId, "one room for the match");
    assert.equal(nodeOf(a), nodeOf(b), "both on the node that holds it");
    assert.equal(a.queued || b.queued, false, "neither is queued any more");
    assert.deepEqual(a.room, ra);
    assert.deepEqual(b.room, rb);
  } finally {
    a.close();
    b.close();
  }
});

test("when the redirected node dies the client falls back to its address and joins again", { skip: noNats }, async () => {
  const { p, owner, other } = await seatFirst();
  const q = await player(other);
  try {
    await q.join("arena");
    assert.equal(q.serverUrl, nodes[owner].wsUrl);
    const failed = new Promise((r) => q.on("resumeFailed", r));
    await nodes[owner].kill();
    const err = await failed;
    assert.equal(err.code, ErrorCode.RESUME_FAILED);
    assert.equal(q.serverUrl, nodes[other].wsUrl, "back on the configured node");
    // The survivor may still list the dead node's room for one TTL: a join placed there
    // fails fast and lands on the survivor, so this is a plain join.
    const r = await q.join("arena");
    assert.equal(nodeOf(q), other);
    assert.ok(r.roomId > 0);
  } finally {
    p.close();
    q.close();
  }
});
