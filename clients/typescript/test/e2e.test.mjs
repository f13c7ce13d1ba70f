// End to end in headless Chromium (the Debian package, driven by playwright-core: no
// browser download) against a real `rally serve`: the demo pages and the dashboard.
// Screenshots go to target/e2e/ in the workspace.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

import { ADMIN_TOKEN, startProxy, startServer, until } from "./harness.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const shots = join(here, "../../../target/e2e");
mkdirSync(shots, { recursive: true });

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A new tab (its own context: its own sessionStorage, so its own player). */
async function tab(url) {
  const context = await browser.newContext({ viewport: { width: 960, height: 720 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e));
  await page.goto(url);
  return { page, context, errors };
}

const demo = (page) => page.evaluate(() => globalThis.rallyDemo);

async function playing(page) {
  return until(async () => {
    const d = await demo(page);
    return d && d.connected && d.myId > 0 && d.states > 0 ? d : null;
  }, 10_000, "the page to join and get states");
}

/** Holds `key` in the page long enough for the room to move the player. */
async function hold(page, key, ms) {
  await page.keyboard.down(key);
  await page.waitForTimeout(ms);
  await page.keyboard.up(key);
}

test("the demo page is served with its content types and cache headers", async () => {
  const base = `http://127.0.0.1:${server.http}`;
  const page = await fetch(`${base}/`);
  assert.equal(page.status, 200);
  assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
  assert.equal(page.headers.get("cache-control"), "no-cache");
  const etag = page.headers.get("etag");
  assert.match(etag, /^"[0-9a-f]{16}"$/);
  const again = await fetch(`${base}/`, { headers: { "If-None-Match": etag } });
  assert.equal(again.status, 304);
  const js = await fetch(`${base}/arena.js`);
  assert.equal(js.headers.get("content-type"), "text/javascript; charset=utf-8");
  assert.equal((await fetch(`${base}/tictactoe`)).status, 200);
  assert.equal((await fetch(`${base}/nope`)).status, 404);
});

test("two pages join one arena room and each sees the other move", async () => {
  const a = await tab(`http://127.0.0.1:${server.http}/`);
  const b = await tab(`http://127.0.0.1:${server.http}/`);
  try {
    const da = await playing(a.page);
    const db = await playing(b.page);
    assert.equal(da.roomId, db.roomId, "one room");
    assert.notEqual(da.myId, db.myId, "two players");
    await until(async () => (await demo(a.page)).positions[db.myId], 5000, "a to see b");
    const before = (await demo(a.page)).positions[db.myId];
    // b steers towards the centre with the keyboard; a sees it move.
    await hold(b.page, before.x < 500 ? "KeyD" : "KeyA", 600);
    const afterB = (await demo(a.page)).positions[db.myId];
    assert.ok(Math.abs(afterB.x - before.x) > 20, `b moved from ${before.x} to ${afterB.x}`);
    const beforeA = (await demo(b.page)).positions[da.myId];
    await hold(a.page, beforeA.y < 500 ? "ArrowDown" : "ArrowUp", 600);
    const afterA = (await demo(b.page)).positions[da.myId];
    assert.ok(Math.abs(afterA.y - beforeA.y) > 20, `a moved from ${beforeA.y} to ${afterA.y}`);
    // The latency readout shows numbers once pings and inputs have come back.
    await until(async () => /\d+ ms/.test(await a.page.textContent("#ping")), 5000, "the ping readout");
    await until(async () => /\d+ ms/.test(await a.page.textContent("#lag")), 5000, "the input latency readout");
    await a.page.screenshot({ path: join(shots, "arena-a.png") });
    await b.page.screenshot({ path: join(shots, "arena-b.png") });
    assert.deepEqual(a.errors, []);
    assert.deepEqual(b.errors, []);
  } finally {
    await a.context.close();
    await b.context.close();
  }
});

test("a page whose connection is cut resumes its seat", async () => {
  const proxy = await startProxy(server.http);
  const p = await tab(`http://127.0.0.1:${proxy.port}/`);
  try {
    const before = await playing(p.page);
    proxy.cut();
    await until(async () => (await demo(p.page)).resumed === 1, 10_000, "the resume");
    const after = await demo(p.page);
    assert.equal(after.myId, before.myId, "the same seat");
    assert.equal(after.roomId, before.roomId, "the same room");
    const states = after.states;
    await until(async () => (await demo(p.page)).states > states + 5, 5000, "states after the resume");
    await until(async () => /resumed seat/.test(await p.page.textContent("#status")), 5000, "the status line");
    await p.page.screenshot({ path: join(shots, "arena-resumed.png") });
    assert.deepEqual(p.errors, []);
  } finally {
    await p.context.close();
    await proxy.close();
  }
});

test("tic-tac-toe: two pages play a match to its end", async () => {
  const x = await tab(`http://127.0.0.1:${server.http}/tictactoe`);
  await until(async () => /waiting/.test(await x.page.textContent("#status")), 10_000, "x waiting");
  const o = await tab(`http://127.0.0.1:${server.http}/tictactoe`);
  try {
    await until(async () => (await x.page.textContent("#status")) === "your move", 10_000, "x to move");
    // X takes the top row while O plays the middle row.
    for (const [page, cell] of [[x, 0], [o, 3], [x, 1], [o, 4], [x, 2]]) {
      await until(async () => (await page.page.textContent("#status")) === "your move", 5000, `move ${cell}`);
      await page.page.click(`button[aria-label="cell ${cell}"]`);
    }
    await until(async () => (await o.page.textContent("#status")) === "X won", 5000, "the result");
    await x.page.screenshot({ path: join(shots, "tictactoe.png") });
    assert.equal(await x.page.textContent("#you"), "X");
  } finally {
    await x.context.close();
    await o.context.close();
  }
});

test("the dashboard needs the token, lists the room, and a kick reaches the player", async () => {
  const player = await tab(`http://127.0.0.1:${server.http}/`);
  const dash = await tab(`http://127.0.0.1:${server.admin}/dashboard`);
  try {
    const d = await playing(player.page);
    // No token, no data.
    assert.equal(await dash.page.isVisible("#data"), false);
    await dash.page.fill("#token", "wrong-token-0123456789");
    await dash.page.click("#login button[type=submit]");
    await until(async () => /wrong token/.test(await dash.page.textContent("#status")), 5000, "the refusal");
    assert.equal(await dash.page.isVisible("#data"), false);
    await dash.page.fill("#token", ADMIN_TOKEN);
    await dash.page.click("#login button[type=submit]");
    const row = `#rooms tr[data-id="${d.roomId}"]`;
    await dash.page.waitForSelector(row, { timeout: 5000 });
    assert.match(await dash.page.textContent(row), /arena/);
    // Let the charts gather a few points before the screenshot.
    await dash.page.waitForTimeout(3500);
    await dash.page.screenshot({ path: join(shots, "dashboard.png"), fullPage: true });
    // The token is kept for this tab only.
    const kept = await dash.page.evaluate(() => [sessionStorage.getItem("rally.adminToken"), localStorage.length]);
    assert.deepEqual(kept, [ADMIN_TOKEN, 0]);
    const session = await player.page.evaluate(() => globalThis.rallyDemo);
    const players = await (await fetch(`http://127.0.0.1:${server.admin}/admin/players`, {
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
    })).json();
    const me = players.players.find((p) => p.room && p.room.id === session.roomId && p.room.player_id === session.myId);
    assert.ok(me, "the player is listed");
    await dash.page.click(`#players tr[data-id="${me.id}"] button`);
    await until(async () => (await demo(player.page)).kicked !== "", 5000, "the kick to reach the player");
    await until(async () => /disconnected/.test(await player.page.textContent("#status")), 5000, "the page to stop");
    assert.equal((await demo(player.page)).connected, false);
    await player.page.screenshot({ path: join(shots, "kicked.png") });
  } finally {
    await player.context.close();
    await dash.context.close();
  }
});

// Last: a drain changes the server for every later test.
test("the dashboard closes a room and drains the server", async () => {
  const player = await tab(`http://127.0.0.1:${server.http}/`);
  const dash = await tab(`http://127.0.0.1:${server.admin}/dashboard`);
  try {
    const d = await playing(player.page);
    await dash.page.fill("#token", ADMIN_TOKEN);
    await dash.page.click("#login button[type=submit]");
    const row = `#rooms tr[data-id="${d.roomId}"]`;
    await dash.page.waitForSelector(row, { timeout: 5000 });
    await dash.page.click(`${row} button`);
    await until(async () => /room closed/.test(await player.page.textContent("#status")), 5000, "the player to see its room close");
    // The page offers to join again, and does.
    await player.page.click("#again");
    await until(async () => (await demo(player.page)).roomId !== d.roomId, 5000, "another room");
    await dash.page.waitForSelector(row, { state: "detached", timeout: 5000 });
    // Drain asks for confirmation first.
    dash.page.once("dialog", (dialog) => dialog.accept());
    await dash.page.click("#drain");
    await until(async () => {
      const r = await fetch(`http://127.0.0.1:${server.admin}/readyz`);
      return r.status === 503;
    }, 5000, "readyz to turn 503");
    assert.deepEqual(dash.errors, []);
  } finally {
    await player.context.close();
    await dash.context.close();
  }
});
