-- Rally's first schema, PostgreSQL dialect. Must stay equivalent to ../sqlite/0001_init.sql:
-- the queries in src/ are shared by both backends. Times are Unix milliseconds (UTC).

-- One row per player identity. display_name NULL means the default "player-<id>".
CREATE TABLE accounts (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    display_name TEXT,
    created_at   BIGINT NOT NULL
);

-- How a player proves it is an account: ('device', device id) or ('custom', id from the
-- game's backend). The primary key is what makes concurrent first logins yield one account.
CREATE TABLE identities (
    provider    TEXT   NOT NULL,
    external_id TEXT   NOT NULL,
    account_id  BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (provider, external_id)
);
CREATE INDEX identities_account ON identities (account_id);

-- Counters Rally keeps per account; created with the account.
CREATE TABLE stats (
    account_id   BIGINT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    sessions     BIGINT NOT NULL DEFAULT 0,
    play_ms      BIGINT NOT NULL DEFAULT 0,
    games_played BIGINT NOT NULL DEFAULT 0
);

-- The per-player key-value store. version starts at 1 and grows by 1 per write.
CREATE TABLE kv (
    owner_id    BIGINT  NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    key         TEXT    NOT NULL,
    value       JSONB   NOT NULL,
    version     BIGINT  NOT NULL,
    public_read BOOLEAN NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (owner_id, key)
);

-- Finished matches; result is the game's JSON blob.
CREATE TABLE matches (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT   NOT NULL,
    started_at  BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    result      JSONB  NOT NULL,
    recorded_at BIGINT NOT NULL
);

CREATE TABLE match_players (
    match_id   BIGINT NOT NULL REFERENCES matches (id) ON DELETE CASCADE,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    PRIMARY KEY (match_id, account_id)
);
-- A player's recent matches, newest first.
CREATE INDEX match_players_account ON match_players (account_id, match_id);
