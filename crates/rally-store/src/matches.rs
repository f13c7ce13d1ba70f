//! Match results: recorded once when a room ends, read back as a player's recent matches.
//!
//! Recording is one transaction: the match, one row per player, and each player's
//! `games_played` increment commit together or not at all, so the stats never count a
//! match that is not there (or the other way round).

use std::collections::{BTreeMap, HashSet};
use std::time::SystemTime;

use sqlx::types::Json;

use crate::backend::{on_pool, on_pool_write, WritePool};
use crate::error::StoreError;
use crate::model::{self, AccountId, MatchId, MatchRecord};
use crate::stats::ADD_GAME;
use crate::store::Store;
use crate::validate;

/// Players one match may list: far above any room size, low enough that recording stays one
/// short transaction.
const MAX_PLAYERS: usize = 1024;
/// The most matches [`Store::recent_matches`] returns at once.
pub const MAX_RECENT_MATCHES: u32 = 100;

const INSERT_MATCH: &str =
    "INSERT INTO matches (kind, started_at, duration_ms, result, recorded_at) \
     VALUES ($1, $2, $3, $4, $5) RETURNING id";
const INSERT_PLAYER: &str = "INSERT INTO match_players (match_id, account_id) VALUES ($1, $2)";
const SELECT_RECENT: &str = "SELECT m.id, m.kind, m.started_at, m.duration_ms, m.result \
     FROM match_players p JOIN matches m ON m.id = p.match_id \
     WHERE p.account_id = $1 ORDER BY m.id DESC LIMIT $2";
// Everyone in the player's matches from the oldest one listed on; matches recorded after
// the first query show up too and are ignored.
const SELECT_PLAYERS: &str = "SELECT o.match_id, o.account_id \
     FROM match_players p JOIN match_players o ON o.match_id = p.match_id \
     WHERE p.account_id = $1 AND p.match_id >= $2";

/// `(id, kind, started_at, duration_ms, result)` as [`SELECT_RECENT`] returns it.
type MatchRow = (i64, String, i64, i64, Json<serde_json::Value>);

impl Store {
    /// Records a finished match of room kind `kind` and counts a game played for each
    /// player, atomically; returns the match's id.
    ///
    /// `players` must be 1..=1024 distinct existing accounts (a missing one is
    /// [`StoreError::NotFound`] and nothing is recorded); `result` must fit in
    /// [`StoreConfig::max_result_bytes`](crate::StoreConfig::max_result_bytes).
    pub async fn record_match(
        &self,
        kind: &str,
        players: &[AccountId],
        started_at: SystemTime,
        duration_ms: u64,
        result: &serde_json::Value,
    ) -> Result<MatchId, StoreError> {
        validate::kind(kind)?;
        if players.is_empty() || players.len() > MAX_PLAYERS {
            return Err(StoreError::invalid(
                "players",
                format!("{} players; must be 1..={MAX_PLAYERS}", players.len()),
            ));
        }
        let mut seen = HashSet::with_capacity(players.len());
        if let Some(dup) = players.iter().find(|p| !seen.insert(**p)) {
            return Err(StoreError::invalid(
                "players",
                format!("account {dup} is listed twice"),
            ));
        }
        let started_at = model::to_ms("started_at", started_at)?;
        let duration_ms = model::to_i64("duration_ms", duration_ms)?;
        validate::json_size("result", result, self.config().max_result_bytes)?;

        self.call(async {
            let id = on_pool_write!(self, |pool| {
                let mut tx = pool.begin_write().await?;
                let (id,): (i64,) = sqlx::query_as(INSERT_MATCH)
                    .bind(kind)
                    .bind(started_at)
                    .bind(duration_ms)
                    .bind(Json(result))
                    .bind(model::now_ms())
                    .fetch_one(&mut *tx)
                    .await?;
                for player in players {
                    // A missing account fails here on its foreign key (NotFound); the
                    // transaction is dropped, so rolled back.
                    sqlx::query(INSERT_PLAYER)
                        .bind(id)
                        .bind(player.0)
                        .execute(&mut *tx)
                        .await?;
                    let counted = sqlx::query(ADD_GAME)
                        .bind(player.0)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if counted == 0 {
                        return Err(StoreError::NotFound { what: "account" });
                    }
                }
                tx.commit().await?;
                id
            });
            Ok(MatchId(id))
        })
        .await
    }

    /// The player's most recent matches, newest first, at most `limit` of them (capped at
    /// [`MAX_RECENT_MATCHES`]).
    pub async fn recent_matches(
        &self,
        player: AccountId,
        limit: u32,
    ) -> Result<Vec<MatchRecord>, StoreError> {
        let limit = i64::from(limit.min(MAX_RECENT_MATCHES));
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.call(async {
            let rows: Vec<MatchRow> = on_pool!(self.pool(), |pool| {
                sqlx::query_as(SELECT_RECENT)
                    .bind(player.0)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            });
            let Some(oldest) = rows.last().map(|r| r.0) else {
                return Ok(Vec::new());
            };
            let pairs: Vec<(i64, i64)> = on_pool!(self.pool(), |pool| {
                sqlx::query_as(SELECT_PLAYERS)
                    .bind(player.0)
                    .bind(oldest)
                    .fetch_all(pool)
                    .await?
            });
            let mut players: BTreeMap<i64, Vec<AccountId>> = BTreeMap::new();
            for (match_id, account) in pairs {
                players
                    .entry(match_id)
                    .or_default()
                    .push(AccountId(account));
            }
            rows.into_iter()
                .map(|(id, kind, started_at, duration_ms, Json(result))| {
                    let mut listed = players.remove(&id).unwrap_or_default();
                    listed.sort_unstable();
                    Ok(MatchRecord {
                        id: MatchId(id),
                        kind,
                        players: listed,
                        started_at: model::from_ms(started_at)?,
                        duration_ms: model::to_u64("duration_ms", duration_ms)?,
                        result,
                    })
                })
                .collect()
        })
        .await
    }
}
