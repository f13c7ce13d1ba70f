/**
 * `RallyClient`: one player's connection to a Rally server over WebSocket, with the
 * abilities of the Rust SDK (`crates/rally-client`): log in, join a room kind, send
 * inputs, chat, player data and profiles, request timeouts, and after a dropped
 * connection a reconnect that takes the seat back with the resume token (SPEC section 2
 * retry policy; protocol section 11a). In a cluster (protocol section 11b) the joins
 * follow a `redirect` by themselves: a new WebSocket to the node holding the seat,
 * logged in with the session token, where `claim_seat` takes it.
 *
 * It runs in browsers (the global `WebSocket`) and in Node 20 (pass a `WebSocket`
 * class, e.g. the `ws` package's, as `options.WebSocket`).
 */

import { decode, encode } from "@msgpack/msgpack";

import {
  C,
  ErrorCode,
  FINAL_CODES,
  PROTOCOL_VERSION,
  RallyError,
  S,
  SUBPROTOCOL,
  errorFromWire,
} from "./protocol.js";

/** The subset of the WHATWG `WebSocket` the SDK uses (browsers' and `ws`'s). */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** A `WebSocket` constructor. */
export type WebSocketCtor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Where the device id is kept: `localStorage`, `sessionStorage` or anything alike. */
export interface KeyValueStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** SPEC section 2: how connects and reconnects are retried. */
export interface RetryPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** The wait before the second attempt; each later wait doubles it. */
  baseDelayMs: number;
  /** The largest jitter added to a wait, as a fraction of it. */
  jitter: number;
}

/** SPEC section 2: 3 attempts, 100 ms then 200 ms, plus up to 25% jitter. */
export const SPEC_RETRY: RetryPolicy = { maxAttempts: 3, baseDelayMs: 100, jitter: 0.25 };

/** How to reach the server and how to behave. */
export interface ClientOptions {
  /** The WebSocket endpoint, e.g. `ws://localhost:8080/ws`. */
  url: string;
  /** The `WebSocket` class; default: the global one (browsers). */
  WebSocket?: WebSocketCtor;
  /** `hello`'s client name (for the server's logs). */
  clientName?: string;
  /**
   * Bound on connecting and on each request, in milliseconds; default: the server's
   * `timeout_ms` from `welcome` (and 10 s before it arrives).
   */
  timeoutMs?: number;
  /** Retry policy for connect and reconnect; default `SPEC_RETRY`. */
  retry?: RetryPolicy;
  /** Reconnect and resume the seat after a dropped connection (default true). */
  reconnect?: boolean;
  /** Where `loginDevice()` keeps its device id; default `localStorage` when present. */
  storage?: KeyValueStorage | null;
  /** A session token from an earlier login, sent in `hello` (section 5a). */
  sessionToken?: string;
  /** Send `ping` every this many ms to stay within `timeout_ms`; default a third of it. */
  pingIntervalMs?: number;
}

/** `welcome` (section 6). */
export interface Welcome {
  sessionId: number;
  tickHz: number;
  maxMessageBytes: number;
  timeoutMs: number;
  queueCapacity: number;
  reconnectGraceMs: number;
  /** The account a session token logged in as, 0 when none. */
  accountId: number;
}

/** `session`: a successful login (section 5a). */
export interface Session {
  accountId: number;
  token: string;
  expiresAtMs: number;
  displayName: string;
}

/** The room this client sits in (`joined`). */
export interface Room {
  roomId: number;
  playerId: number;
  kind: string;
  maxPlayers: number;
  /** The room's share code (6 characters), "" from a server before revision 2. */
  code: string;
  /** The player's team, from 1; 0 when the kind has no teams. */
  team: number;
}

/** Room options: a map the game reads when it creates the room (e.g. `{ mode: "speed" }`). */
export type RoomOptions = Record<string, unknown>;

/** One open, public room of a listing (`rooms`). */
export interface RoomListing {
  roomId: number;
  kind: string;
  code: string;
  players: number;
  maxPlayers: number;
  /** What the game set, decoded (null when it set nothing). */
  metadata: unknown;
  ageMs: number;
  locked: boolean;
}

/** A page of `listRooms`: `total` rooms match, `rooms` is this page of them. */
export interface RoomPage {
  total: number;
  rooms: RoomListing[];
}

