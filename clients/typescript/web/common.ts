/**
 * What the demo pages share: the server's WebSocket URL, connecting with one identity
 * per tab, and the status line.
 */
import { RallyClient } from "../src/index.js";

/** `ws://` (or `wss://` behind a TLS proxy) on the host that served the page. */
export function serverUrl(): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

/**
 * Connects and logs in by device. The device id is kept in `sessionStorage`, not the
 * SDK's default `localStorage`: tabs share `localStorage`, an account holds one seat per
 * room, so two tabs with one id would take each other's seat; with `sessionStorage`
 * each tab is its own player, and a reload keeps its identity.
 */
export async function connectAndLogin(name: string): Promise<RallyClient> {
  const client = await RallyClient.connect({
    url: serverUrl(),
    clientName: name,
    storage: sessionStorage,
  });
  await client.loginDevice();
  return client;
}

/** Shows a line in the page's status element. */
export function status(text: string, bad = false): void {
  const el = document.getElementById("status");
  if (!el) return;
  el.textContent = text;
  el.classList.toggle("bad", bad);
}

/** Sets an element's text by id. */
export function setText(id: string, text: string): void {
  const el = document.getElementById(id);
  if (el) el.textContent = text;
}
