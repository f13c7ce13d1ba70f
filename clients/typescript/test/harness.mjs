// Test harness shared by the SDK tests and the Chromium end-to-end tests: a real
// `rally serve` on 127.0.0.1 ports picked at run time, and a TCP proxy the tests
// control to cut or stall connections like a network would.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
/** The server binary: `RALLY_BIN`, or the workspace's debug build. */
export const RALLY_BIN = process.env.RALLY_BIN ?? join(here, "../../../target/debug/rally");
export const ADMIN_TOKEN = "test-admin-token-0123456789";

/** A free TCP port on 127.0.0.1 (bound then released; the server binds it next). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts `rally serve` with its own SQLite file (or `databaseUrl`) and admin token;
 * resolves once `/readyz` answers 200 (within 20 s). `extra` are more flags.
 */
export async function startServer(extra = [], { databaseUrl } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "rally-ts-"));
  const [tcp, http, admin] = [await freePort(), await freePort(), await freePort()];
  const args = [
    "serve",
    "--tcp", `127.0.0.1:${tcp}`,
    "--http", `127.0.0.1:${http}`,
    "--admin", `127.0.0.1:${admin}`,
    "--database-url", databaseUrl ?? `sqlite://${join(dir, "rally.db")}`,
    "--admin-token", ADMIN_TOKEN,
    "--shutdown-grace-ms", "1000",
    "--log-level", "warn",
    ...extra,
  ];
  const child = spawn(RALLY_BIN, args, { stdio: ["ignore", "inherit", "inherit"] });
  let exited = false;
  child.once("exit", () => (exited = true));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (exited) throw new Error(`rally serve exited early (${RALLY_BIN})`);
    try {
      const r = await fetch(`http://127.0.0.1:${admin}/readyz`);
      if (r.status === 200) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error("rally serve not ready within 20 s");
    }
    await sleep(100);
  }
  return {
    http,
    admin,
    wsUrl: `ws://127.0.0.1:${http}/ws`,
    /** SIGKILL: the process dies as in a power cut (no shutdown message). */
    async kill() {
      if (!exited) {
        const done = new Promise((r) => child.once("exit", r));
        child.kill("SIGKILL");
        await done;
      }
    },
    async stop() {
      if (!exited) {
        const done = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 5000);
        await done;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A TCP proxy from a port of its own to `target`. `cut()` drops every open connection
 * at once (both sides reset), `stall(true)` stops forwarding server-to-client bytes
 * while keeping the connections open, `refuse(true)` accepts and drops new connections.
 */
export async function startProxy(targetPort) {
  const pairs = new Set();
  let stalled = false;
  let refusing = false;
  let accepted = 0;
  const server = net.createServer((client) => {
    accepted += 1;
    if (refusing) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(targetPort, "127.0.0.1");
    const pair = { client, upstream };
    pairs.add(pair);
    client.on("data", (d) => upstream.write(d));
    upstream.on("data", (d) => {
      if (!stalled) client.write(d);
    });
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end);
    upstream.on("close", end);
    client.on("error", end);
    upstream.on("error", end);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: server.address().port,
    get accepted() {
      return accepted;
    },
    cut() {
      for (const { client, upstream } of pairs) {
        client.resetAndDestroy();
        upstream.resetAndDestroy();
      }
      pairs.clear();
    },
    stall(on) {
      stalled = on;
    },
    refuse(on) {
      refusing = on;
    },
    close() {
      this.cut();
      return new Promise((r) => server.close(r));
    },
  };
}

/**
 * A nats-server with JetStream of the test's own, on a free port, from
 * `RALLY_NATS_SERVER` (`eval "$(scripts/nats.sh)"` sets it); null when that is not set.
 */
export async function startNats() {
  const bin = process.env.RALLY_NATS_SERVER;
  if (!bin) return null;
  const dir = mkdtempSync(join(tmpdir(), "rally-ts-nats-"));
  const port = await freePort();
  const child = spawn(bin, ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir], {
    stdio: "ignore",
  });
  let exited = false;
  child.once("exit", () => (exited = true));
  await until(
    () =>
      exited ||
      new Promise((r) => {
        const s = net.connect(port, "127.0.0.1");
        s.once("connect", () => (s.destroy(), r(true)));
        s.once("error", () => r(false));
      }),
    20_000,
    "nats-server to accept connections",
  );
  if (exited) throw new Error(`nats-server exited early (${bin})`);
  return {
    url: `nats://127.0.0.1:${port}`,
    async stop() {
      if (!exited) {
        const done = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 5000);
        await done;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Waits until `check()` is truthy, polling every 20 ms, failing after `ms`. */
export async function until(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** An in-memory `Storage` for `loginDevice()` in Node. */
export function memoryStorage() {
  const m = new Map();
  return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => void m.set(k, v) };
}