/** How to enter the matchmaking queue. */
export interface QueueOptions {
  /** Room options; the kind's filter keys decide who can meet. */
  options?: RoomOptions;
  /** The player's rating: players are matched with close ratings first. */
  rating?: number;
  /** Queue every player of this client's room as one party (same match, same team). */
  party?: boolean;
}

/** A room's state after one tick. `payload` is the game's value, decoded. */
export interface State {
  tick: number;
  lastSeq: number;
  payload: unknown;
}

/** What `spectate` or `spectateRecording` watches (protocol revision 3). */
export interface Spectating {
  /** The room watched (for a recording, the room that played it). */
  roomId: number;
  kind: string;
  tickHz: number;
}

/** A state of the watched room or recording: what its players got as the room state. */
export interface SpectatorState {
  roomId: number;
  tick: number;
  payload: unknown;
}

/** A chat line said in the room. */
export interface ChatLine {
  roomId: number;
  playerId: number;
  name: string;
  text: string;
}

/** A player-data entry (`data`): `value` is the parsed JSON, null when there is none. */
export interface DataEntry {
  owner: number;
  key: string;
  value: unknown;
  version: number;
  public: boolean;
}

/** An account's profile and stats. */
export interface Profile {
  accountId: number;
  displayName: string;
  sessions: number;
  playMs: number;
  gamesPlayed: number;
}

/** Why the client stopped for good. */
export interface Closed {
  /** The error that ended it, if any (`KICKED`, a failed reconnect, ...). */
  error?: RallyError;
  /** True when `close()` was called. */
  byClient: boolean;
}

/** Events and their payloads. */
export interface ClientEvents {
  state: State;
  joined: Room;
  resumed: Room;
  resumeFailed: RallyError;
  /** The matchmaking queue placed this player: `joined` with req 0 while queued (in a
   * cluster, `redirect` with req 0, which the client follows first). */
  matched: Room;
  /** The queue gave up (`MATCH_TIMEOUT`); the player is no longer queued. */
  matchTimeout: RallyError;
  /** The server moved the player out of its room (a party going to its match). */
  left: { roomId: number };
  roomClosed: { roomId: number; reason: string };
  /** A state of the room or recording this client watches; ends with `roomClosed`. */
  spectatorState: SpectatorState;
  chat: ChatLine;
  /** An error the server sent unprompted that leaves the connection open. */
  error: RallyError;
  disconnected: RallyError;
  reconnected: Welcome;
  shutdown: { reason: string; reconnectAfterMs: number };
  /**
   * A ping's round trip, in milliseconds. While seated in a room ticking at 20 Hz or
   * more it includes up to one tick: the server reads the ping at the room's next tick
   * (docs/protocol.md section 8).
   */
  latency: number;
  closed: Closed;
}

type Listener<T> = (value: T) => void;

interface Pending {
  /** The body, until it is sent (queued behind `MAX_IN_FLIGHT` requests). */
  body: unknown[] | null;
  resolve: (m: unknown[]) => void;
  reject: (e: RallyError) => void;
  timer: ReturnType<typeof setTimeout>;
}

const DEVICE_KEY = "rally.deviceId";
/**
 * Requests the server lets wait for replies at once (protocol section 7); the SDK
 * queues the rest itself instead of getting them refused with `RATE_LIMITED`.
 */
const MAX_IN_FLIGHT = 8;
const PRE_WELCOME_TIMEOUT_MS = 10_000;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function spectatingFrom(m: unknown[]): Spectating {
  return { roomId: num(m[2]), kind: String(m[3]), tickHz: num(m[4]) };
}

function num(v: unknown): number {
  return typeof v === "bigint" ? Number(v) : Number(v ?? 0);
}

function randomId(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (c?.randomUUID) return c.randomUUID();
  // Old browsers: 128 random bits from Math.random are enough for a device id of a demo.
  let s = "";
  for (let i = 0; i < 32; i++) s += Math.floor(Math.random() * 16).toString(16);
  return s;
}

function defaultStorage(): KeyValueStorage | null {
  try {
    const ls = (globalThis as { localStorage?: KeyValueStorage }).localStorage;
    return ls ?? null;
  } catch {
    // Storage access can throw (privacy settings, sandboxed frames).
    return null;
  }
}

/**
 * One connection (and its reconnections) to a Rally server.
 *
 * ```ts
 * const client = await RallyClient.connect({ url: "ws://localhost:8080/ws" });
 * await client.loginDevice();
 * client.on("state", (s) => draw(s.payload));
 * await client.join("arena");
 * client.sendInput([1, 0]);
 * ```
 */
