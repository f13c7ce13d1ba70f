/**
 * The operator dashboard (`/dashboard` on the admin listener). The page holds no secret
 * and no data: it asks for the admin token, keeps it in `sessionStorage` (this tab only,
 * gone when the tab closes), and sends it as the bearer token to `/admin/*`. Once a
 * second it reads the rooms, the players and `/metrics`, and charts the last two minutes.
 */
import uPlot from "uplot";

const TOKEN_KEY = "rally.adminToken";
const POINTS = 120;
const POLL_MS = 1000;

interface RoomRow {
  id: number;
  kind: string;
  player_count: number;
  max_players: number;
  tick: number;
  age_ms: number;
  tick_ms?: number | null;
  closing: boolean;
}

interface PlayerRow {
  id: number;
  name: string;
  account_id: number | null;
  transport: string;
  peer: string;
  connected_ms: number;
  room: { id: number; kind: string; player_id: number } | null;
}

const $ = (id: string) => document.getElementById(id) as HTMLElement;
const tokenInput = $("token") as HTMLInputElement;
let token = sessionStorage.getItem(TOKEN_KEY) ?? "";
let timer: ReturnType<typeof setInterval> | null = null;

function setStatus(text: string, bad = false): void {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("bad", bad);
}

async function api(path: string, method = "GET", body?: unknown): Promise<unknown> {
  const res = await fetch(path, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await res.json().catch(() => ({}))) as { error?: string; message?: string };
  if (!res.ok) {
    const err = new Error(json.message ?? `${res.status} ${res.statusText}`);
    (err as Error & { status: number }).status = res.status;
    throw err;
  }
  return json;
}

// ---- metrics -----------------------------------------------------------------------

/** Sums every series of each metric name in a Prometheus text scrape. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const v = Number(m[3]);
    if (!Number.isFinite(v)) continue;
    out.set(m[1], (out.get(m[1]) ?? 0) + v);
  }
  return out;
}

interface Chart {
  plot: uPlot;
  data: number[][];
}

function chart(el: string, series: string[], colors: string[]): Chart {
  const data: number[][] = [[], ...series.map(() => [])];
  const plot = new uPlot(
    {
      width: 320,
      height: 150,
      legend: { show: series.length > 1 },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.15)] } },
      axes: [
        { stroke: "#8a93a3", grid: { stroke: "#1a2030" } },
        { stroke: "#8a93a3", grid: { stroke: "#1a2030" }, size: 44 },
      ],
      series: [{}, ...series.map((label, i) => ({ label, stroke: colors[i], width: 2 }))],
    },
    data as uPlot.AlignedData,
    $(el),
  );
  return { plot, data };
}

let charts: Record<string, Chart> | null = null;
let prev: { at: number; m: Map<string, number> } | null = null;

function push(c: Chart, t: number, values: number[]): void {
  c.data[0].push(t);
  values.forEach((v, i) => c.data[i + 1].push(v));
  if (c.data[0].length > POINTS) for (const s of c.data) s.shift();
  c.plot.setData(c.data as uPlot.AlignedData);
}

function record(m: Map<string, number>): void {
  if (!charts) {
    charts = {
      players: chart("c-players", ["players"], ["#4fc3f7"]),
      connections: chart("c-connections", ["connections"], ["#81c784"]),
      tick: chart("c-tick", ["tick ms"], ["#ffb74d"]),
      lag: chart("c-lag", ["lag ms"], ["#e57373"]),
      msgs: chart("c-msgs", ["in", "out"], ["#ba68c8", "#4db6ac"]),
    };
  }
  const now = Date.now() / 1000;
  const get = (k: string) => m.get(k) ?? 0;
  push(charts.players, now, [get("rally_players")]);
  push(charts.connections, now, [get("rally_connections")]);
  push(charts.lag, now, [get("event_loop_lag_ms")]);
  if (prev) {
    const dt = Math.max(0.001, now - prev.at);
    const d = (k: string) => Math.max(0, get(k) - (prev?.m.get(k) ?? 0));
    const ticks = d("rally_tick_duration_seconds_count");
    push(charts.tick, now, [ticks > 0 ? (d("rally_tick_duration_seconds_sum") / ticks) * 1000 : 0]);
    push(charts.msgs, now, [d("rally_messages_in_total") / dt, d("rally_messages_out_total") / dt]);
  }
  prev = { at: now, m };
}

// ---- tables ------------------------------------------------------------------------

function age(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/**
 * Updates a table in place, one row per id: existing rows keep their elements (and so
 * their buttons) and only change their text, so a click is never lost to a re-render
 * between two polls; rows of ids no longer listed are removed.
 */
