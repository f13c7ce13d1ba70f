//! The values the store hands out, and the conversions between them and the columns.
//!
//! Times are stored as Unix milliseconds (a BIGINT on both backends, so the same query binds
//! the same Rust type everywhere) and handed out as [`SystemTime`]. Counters and versions are
//! BIGINT columns and `u64` here; a negative value read back is reported as corrupt data
//! rather than wrapped.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::StoreError;

/// An account's id: stable for the account's life, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub i64);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A recorded match's id; larger ids were recorded later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MatchId(pub i64);

impl fmt::Display for MatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A player's account and profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The account's id.
    pub id: AccountId,
    /// The name shown to other players: the one set with
    /// [`Store::set_display_name`](crate::Store::set_display_name), else `player-<id>`.
    pub display_name: String,
    /// When the account was created (at its first login).
    pub created_at: SystemTime,
}

/// The counters Rally keeps per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Sessions recorded with [`Store::record_session`](crate::Store::record_session).
    pub sessions: u64,
    /// Total play time over those sessions, in milliseconds.
    pub play_ms: u64,
    /// Games played: recorded matches the account was in, plus
    /// [`Store::record_game`](crate::Store::record_game) calls.
    pub games_played: u64,
}

/// One entry of a player's key-value store.
#[derive(Debug, Clone, PartialEq)]
pub struct KvEntry {
    /// The key, unique per owner.
    pub key: String,
    /// The game's JSON value.
    pub value: serde_json::Value,
    /// 1 when created, one more at each write; what a conditional write names.
    pub version: u64,
    /// Whether players other than the owner may read it.
    pub public_read: bool,
    /// When it was last written.
    pub updated_at: SystemTime,
}

/// A finished match.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchRecord {
    /// The match's id.
    pub id: MatchId,
    /// The room kind it was played in, e.g. `arena`.
    pub kind: String,
    /// Everyone who played, in ascending id order.
    pub players: Vec<AccountId>,
    /// When it started.
    pub started_at: SystemTime,
    /// How long it lasted, in milliseconds.
    pub duration_ms: u64,
    /// The game's result blob.
    pub result: serde_json::Value,
}

/// The display name of an account that has not set one.
pub(crate) fn default_display_name(id: i64) -> String {
    format!("player-{id}")
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    to_ms("now", SystemTime::now()).unwrap_or(0)
}

/// A time as Unix milliseconds; times before 1970 or past year 292 million are refused.
pub(crate) fn to_ms(field: &'static str, t: SystemTime) -> Result<i64, StoreError> {
    t.duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .ok_or_else(|| StoreError::invalid(field, "must be a time after 1970"))
}

/// Unix milliseconds read from the database as a time.
pub(crate) fn from_ms(ms: i64) -> Result<SystemTime, StoreError> {
    u64::try_from(ms)
        .ok()
        .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
        .ok_or_else(|| StoreError::other(format!("corrupt time in the database: {ms}")))
}

/// A counter or version read from the database.
pub(crate) fn to_u64(what: &str, n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::other(format!("corrupt {what} in the database: {n}")))
}

/// A caller's count as a column value.
pub(crate) fn to_i64(field: &'static str, n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::invalid(field, format!("{n} is too large")))
}

/// Builds an [`Account`] from `(id, display_name, created_at)`.
pub(crate) fn account(row: (i64, Option<String>, i64)) -> Result<Account, StoreError> {
    let (id, name, created_at) = row;
    Ok(Account {
        id: AccountId(id),
        display_name: name.unwrap_or_else(|| default_display_name(id)),
        created_at: from_ms(created_at)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_in_millis() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(from_ms(to_ms("t", t).expect("after 1970")).ok(), Some(t));
        assert!(to_ms("t", UNIX_EPOCH - Duration::from_secs(1)).is_err());
        assert!(from_ms(-1).is_err());
    }

    #[test]
    fn counters_refuse_the_sign_bit() {
        assert!(to_u64("version", -1).is_err());
        assert!(to_i64("play_ms", u64::MAX).is_err());
        assert_eq!(to_i64("play_ms", 5).ok(), Some(5));
    }
}