export class RallyClient {
  private readonly opts: ClientOptions;
  private readonly WS: WebSocketCtor;
  private ws: WebSocketLike | null = null;
  /** Where the next connection goes: `options.url`, or the node a redirect moved to. */
  private url: string;
  private listeners = new Map<keyof ClientEvents, Set<Listener<never>>>();
  private pending = new Map<number, Pending>();
  private inFlight = 0;
  private nextReq = 1;
  private seq = 0;
  private pingNonce = 0;
  private pings = new Map<number, number>();
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private resumeToken = "";
  private sessionToken: string | undefined;
  private lastFatal: RallyError | undefined;
  private shuttingDown = false;
  private closedForGood = false;
  private reconnecting = false;
  private _welcome!: Welcome;
  private _room: Room | null = null;
  private _session: Session | null = null;
  private _latencyMs: number | null = null;
  private _queued = false;

  private constructor(opts: ClientOptions) {
    this.opts = opts;
    const ws = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
    if (!ws) throw new Error("no WebSocket: pass options.WebSocket (e.g. the ws package)");
    this.WS = ws;
    this.url = opts.url;
    this.sessionToken = opts.sessionToken;
  }

  /** Connects (retried per the retry policy on timeouts and resets) and waits for `welcome`. */
  static async connect(opts: ClientOptions): Promise<RallyClient> {
    const client = new RallyClient(opts);
    await client.withRetry(() => client.open(false));
    return client;
  }

  /** The last `welcome`. */
  get welcome(): Welcome {
    return this._welcome;
  }

  /**
   * The WebSocket URL this client is connected (or reconnecting) to: `options.url`, or
   * after a cluster redirect the node holding the seat.
   */
  get serverUrl(): string {
    return this.url;
  }

  /** The room this client sits in, or null. */
  get room(): Room | null {
    return this._room;
  }

  /** The last login's session, or null. */
  get session(): Session | null {
    return this._session;
  }

  /** Whether this client waits in the matchmaking queue (between `queue` and its match). */
  get queued(): boolean {
    return this._queued;
  }

  /**
   * The last ping's round trip in ms, or null before the first pong. While seated in a
   * room ticking at 20 Hz or more it includes up to one tick (see `latency`).
   */
  get latencyMs(): number | null {
    return this._latencyMs;
  }

  /** Whether a connection is open now (false while reconnecting and after close). */
  get connected(): boolean {
    return this.ws !== null && !this.reconnecting && !this.closedForGood;
  }

  /** Subscribes to an event; returns a function that unsubscribes. */
  on<K extends keyof ClientEvents>(event: K, fn: Listener<ClientEvents[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn as Listener<never>);
    return () => set.delete(fn as Listener<never>);
  }

  private emit<K extends keyof ClientEvents>(event: K, value: ClientEvents[K]): void {
    for (const fn of this.listeners.get(event) ?? []) {
      try {
        (fn as Listener<ClientEvents[K]>)(value);
      } catch (e) {
        // A listener's bug must not break the connection's message loop.
        console.error(`rally-client: a "${event}" listener threw`, e);
      }
    }
  }

  /**
   * Logs in by device: with `deviceId`, or the id kept in `options.storage` (created
   * and stored at the first call). Whoever has the id is that player.
   */
  async loginDevice(deviceId?: string): Promise<Session> {
    let id = deviceId;
    if (!id) {
      const storage = this.opts.storage === undefined ? defaultStorage() : this.opts.storage;
      id = storage?.getItem(DEVICE_KEY) ?? undefined;
      if (!id) {
        id = randomId();
        storage?.setItem(DEVICE_KEY, id);
      }
    }
    return this.login("device", id);
  }

  /** Logs in with `provider` (`"device"` or `"custom"`) and a credential (section 5a). */
  async login(provider: string, credential: string): Promise<Session> {
    const m = await this.request(C.LOGIN, [provider, credential]);
    const session: Session = {
      accountId: num(m[2]),
      token: String(m[3]),
      expiresAtMs: num(m[4]),
      displayName: String(m[5]),
    };
    this._session = session;
    // Kept for reconnecting: with logins required a resume needs the account's token.
    this.sessionToken = session.token;
    return session;
  }

