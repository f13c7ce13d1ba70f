//! The counters Rally keeps per account: sessions, play time, games played.
//!
//! Each update is one `UPDATE ... SET n = n + $x`, atomic on both backends, so concurrent
//! sessions of one player never lose an increment. The stats row is created with the
//! account, so "no row" means "no account".

use crate::backend::{on_pool, on_pool_write};
use crate::error::StoreError;
use crate::model::{self, AccountId, Stats};
use crate::store::Store;

const SELECT_STATS: &str =
    "SELECT sessions, play_ms, games_played FROM stats WHERE account_id = $1";
const ADD_SESSION: &str =
    "UPDATE stats SET sessions = sessions + 1, play_ms = play_ms + $2 WHERE account_id = $1";
/// Also run per player by [`Store::record_match`], in its transaction.
pub(crate) const ADD_GAME: &str =
    "UPDATE stats SET games_played = games_played + 1 WHERE account_id = $1";

impl Store {
    /// An account's counters; [`StoreError::NotFound`] if there is no such account.
    pub async fn stats(&self, id: AccountId) -> Result<Stats, StoreError> {
        self.call(async {
            let row: Option<(i64, i64, i64)> = on_pool!(self.pool(), |pool| {
                sqlx::query_as(SELECT_STATS)
                    .bind(id.0)
                    .fetch_optional(pool)
                    .await?
            });
            let (sessions, play_ms, games_played) =
                row.ok_or(StoreError::NotFound { what: "account" })?;
            Ok(Stats {
                sessions: model::to_u64("sessions", sessions)?,
                play_ms: model::to_u64("play_ms", play_ms)?,
                games_played: model::to_u64("games_played", games_played)?,
            })
        })
        .await
    }

    /// Counts one finished session of `play_ms` milliseconds.
    pub async fn record_session(&self, id: AccountId, play_ms: u64) -> Result<(), StoreError> {
        let play_ms = model::to_i64("play_ms", play_ms)?;
        self.call(async {
            let done = on_pool_write!(self, |pool| {
                sqlx::query(ADD_SESSION)
                    .bind(id.0)
                    .bind(play_ms)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
            found(done)
        })
        .await
    }

    /// Counts one game played outside a recorded match (a recorded match counts its
    /// players' games itself, see [`Store::record_match`]).
    pub async fn record_game(&self, id: AccountId) -> Result<(), StoreError> {
        self.call(async {
            let done = on_pool_write!(self, |pool| {
                sqlx::query(ADD_GAME)
                    .bind(id.0)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
            found(done)
        })
        .await
    }
}

fn found(rows: u64) -> Result<(), StoreError> {
    if rows == 0 {
        Err(StoreError::NotFound { what: "account" })
    } else {
        Ok(())
    }
}