function sync<T>(
  table: string,
  items: T[],
  id: (item: T) => string,
  texts: (item: T) => string[],
  button: (item: T) => { label: string; run: () => Promise<unknown> } | null,
): void {
  const body = $(table).querySelector("tbody") as HTMLTableSectionElement;
  const keep = new Set<string>();
  for (const item of items) {
    const key = id(item);
    keep.add(key);
    let row = body.querySelector<HTMLTableRowElement>(`tr[data-id="${key}"]`);
    const values = texts(item);
    if (!row) {
      row = document.createElement("tr");
      row.dataset.id = key;
      for (let i = 0; i < values.length + 1; i++) row.appendChild(document.createElement("td"));
      body.appendChild(row);
    }
    values.forEach((v, i) => {
      const td = row.children[i] as HTMLTableCellElement;
      if (td.textContent !== v) td.textContent = v;
    });
    const last = row.children[values.length] as HTMLTableCellElement;
    const want = button(item);
    const have = last.querySelector("button");
    if (!want) {
      if (have || last.textContent === "") last.textContent = "closing";
    } else if (!have) {
      const b = document.createElement("button");
      b.textContent = want.label;
      b.className = "danger";
      b.addEventListener("click", () => {
        b.disabled = true;
        want
          .run()
          .then(() => poll())
          .catch((e: Error) => {
            b.disabled = false;
            setStatus(`${want.label} failed: ${e.message}`, true);
          });
      });
      last.replaceChildren(b);
    }
  }
  for (const row of Array.from(body.querySelectorAll<HTMLTableRowElement>("tr"))) {
    if (!keep.has(row.dataset.id ?? "")) row.remove();
  }
}

function renderRooms(rooms: RoomRow[]): void {
  sync(
    "rooms",
    rooms,
    (r) => String(r.id),
    (r) => [
      String(r.id),
      r.kind,
      `${r.player_count} / ${r.max_players}`,
      age(r.age_ms),
      String(r.tick),
      r.tick_ms == null ? "–" : `${r.tick_ms.toFixed(2)} ms`,
    ],
    (r) =>
      r.closing
        ? null
        : {
            label: "Close",
            run: () => api(`/admin/rooms/${r.id}/close`, "POST", { reason: "closed from the dashboard" }),
          },
  );
  $("rooms-count").textContent = `(${rooms.length})`;
}

function renderPlayers(players: PlayerRow[]): void {
  sync(
    "players",
    players,
    (p) => String(p.id),
    (p) => [
      String(p.id),
      p.name,
      p.account_id == null ? "–" : String(p.account_id),
      p.transport,
      p.peer,
      age(p.connected_ms),
      p.room ? `${p.room.kind} ${p.room.id} (seat ${p.room.player_id})` : "–",
    ],
    (p) => ({
      label: "Kick",
      run: () => api(`/admin/players/${p.id}/kick`, "POST", { reason: "kicked from the dashboard" }),
    }),
  );
  $("players-count").textContent = `(${players.length})`;
}

// ---- polling -----------------------------------------------------------------------

async function poll(): Promise<void> {
  try {
    const [rooms, players, metrics] = await Promise.all([
      api("/admin/rooms") as Promise<{ rooms: RoomRow[] }>,
      api("/admin/players") as Promise<{ players: PlayerRow[] }>,
      fetch("/metrics").then((r) => r.text()),
    ]);
    $("data").hidden = false;
    $("drain").hidden = false;
    $("forget").hidden = false;
    renderRooms(rooms.rooms);
    renderPlayers(players.players);
    record(parseMetrics(metrics));
    setStatus(`live · ${new Date().toLocaleTimeString()}`);
  } catch (e) {
    const status = (e as { status?: number }).status;
    if (status === 401 || status === 403) {
      stop();
      setStatus(status === 401 ? "wrong token" : "this server has no admin_token configured", true);
    } else {
      setStatus(`cannot reach the server: ${(e as Error).message}`, true);
    }
  }
}

function begin(): void {
  stop();
  if (!token) return;
  void poll();
  timer = setInterval(() => void poll(), POLL_MS);
}

function stop(): void {
  if (timer) clearInterval(timer);
  timer = null;
  $("data").hidden = true;
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  token = tokenInput.value.trim();
  tokenInput.value = "";
  sessionStorage.setItem(TOKEN_KEY, token);
  begin();
});
$("forget").addEventListener("click", () => {
  token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  stop();
  $("forget").hidden = true;
  $("drain").hidden = true;
  setStatus("no token: enter the server's admin_token");
});
$("drain").addEventListener("click", () => {
  if (!confirm("Drain: this server takes no new players. Continue?")) return;
  api("/admin/drain", "POST", { reason: "drained from the dashboard" })
    .then(() => setStatus("draining"))
    .catch((e: Error) => setStatus(`drain failed: ${e.message}`, true));
});

begin();