  /**
   * Joins a room of `kind` (join-or-create). In a cluster the seat may be on another
   * node: the client then moves there (see `serverUrl`) and resolves with that room; a
   * seat ticket the node refuses rejects with its code (`TICKET_EXPIRED`, ...).
   */
  async join(kind: string): Promise<Room> {
    return this.seat(C.JOIN, [kind]);
  }

  /**
   * Creates a room of `kind` with `options` and sits in it; `isPrivate` keeps it out of
   * listings and join-or-create (reach it by `room.code` or `room.roomId`).
   */
  async create(kind: string, options: RoomOptions = {}, isPrivate = false): Promise<Room> {
    return this.seat(C.CREATE, [kind, options, isPrivate]);
  }

  /** Joins an open public room of `kind` whose options match on the kind's filter keys, else creates one. */
  async joinOrCreate(kind: string, options: RoomOptions = {}): Promise<Room> {
    return this.seat(C.JOIN_OR_CREATE, [kind, options]);
  }

  /** Joins the room with this id (a private room too). */
  async joinById(roomId: number): Promise<Room> {
    return this.seat(C.JOIN_BY_ID, [roomId]);
  }

  /** Joins the room with this share code (a private room too). */
  async joinByCode(code: string): Promise<Room> {
    return this.seat(C.JOIN_BY_CODE, [code]);
  }

  /** A page of the open public rooms of `kind` whose options match `filter`. */
  async listRooms(kind: string, filter: RoomOptions = {}, offset = 0, limit = 50): Promise<RoomPage> {
    const m = await this.request(C.LIST_ROOMS, [kind, filter, offset, limit]);
    const rooms = Array.isArray(m[3]) ? (m[3] as unknown[][]) : [];
    return {
      total: num(m[2]),
      rooms: rooms.map((r) => ({
        roomId: num(r[0]),
        kind: String(r[1]),
        code: String(r[2]),
        players: num(r[3]),
        maxPlayers: num(r[4]),
        metadata: r[5] ?? null,
        ageMs: num(r[6]),
        locked: Boolean(r[7]),
      })),
    };
  }

  /**
   * Enters the matchmaking queue for `kind`; resolves once queued. The match arrives
   * later as the `matched` event (or `matchTimeout`): see `waitForMatch`.
   */
  async queue(kind: string, q: QueueOptions = {}): Promise<void> {
    // Set before the reply: the match's `joined` may be read in the same chunk as `ok`,
    // before this function resumes.
    const was = this._queued;
    this._queued = true;
    try {
      await this.request(C.QUEUE, [kind, q.options ?? {}, q.rating ?? 0, q.party ?? false]);
    } catch (e) {
      // ALREADY_QUEUED: still queued from before; any other refusal: not queued.
      this._queued = was && e instanceof RallyError && e.code === ErrorCode.ALREADY_QUEUED;
      throw e;
    }
  }

  /** Leaves the matchmaking queue (`NOT_IN_QUEUE` if this client is not queued). */
  async leaveQueue(): Promise<void> {
    await this.request(C.LEAVE_QUEUE, []);
    this._queued = false;
  }

  /**
   * Resolves with the room of the next match, rejects with the `MATCH_TIMEOUT` error,
   * or with `TIMEOUT` after `timeoutMs` (default: wait as long as the queue does).
   * Call it before or after `queue`: it waits for the next event either way.
   */
  waitForMatch(timeoutMs?: number): Promise<Room> {
    return new Promise((resolve, reject) => {
      const done = () => {
        offMatch();
        offTimeout();
        offClosed();
        if (timer) clearTimeout(timer);
      };
      const offMatch = this.on("matched", (room) => {
        done();
        resolve(room);
      });
      const offTimeout = this.on("matchTimeout", (err) => {
        done();
        reject(err);
      });
      const offClosed = this.on("closed", (c) => {
        done();
        reject(c.error ?? new RallyError(0, "the client is closed"));
      });
      const timer =
        timeoutMs === undefined
          ? null
          : setTimeout(() => {
              done();
              reject(new RallyError(ErrorCode.TIMEOUT, "no match within the wait"));
            }, timeoutMs);
    });
  }

  /**
   * Watches room `roomId` without a seat: its states arrive as `spectatorState` events
   * until `roomClosed` or `stopSpectating()`. Replaces whatever was watched before.
   */
  async spectate(roomId: number): Promise<Spectating> {
    return spectatingFrom(await this.request(C.SPECTATE, [roomId]));
  }

