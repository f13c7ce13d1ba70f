/**
 * The wire protocol's numbers (docs/protocol.md sections 5, 6 and 9) and the SDK's
 * error types. Bodies are MessagePack arrays whose first element is the message type.
 */

/** Protocol version spoken by this SDK (`hello`'s first field). */
export const PROTOCOL_VERSION = 1;

/** The optional WebSocket subprotocol (section 1). */
export const SUBPROTOCOL = "rally.v1";

/** Client message types (section 5). */
export const C = {
  HELLO: 1,
  JOIN: 2,
  LEAVE: 3,
  INPUT: 4,
  CHAT: 5,
  PING: 6,
  LOGIN: 7,
  GET_DATA: 8,
  PUT_DATA: 9,
  DELETE_DATA: 10,
  GET_PROFILE: 11,
  SET_NAME: 12,
  // Revision 2: rooms and matchmaking (sections 5c and 5d).
  CREATE: 13,
  JOIN_OR_CREATE: 14,
  JOIN_BY_ID: 15,
  JOIN_BY_CODE: 16,
  LIST_ROOMS: 17,
  QUEUE: 18,
  LEAVE_QUEUE: 19,
  SPECTATE: 20,
  SPECTATE_RECORDING: 21,
  STOP_SPECTATING: 22,
  // Revision 4: clusters (section 11b).
  CLAIM_SEAT: 23,
} as const;

/** Server message types (section 6). */
export const S = {
  WELCOME: 64,
  JOINED: 65,
  LEFT: 66,
  STATE: 67,
  CHAT: 68,
  PONG: 69,
  OK: 70,
  ERROR: 71,
  ROOM_CLOSED: 72,
  SHUTDOWN: 73,
  SESSION: 74,
  DATA: 75,
  WRITTEN: 76,
  PROFILE: 77,
  ROOMS: 78,
  SPECTATING: 82,
  SPECTATOR_STATE: 83,
  REDIRECT: 84,
} as const;

/** Error codes (section 9). A code not listed here is a generic error. */
export const ErrorCode = {
  BAD_MESSAGE: 1,
  MESSAGE_TOO_LARGE: 2,
  UNSUPPORTED_VERSION: 3,
  SERVER_FULL: 10,
  TIMEOUT: 11,
  SLOW_CONSUMER: 12,
  SERVER_SHUTDOWN: 13,
  KICKED: 14,
  DRAINING: 15,
  NOT_IN_ROOM: 20,
  ROOM_FULL: 21,
  UNKNOWN_ROOM_KIND: 22,
  ALREADY_IN_ROOM: 23,
  INVALID_ARGUMENT: 24,
  INPUT_REJECTED: 25,
  ROOM_BUSY: 26,
  RATE_LIMITED: 27,
  RESUME_FAILED: 28,
  ROOM_CLOSED: 29,
  INTERNAL: 30,
  CONFLICT: 31,
  FORBIDDEN: 32,
  NOT_FOUND: 33,
  UNAVAILABLE: 34,
  UNAUTHORIZED: 35,
  NO_SUCH_ROOM: 36,
  ROOM_LOCKED: 37,
  BAD_OPTIONS: 38,
  JOIN_REFUSED: 39,
  MATCH_TIMEOUT: 40,
  NOT_IN_QUEUE: 41,
  ALREADY_QUEUED: 42,
  QUEUE_FULL: 43,
  NO_SUCH_MATCH: 46,
  SPECTATORS_FULL: 47,
  NOT_SPECTATING: 48,
  // Revision 4: a redirect's seat ticket refused by `claim_seat` (section 11b).
  TICKET_INVALID: 50,
  TICKET_EXPIRED: 51,
  TICKET_USED: 52,
  TICKET_WRONG_NODE: 53,
  CLUSTER_UNAVAILABLE: 54,
} as const;

/** The name of an error code, or `"UNKNOWN"`. */
export function codeName(code: number): string {
  for (const [name, value] of Object.entries(ErrorCode)) {
    if (value === code) return name;
  }
  return code === 0 ? "CONNECTION" : "UNKNOWN";
}

/**
 * Codes after which the server closes the connection on purpose, so the SDK does not
 * reconnect (a `TIMEOUT` or `SLOW_CONSUMER` drop is resumable: section 11a).
 */
export const FINAL_CODES: ReadonlySet<number> = new Set([
  ErrorCode.BAD_MESSAGE,
  ErrorCode.MESSAGE_TOO_LARGE,
  ErrorCode.UNSUPPORTED_VERSION,
  ErrorCode.SERVER_FULL,
  ErrorCode.KICKED,
  ErrorCode.DRAINING,
  ErrorCode.RATE_LIMITED,
]);

/**
 * An error from the server (`code` is the protocol's code) or from the SDK itself:
 * code 0 for a connection that failed or dropped, `TIMEOUT` (11) for a request that got
 * no reply within the request timeout.
 */
export class RallyError extends Error {
  /** The protocol's error code (section 9), or 0 for a connection failure. */
  readonly code: number;
  /** The request this answers, or 0. */
  readonly req: number;

  constructor(code: number, message: string, req = 0) {
    super(`${codeName(code)}: ${message}`);
    this.name = "RallyError";
    this.code = code;
    this.req = req;
  }

  /** The code's name, e.g. `"ROOM_FULL"`. */
  get codeName(): string {
    return codeName(this.code);
  }

  /** Whether SPEC section 2 retries it: timeouts and connection resets only. */
  get retryable(): boolean {
    return this.code === 0 || this.code === ErrorCode.TIMEOUT;
  }
}

/**
 * `CONFLICT` on `putData`/`deleteData`: someone wrote first. `currentVersion` is the
 * entry's version now (0: no such entry); read, merge, and write with it.
 */
export class ConflictError extends RallyError {
  /** The entry's current version, 0 when it does not exist. */
  readonly currentVersion: number;

  constructor(message: string, req: number, currentVersion: number) {
    super(ErrorCode.CONFLICT, message, req);
    this.name = "ConflictError";
    this.currentVersion = currentVersion;
  }
}

/**
 * Builds the error for an `error` message `[71, code, message, req, current_version?]`.
 * A `CONFLICT` carries the entry's current version as its fifth element; a server of an
 * earlier revision only says it in the message, which is read as a fallback.
 */
export function errorFromWire(m: unknown[]): RallyError {
  const code = Number(m[1] ?? 0);
  const message = String(m[2] ?? "");
  const req = Number(m[3] ?? 0);
  if (code === ErrorCode.CONFLICT) {
    let current = m.length > 4 && m[4] != null ? Number(m[4]) : NaN;
    if (Number.isNaN(current)) {
      const found = /current version is (\d+)/.exec(message);
      current = found ? Number(found[1]) : 0;
    }
    return new ConflictError(message, req, current);
  }
  return new RallyError(code, message, req);
}
