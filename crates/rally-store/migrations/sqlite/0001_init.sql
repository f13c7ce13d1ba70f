-- Rally's first schema, SQLite dialect. Must stay equivalent to ../postgres/0001_init.sql:
-- the queries in src/ are shared by both backends. Times are Unix milliseconds (UTC);
-- JSON is text; booleans are 0/1. STRICT tables make SQLite enforce the column types.

-- One row per player identity. display_name NULL means the default "player-<id>".
CREATE TABLE accounts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    display_name TEXT,
    created_at   INTEGER NOT NULL
) STRICT;

-- How a player proves it is an account: ('device', device id) or ('custom', id from the
-- game's backend). The primary key is what makes concurrent first logins yield one account.
CREATE TABLE identities (
    provider    TEXT    NOT NULL,
    external_id TEXT    NOT NULL,
    account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (provider, external_id)
) STRICT;
CREATE INDEX identities_account ON identities (account_id);

-- Counters Rally keeps per account; created with the account.
CREATE TABLE stats (
    account_id   INTEGER PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    sessions     INTEGER NOT NULL DEFAULT 0,
    play_ms      INTEGER NOT NULL DEFAULT 0,
    games_played INTEGER NOT NULL DEFAULT 0
) STRICT;

-- The per-player key-value store. version starts at 1 and grows by 1 per write.
CREATE TABLE kv (
    owner_id    INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    key         TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    public_read INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (owner_id, key)
) STRICT;

-- Finished matches; result is the game's JSON blob.
CREATE TABLE matches (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    result      TEXT    NOT NULL,
    recorded_at INTEGER NOT NULL
) STRICT;

CREATE TABLE match_players (
    match_id   INTEGER NOT NULL REFERENCES matches (id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    PRIMARY KEY (match_id, account_id)
) STRICT;
-- A player's recent matches, newest first.
CREATE INDEX match_players_account ON match_players (account_id, match_id);