  /** Watches the room with share `code` (public or private) without a seat, as `spectate`. */
  async spectateCode(code: string): Promise<Spectating> {
    return spectatingFrom(await this.request(C.SPECTATE, [0, code]));
  }

  /** Watches a finished match from its recording (`file` as the admin listing names it). */
  async spectateRecording(file: string): Promise<Spectating> {
    return spectatingFrom(await this.request(C.SPECTATE_RECORDING, [file]));
  }

  /** Stops watching; rejects with `NOT_SPECTATING` when nothing was watched. */
  async stopSpectating(): Promise<void> {
    await this.request(C.STOP_SPECTATING, []);
  }

  /** Leaves the current room; resolves with its id. */
  async leave(): Promise<number> {
    const m = await this.request(C.LEAVE, []);
    this._room = null;
    return num(m[2]);
  }

  /**
   * Sends one game input with the next `seq`, and returns that seq. Throws when not
   * connected (while reconnecting inputs are dropped by the caller's choice, not queued).
   */
  sendInput(payload: unknown): number {
    if (!this.connected || !this.ws) throw new RallyError(0, "not connected");
    this.seq += 1;
    this.send([C.INPUT, this.seq, payload]);
    return this.seq;
  }

  /** Says `text` in the current room. */
  async chat(text: string): Promise<void> {
    await this.request(C.CHAT, [text]);
  }

  /** Reads a player-data entry (`owner` 0: one's own). Missing: value null, version 0. */
  async getData(key: string, owner = 0): Promise<DataEntry> {
    const m = await this.request(C.GET_DATA, [owner, key]);
    return {
      owner: num(m[2]),
      key: String(m[3]),
      value: m[4] == null ? null : JSON.parse(String(m[4])),
      version: num(m[5]),
      public: Boolean(m[6]),
    };
  }

  /**
   * Writes one of one's own entries at `expectedVersion` (0: must not exist yet); resolves
   * with the new version. A version mismatch rejects with a `ConflictError`.
   */
  async putData(
    key: string,
    value: unknown,
    expectedVersion: number,
    isPublic = false,
  ): Promise<number> {
    const m = await this.request(C.PUT_DATA, [key, JSON.stringify(value), expectedVersion, isPublic]);
    return num(m[3]);
  }

  /** Deletes one of one's own entries at `expectedVersion`. */
  async deleteData(key: string, expectedVersion: number): Promise<void> {
    await this.request(C.DELETE_DATA, [key, expectedVersion]);
  }

  /** An account's profile (0: one's own). */
  async getProfile(accountId = 0): Promise<Profile> {
    const m = await this.request(C.GET_PROFILE, [accountId]);
    return {
      accountId: num(m[2]),
      displayName: String(m[3]),
      sessions: num(m[4]),
      playMs: num(m[5]),
      gamesPlayed: num(m[6]),
    };
  }

  /** Sets one's display name. */
  async setName(name: string): Promise<void> {
    await this.request(C.SET_NAME, [name]);
  }

  /**
   * Pings the server; resolves with the round trip in ms (also emitted as `latency`).
   * While seated in a room ticking at 20 Hz or more the server reads the ping at the
   * room's next tick, so the figure includes up to one tick (50 ms at 20 Hz).
   */
  ping(): Promise<number> {
    return new Promise((resolve, reject) => {
      const nonce = ++this.pingNonce;
      const timer = setTimeout(() => {
        off();
        reject(new RallyError(ErrorCode.TIMEOUT, "no pong", 0));
      }, this.requestTimeout());
      const off = this.on("latency", (ms) => {
        if (!this.pings.has(nonce)) {
          clearTimeout(timer);
          off();
          resolve(ms);
        }
      });
      this.sendPing(nonce);
    });
  }

  /** Closes the connection for good (a WebSocket close frame: the seat is freed). */
  close(): void {
    if (this.closedForGood) return;
    this.finish({ byClient: true });
  }

  // ---- internals ----------------------------------------------------------------

  private requestTimeout(): number {
    return this.opts.timeoutMs ?? this._welcome?.timeoutMs ?? PRE_WELCOME_TIMEOUT_MS;
  }

  private send(body: unknown[]): void {
    this.ws?.send(encode(body));
  }

  private sendPing(nonce: number): void {
    if (!this.connected) return;
    this.pings.set(nonce, Date.now());
    this.send([C.PING, nonce]);
  }

