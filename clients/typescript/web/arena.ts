/**
 * The arena demo page: every player of the room drawn on a canvas, moving smoothly
 * between the server's states (interpolation), steered with WASD or the arrow keys,
 * with the ping and the input-to-state latency shown.
 *
 * Interpolation: states arrive `tick_hz` times a second; drawing the last one as it is
 * would jump every 50 ms. The page draws each player one tick in the past, between the
 * two states that surround that moment, which costs one tick of display delay and shows
 * continuous motion even when a state arrives late.
 */
import { ErrorCode, type RallyClient, type State } from "../src/index.js";
import { connectAndLogin, setText, status } from "./common.js";

type Entry = [number, number, number, number];

interface Snapshot {
  at: number;
  players: Map<number, { x: number; y: number }>;
}

const FIELD = 1000;
const canvas = document.getElementById("field") as HTMLCanvasElement;
const again = document.getElementById("again") as HTMLButtonElement;
const ctx = canvas.getContext("2d") as CanvasRenderingContext2D;
const held = new Set<string>();
const snapshots: Snapshot[] = [];
const sentAt = new Map<number, number>();
let lastSeqSeen = 0;
let inputLatency: number | null = null;
let client: RallyClient | null = null;
let myId = 0;
let tickMs = 50;

/** What the end-to-end tests read: the newest positions, by player id. */
const view = {
  myId: 0,
  roomId: 0,
  positions: {} as Record<number, { x: number; y: number }>,
  connected: false,
  resumed: 0,
  kicked: "",
  states: 0,
};
(globalThis as unknown as { rallyDemo: typeof view }).rallyDemo = view;

const KEYS: Record<string, [number, number]> = {
  KeyW: [0, -1], ArrowUp: [0, -1],
  KeyS: [0, 1], ArrowDown: [0, 1],
  KeyA: [-1, 0], ArrowLeft: [-1, 0],
  KeyD: [1, 0], ArrowRight: [1, 0],
};

addEventListener("keydown", (e) => {
  if (KEYS[e.code]) {
    held.add(e.code);
    e.preventDefault();
  }
});
addEventListener("keyup", (e) => held.delete(e.code));
addEventListener("blur", () => held.clear());

function velocity(): [number, number] {
  let dx = 0;
  let dy = 0;
  for (const k of held) {
    const v = KEYS[k];
    if (v) {
      dx += v[0];
      dy += v[1];
    }
  }
  const len = Math.hypot(dx, dy);
  return len > 0 ? [dx / len, dy / len] : [0, 0];
}

function onState(s: State): void {
  view.states += 1;
  const list = Array.isArray(s.payload) ? (s.payload as Entry[]) : [];
  const players = new Map<number, { x: number; y: number }>();
  const positions: Record<number, { x: number; y: number }> = {};
  for (const e of list) {
    if (!Array.isArray(e) || e.length < 3) continue;
    const p = { x: Number(e[1]), y: Number(e[2]) };
    players.set(Number(e[0]), p);
    positions[Number(e[0])] = p;
  }
  view.positions = positions;
  snapshots.push({ at: performance.now(), players });
  while (snapshots.length > 8) snapshots.shift();
  setText("count", String(players.size));
  // Input-to-state latency (SPEC section 7): from sending seq k to the first state whose
  // last_seq >= k.
  if (s.lastSeq > lastSeqSeen) {
    const t = sentAt.get(s.lastSeq);
    if (t !== undefined) inputLatency = performance.now() - t;
    for (const k of sentAt.keys()) if (k <= s.lastSeq) sentAt.delete(k);
    lastSeqSeen = s.lastSeq;
  }
}

function positionsAt(t: number): Map<number, { x: number; y: number }> {
  if (snapshots.length === 0) return new Map();
  let i = snapshots.length - 1;
  while (i > 0 && snapshots[i - 1].at > t) i--;
  const b = snapshots[i];
  const a = i > 0 ? snapshots[i - 1] : b;
  if (a === b || b.at <= a.at) return b.players;
  const f = Math.min(1, Math.max(0, (t - a.at) / (b.at - a.at)));
  const out = new Map<number, { x: number; y: number }>();
  for (const [id, pb] of b.players) {
    const pa = a.players.get(id) ?? pb;
    out.set(id, { x: pa.x + (pb.x - pa.x) * f, y: pa.y + (pb.y - pa.y) * f });
  }
  return out;
}

