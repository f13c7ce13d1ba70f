/**
 * The tic-tac-toe demo page: a 3x3 board of buttons; a click sends the cell index as
 * the input. The server sends a view per player only when something changed, and closes
 * the room when the match ends, so "Play again" joins a new room.
 */
import type { RallyClient } from "../src/index.js";
import { connectAndLogin, setText, status } from "./common.js";

interface View {
  you: string;
  board: string;
  turn: number;
  result: string;
}

const boardEl = document.getElementById("board") as HTMLDivElement;
const again = document.getElementById("again") as HTMLButtonElement;
const cells: HTMLButtonElement[] = [];
let client: RallyClient | null = null;
let myId = 0;
let last: View | null = null;

for (let i = 0; i < 9; i++) {
  const b = document.createElement("button");
  b.setAttribute("aria-label", `cell ${i}`);
  b.addEventListener("click", () => play(i));
  boardEl.appendChild(b);
  cells.push(b);
}

function play(cell: number): void {
  if (!client || !last || last.result !== "playing" || last.turn !== myId) return;
  try {
    client.sendInput(cell);
  } catch {
    status("not connected", true);
  }
}

const RESULTS: Record<string, string> = {
  waiting: "waiting for an opponent (open a second tab)",
  x_won: "X won",
  o_won: "O won",
  draw: "draw",
  forfeit: "your opponent left: you win",
};

function show(v: View): void {
  last = v;
  setText("you", v.you);
  for (let i = 0; i < 9; i++) {
    const ch = v.board[i] ?? ".";
    cells[i].textContent = ch === "." ? "" : ch;
    cells[i].disabled = ch !== "." || v.result !== "playing" || v.turn !== myId;
  }
  if (v.result === "playing") status(v.turn === myId ? "your move" : "their move");
  else status(RESULTS[v.result] ?? v.result);
}

async function join(c: RallyClient): Promise<void> {
  again.hidden = true;
  try {
    const room = await c.join("tictactoe");
    myId = room.playerId;
    status(RESULTS.waiting);
  } catch (e) {
    status(`cannot join: ${String(e)}`, true);
  }
}

async function start(): Promise<void> {
  try {
    client = await connectAndLogin("tictactoe-demo");
  } catch (e) {
    status(`cannot connect: ${String(e)}`, true);
    return;
  }
  const c = client;
  c.on("state", (s) => {
    const p = s.payload as Partial<View> | null;
    if (p && typeof p === "object" && typeof p.board === "string") show(p as View);
  });
  c.on("resumed", (room) => {
    myId = room.playerId;
  });
  c.on("roomClosed", () => {
    again.hidden = false;
  });
  c.on("latency", (ms) => setText("ping", `${ms} ms`));
  c.on("error", (e) => status(e.message, true));
  c.on("closed", (cl) => status(`disconnected${cl.error ? `: ${cl.error.message}` : ""}`, true));
  again.addEventListener("click", () => void join(c));
  void c.ping().catch(() => undefined);
  await join(c);
}

void start();