  private request(type: number, fields: unknown[]): Promise<unknown[]> {
    return new Promise((resolve, reject) => {
      if (this.closedForGood) return reject(new RallyError(0, "the client is closed"));
      if (!this.connected) return reject(new RallyError(0, "not connected (reconnecting)"));
      // Request ids are u32 and never 0; wrapping after 4 billion requests is harmless.
      const req = this.nextReq;
      this.nextReq = this.nextReq >= 0xffffffff ? 1 : this.nextReq + 1;
      // The bound covers the wait in the SDK's own queue too: it is the caller's wait.
      const timer = setTimeout(() => {
        const p = this.pending.get(req);
        this.pending.delete(req);
        if (p && p.body === null) this.settled();
        reject(new RallyError(ErrorCode.TIMEOUT, "no reply within the request timeout", req));
      }, this.requestTimeout());
      this.pending.set(req, { body: [type, req, ...fields], resolve, reject, timer });
      this.pump();
    });
  }

  /** Sends queued requests while fewer than `MAX_IN_FLIGHT` wait for replies. */
  private pump(): void {
    // Map iteration follows insertion order, so requests go out in the order made.
    for (const p of this.pending.values()) {
      if (this.inFlight >= MAX_IN_FLIGHT) return;
      if (p.body === null) continue;
      this.send(p.body);
      p.body = null;
      this.inFlight += 1;
    }
  }