function hue(id: number): number {
  return (id * 137.5) % 360;
}

function draw(): void {
  const w = canvas.width;
  const scale = w / FIELD;
  ctx.fillStyle = "#0a0c10";
  ctx.fillRect(0, 0, w, w);
  ctx.strokeStyle = "#1a2030";
  ctx.lineWidth = 1;
  for (let g = 100; g < FIELD; g += 100) {
    ctx.beginPath();
    ctx.moveTo(g * scale, 0);
    ctx.lineTo(g * scale, w);
    ctx.moveTo(0, g * scale);
    ctx.lineTo(w, g * scale);
    ctx.stroke();
  }
  const players = positionsAt(performance.now() - tickMs);
  for (const [id, p] of players) {
    const x = p.x * scale;
    const y = p.y * scale;
    ctx.beginPath();
    ctx.fillStyle = `hsl(${hue(id)} 80% 60%)`;
    ctx.arc(x, y, id === myId ? 11 : 9, 0, Math.PI * 2);
    ctx.fill();
    if (id === myId) {
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 2;
      ctx.stroke();
    }
    ctx.fillStyle = "#cfd6e4";
    ctx.font = "12px system-ui";
    ctx.fillText(id === myId ? `you (${id})` : `player ${id}`, x + 14, y + 4);
  }
  const ping = client?.latencyMs;
  setText("ping", ping == null ? "–" : `${ping} ms`);
  setText("lag", inputLatency == null ? "–" : `${inputLatency.toFixed(0)} ms`);
  requestAnimationFrame(draw);
}

async function start(): Promise<void> {
  try {
    client = await connectAndLogin("arena-demo");
  } catch (e) {
    status(`cannot connect: ${String(e)}`, true);
    return;
  }
  const c = client;
  tickMs = 1000 / c.welcome.tickHz;
  c.on("state", onState);
  c.on("resumed", (room) => {
    view.resumed += 1;
    view.connected = true;
    status(`resumed seat ${room.playerId} in room ${room.roomId}`);
  });
  c.on("disconnected", () => {
    view.connected = false;
    status("connection lost: reconnecting…", true);
  });
  c.on("resumeFailed", () => {
    status("seat lost: joining again…", true);
    void join(c);
  });
  c.on("error", (e) => {
    if (e.codeName === "KICKED") view.kicked = e.message;
    // An input already on its way when the room closed is answered NOT_IN_ROOM: expected,
    // and not worth hiding why the room closed.
    if (e.code === ErrorCode.NOT_IN_ROOM && !c.room) return;
    status(e.message, true);
  });
  c.on("roomClosed", (r) => {
    status(`room closed: ${r.reason}`, true);
    again.hidden = false;
  });
  again.addEventListener("click", () => {
    again.hidden = true;
    void join(c);
  });
  c.on("closed", (cl) => {
    view.connected = false;
    status(`disconnected${cl.error ? `: ${cl.error.message}` : ""}`, true);
  });
  void c.ping().catch(() => undefined);
  await join(c);
  // One input per tick: the room applies at most one per player per tick anyway.
  setInterval(() => {
    if (!c.connected || !c.room) return;
    try {
      const seq = c.sendInput(velocity());
      sentAt.set(seq, performance.now());
    } catch {
      // Reconnecting: inputs are dropped until the seat is back.
    }
  }, tickMs);
  requestAnimationFrame(draw);
}

async function join(c: RallyClient): Promise<void> {
  try {
    const room = await c.join("arena");
    // Another room's states must not be interpolated into this one's.
    snapshots.length = 0;
    myId = room.playerId;
    view.myId = room.playerId;
    view.roomId = room.roomId;
    view.connected = true;
    setText("me", `player ${room.playerId}`);
    setText("room", String(room.roomId));
    status("playing");
  } catch (e) {
    status(`cannot join: ${String(e)}`, true);
  }
}

void start();
