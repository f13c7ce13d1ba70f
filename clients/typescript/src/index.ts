/**
 * rally-client: the TypeScript SDK of the Rally game server.
 *
 * Layout:
 * - `client.ts`: `RallyClient`, the connection, requests, events, reconnect and resume.
 * - `protocol.ts`: message types, error codes, `RallyError` and `ConflictError`.
 */
export * from "./client.js";
export * from "./protocol.js";