  /** A sent request got its reply (or gave up on it). */
  private settled(): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
    this.pump();
  }

  /** Sends one of the joins; resolves with its room, following a `redirect` (section 11b). */
  private async seat(type: number, fields: unknown[]): Promise<Room> {
    const m = await this.request(type, fields);
    if (m[0] !== S.REDIRECT) return this.sit(m);
    return this.follow(m);
  }

  /**
   * Takes the seat of a `redirect` `[84, req, node, tcp, ws, ticket, room_id]`: opens a
   * WebSocket to the node's `ws` address (same scheme as `options.url`; SPEC retries),
   * says `hello` with the session token, closes the first connection (it holds no seat)
   * and sends `claim_seat`, once: a ticket works once, so a retry could only be refused.
   */
  private async follow(m: unknown[]): Promise<Room> {
    const addr = m[4];
    const ticket = m[5];
    if (typeof addr !== "string" || typeof ticket !== "string" || addr === "") {
      throw new RallyError(ErrorCode.BAD_MESSAGE, "malformed redirect");
    }
    const scheme = new URL(this.opts.url).protocol === "wss:" ? "wss:" : "ws:";
    const old = this.ws;
    const back = this.url;
    this.url = `${scheme}//${addr}/ws`;
    try {
      await this.withRetry(() => this.open(false));
    } catch (e) {
      // The first connection is still open: stay there.
      this.url = back;
      throw e;
    }
    // Replies to requests sent on the first connection will not come on this one.
    this.abandonSent(new RallyError(0, "the connection moved to another node"));
    try {
      old?.close(1000);
    } catch {
      // Already closed.
    }
    return this.sit(await this.request(C.CLAIM_SEAT, [ticket]));
  }

  private abandonSent(err: RallyError): void {
    for (const [req, p] of this.pending) {
      if (p.body !== null) continue;
      this.pending.delete(req);
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.inFlight = 0;
    this.pump();
  }

  private sit(m: unknown[]): Room {
    const room: Room = {
      roomId: num(m[2]),
      playerId: num(m[3]),
      kind: String(m[4]),
      maxPlayers: num(m[5]),
      code: m.length > 6 ? String(m[6]) : "",
      team: m.length > 7 ? num(m[7]) : 0,
    };
    this._room = room;
    return room;
  }

  private async withRetry(attempt: () => Promise<void>): Promise<void> {
    const policy = this.opts.retry ?? SPEC_RETRY;
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (e) {
        const err = e instanceof RallyError ? e : new RallyError(0, String(e));
        if (!err.retryable || n >= Math.max(1, policy.maxAttempts)) throw err;
        const wait = policy.baseDelayMs * 2 ** (n - 1) * (1 + policy.jitter * Math.random());
        await sleep(wait);
      }
    }
  }

  /**
   * Opens a WebSocket, sends `hello` (with the resume token when `resume`) and waits for
   * `welcome`, bounded by the request timeout.
   */
  private open(resume: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      let settled = false;
      let ws: WebSocketLike;
      const fail = (err: RallyError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        try {
          ws.close();
        } catch {
          // Already closed.
        }
        reject(err);
      };
      const timer = setTimeout(
        () => fail(new RallyError(ErrorCode.TIMEOUT, "no welcome within the timeout")),
        this.opts.timeoutMs ?? PRE_WELCOME_TIMEOUT_MS,
      );
      try {
        ws = new this.WS(this.url, [SUBPROTOCOL]);
      } catch (e) {
        clearTimeout(timer);
        return reject(new RallyError(0, `cannot open ${this.url}: ${String(e)}`));
      }
      ws.binaryType = "arraybuffer";
      ws.onopen = () => {
        const hello: unknown[] = [C.HELLO, PROTOCOL_VERSION, this.opts.clientName ?? "rally-ts"];
        if (resume || this.sessionToken) hello.push(resume ? this.resumeToken || null : null);
        if (this.sessionToken) hello.push(this.sessionToken);
        ws.send(encode(hello));
      };
      ws.onerror = () => {
        // A failed connect; `onclose` follows with the details browsers allow.
      };
      ws.onclose = (ev) => {
        if (!settled) {
          const final = this.lastFatal;
          fail(final ?? new RallyError(0, `connection closed (${ev.code}) before welcome`));
        } else if (this.ws === ws) {
          this.dropped(ev.code);
        }
      };
      ws.onmessage = (ev) => {
        let m: unknown[];
        try {
          m = decode(new Uint8Array(ev.data as ArrayBuffer)) as unknown[];
        } catch {
          return; // Not MessagePack: nothing a client can act on.
        }
        if (!Array.isArray(m)) return;
        if (!settled) {
          if (m[0] === S.WELCOME) {
            settled = true;
            clearTimeout(timer);
            this.welcomed(ws, m);
            if (resume || this.reconnecting) {
              // Emitted here, not after the promise settles: a resume's `joined` may
              // come in the same read as `welcome`, and `reconnected` must precede it.
              this.reconnecting = false;
              this.emit("reconnected", this._welcome);
            }
            resolve();
          } else if (m[0] === S.ERROR) {
            const err = errorFromWire(m);
            this.lastFatal = err;
            // Refused before welcome (SERVER_FULL, DRAINING, RATE_LIMITED): final.
            settled = true;
            clearTimeout(timer);
            reject(err);
          }
          return;
        }
        if (this.ws === ws) this.dispatch(m);
      };
    });
  }

  private welcomed(ws: WebSocketLike, m: unknown[]): void {
    this.ws = ws;
    this.lastFatal = undefined;
    this._welcome = {
      sessionId: num(m[2]),
      tickHz: num(m[3]),
      maxMessageBytes: num(m[4]),
      timeoutMs: num(m[5]),
      queueCapacity: num(m[6]),
      reconnectGraceMs: num(m[8]),
      accountId: num(m[9]),
    };
    this.resumeToken = String(m[7] ?? "");
    if (this.pingTimer) clearInterval(this.pingTimer);
    const every = this.opts.pingIntervalMs ?? Math.max(100, Math.floor(this._welcome.timeoutMs / 3));
    this.pingTimer = setInterval(() => this.sendPing(++this.pingNonce), every);
  }

  private dispatch(m: unknown[]): void {
    switch (m[0]) {
      case S.STATE:
        this.emit("state", { tick: num(m[1]), lastSeq: num(m[2]), payload: m[3] });
        return;
      case S.JOINED: {
        const req = num(m[1]);
        const room = this.sit(m);
        if (req === 0 && this._queued) {
          // Unprompted while queued: the queue's match (a resume comes right after
          // `welcome`, and a reconnect leaves the queue: the server forgets the session).
          this._queued = false;
          this.emit("matched", room);
          this.emit("joined", room);
        } else if (req === 0) {
          this.emit("resumed", room);
        } else {
          this.reply(req, m);
          this.emit("joined", room);
        }
        return;
      }
      case S.SPECTATOR_STATE:
        this.emit("spectatorState", { roomId: num(m[1]), tick: num(m[2]), payload: m[3] });
        return;
      case S.SPECTATING:
      case S.LEFT:
        if (num(m[1]) === 0) {
          // Unprompted: the server moved this player out, a party going to its match;
          // the match's `joined` (req 0) follows.
          this._room = null;
          this._queued = true;
          this.emit("left", { roomId: num(m[2]) });
          return;
        }
        this.reply(num(m[1]), m);
        return;
      case S.REDIRECT:
        if (num(m[1]) === 0 && this._queued) {
          // Unprompted while queued: the queue's match is on another node (revision 4).
          // Followed like a join's redirect; the claim's own `joined` comes first, then
          // `matched`.
          this.follow(m).then(
            (room) => {
              this._queued = false;
              this.emit("matched", room);
            },
            (e: unknown) => {
              this._queued = false;
              this.emit("error", e instanceof RallyError ? e : new RallyError(0, String(e)));
            },
          );
          return;
        }
        this.reply(num(m[1]), m);
        return;
      case S.ROOMS:
      case S.OK:
      case S.SESSION:
      case S.DATA:
      case S.WRITTEN:
      case S.PROFILE:
        this.reply(num(m[1]), m);
        return;
      case S.PONG: {
        const nonce = num(m[1]);
        const sent = this.pings.get(nonce);
        if (sent !== undefined) {
          this.pings.delete(nonce);
          this._latencyMs = Date.now() - sent;
          this.emit("latency", this._latencyMs);
        }
        return;
      }
      case S.CHAT:
        this.emit("chat", {
          roomId: num(m[1]),
          playerId: num(m[2]),
          name: String(m[3]),
          text: String(m[4]),
        });
        return;
      case S.ERROR: {
        const err = errorFromWire(m);
        if (err.req !== 0) {
          const p = this.pending.get(err.req);
          if (p) {
            this.pending.delete(err.req);
            clearTimeout(p.timer);
            this.settled();
            p.reject(err);
          }
          return;
        }
        if (err.code === ErrorCode.MATCH_TIMEOUT) {
          this._queued = false;
          this.emit("matchTimeout", err);
          return;
        }
        if (err.code === ErrorCode.RESUME_FAILED) {
          this._room = null;
          this.emit("resumeFailed", err);
          return;
        }
        if (FINAL_CODES.has(err.code)) this.lastFatal = err;
        if (err.code === ErrorCode.KICKED || err.code === ErrorCode.ROOM_CLOSED) this._room = null;
        this.emit("error", err);
        return;
      }
      case S.ROOM_CLOSED:
        this._room = null;
        this.emit("roomClosed", { roomId: num(m[1]), reason: String(m[2]) });
        return;
      case S.SHUTDOWN:
        this.shuttingDown = true;
        this.emit("shutdown", { reason: String(m[1]), reconnectAfterMs: num(m[2]) });
        return;
      default:
        // Unknown message types are ignored (section 3, forward compatibility).
        return;
    }
  }

  private reply(req: number, m: unknown[]): void {
    const p = this.pending.get(req);
    if (!p) return; // Timed out already.
    this.pending.delete(req);
    clearTimeout(p.timer);
    this.settled();
    p.resolve(m);
  }

  private failPending(err: RallyError): void {
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    this.inFlight = 0;
    this.pings.clear();
  }

  /** The open connection closed without `close()`: reconnect and resume, or stop. */
  private dropped(code: number): void {
    if (this.closedForGood) return;
    const err = this.lastFatal ?? new RallyError(0, `connection lost (close ${code})`);
    this.ws = null;
    this.failPending(err);
    // The server takes a dropped session out of the queue.
    this._queued = false;
    const final = this.lastFatal !== undefined || this.shuttingDown || this.opts.reconnect === false;
    if (final) {
      this.finish({ byClient: false, error: err });
      return;
    }
    this.reconnecting = true;
    this.emit("disconnected", err);
    const hadRoom = this._room !== null;
    const reopen = () => this.withRetry(() => this.open(hadRoom));
    reopen()
      .catch((e: RallyError) => {
        if (this.url === this.opts.url || this.closedForGood) throw e;
        // The node a redirect moved to is gone: back to the configured address, where
        // the seat is unknown (`resumeFailed` follows) and the game joins again.
        this.url = this.opts.url;
        return reopen();
      })
      .catch((e: RallyError) => {
        this.reconnecting = false;
        this.finish({ byClient: false, error: e });
      });
  }

  private finish(closed: Closed): void {
    this.closedForGood = true;
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    const ws = this.ws;
    this.ws = null;
    this.failPending(closed.error ?? new RallyError(0, "the client is closed"));
    this._room = null;
    try {
      ws?.close(1000);
    } catch {
      // Already closed.
    }
    this.emit("closed", closed);
  }
}
