//! The per-player key-value store: JSON values under short keys, each with a version, and
//! the one permission rule for reading another player's entries.
//!
//! Writes are optimistic: the caller names the version it last saw and the write is one
//! conditional statement (`INSERT ... ON CONFLICT DO NOTHING` to create, `UPDATE`/`DELETE
//! ... WHERE version = $v` to change), so it is atomic on both backends without holding a
//! lock across a round trip. When the statement touches no row, the entry's version is read
//! back for the [`StoreError::Conflict`] (it may have moved again since; it is a hint for the
//! caller's next attempt, not a promise).
//!
//! Permission: the owner reads and writes its own entries; others may only read entries
//! written with `public_read`. Another account's private entry reads exactly like a missing
//! one (`Ok(None)`): answering "forbidden" would tell a reader which private keys exist.

use sqlx::types::Json;

use crate::backend::{on_pool, on_pool_write};
use crate::error::StoreError;
use crate::model::{self, AccountId, KvEntry};
use crate::store::Store;
use crate::validate;

const SELECT_ONE: &str = "SELECT key, value, version, public_read, updated_at \
     FROM kv WHERE owner_id = $1 AND key = $2";
const SELECT_ALL: &str = "SELECT key, value, version, public_read, updated_at \
     FROM kv WHERE owner_id = $1 ORDER BY key";
const SELECT_VERSION: &str = "SELECT version FROM kv WHERE owner_id = $1 AND key = $2";
const INSERT: &str = "INSERT INTO kv (owner_id, key, value, version, public_read, updated_at) \
     VALUES ($1, $2, $3, 1, $4, $5) ON CONFLICT (owner_id, key) DO NOTHING";
const UPDATE: &str =
    "UPDATE kv SET value = $3, version = version + 1, public_read = $4, updated_at = $5 \
     WHERE owner_id = $1 AND key = $2 AND version = $6 RETURNING version";
const DELETE: &str = "DELETE FROM kv WHERE owner_id = $1 AND key = $2 AND version = $3";

/// A row of `kv` as the queries select it.
type Row = (String, Json<serde_json::Value>, i64, bool, i64);

fn entry(row: Row) -> Result<KvEntry, StoreError> {
    let (key, Json(value), version, public_read, updated_at) = row;
    Ok(KvEntry {
        key,
        value,
        version: model::to_u64("version", version)?,
        public_read,
        updated_at: model::from_ms(updated_at)?,
    })
}

impl Store {
    /// The owner's entry under `key`, if any.
    pub async fn kv_get(&self, owner: AccountId, key: &str) -> Result<Option<KvEntry>, StoreError> {
        validate::key(key)?;
        self.call(self.select_one(owner, key)).await
    }

    /// `owner`'s entry under `key` as `reader` may see it: all of the reader's own entries,
    /// others' only when public-read. Another account's private entry is `Ok(None)`, the
    /// same answer as a missing one, so that a reader cannot probe which keys exist.
    pub async fn kv_get_as(
        &self,
        reader: AccountId,
        owner: AccountId,
        key: &str,
    ) -> Result<Option<KvEntry>, StoreError> {
        validate::key(key)?;
        let entry = self.call(self.select_one(owner, key)).await?;
        match entry {
            Some(e) if reader != owner && !e.public_read => Ok(None),
            other => Ok(other),
        }
    }

    /// All of the owner's entries, ordered by key.
    pub async fn kv_list(&self, owner: AccountId) -> Result<Vec<KvEntry>, StoreError> {
        self.call(async {
            let rows: Vec<Row> = on_pool!(self.pool(), |pool| {
                sqlx::query_as(SELECT_ALL)
                    .bind(owner.0)
                    .fetch_all(pool)
                    .await?
            });
            rows.into_iter().map(entry).collect()
        })
        .await
    }

    /// Writes `value` under `key` and returns the entry's new version.
    ///
    /// `expected_version` is the version the caller last saw: `None` creates the entry,
    /// which must not exist yet (it starts at version 1); `Some(v)` replaces version `v`.
    /// Anything else is refused with [`StoreError::Conflict`] carrying the current version.
    /// `public_read` is set anew by every write. The value's JSON text must fit in
    /// [`StoreConfig::max_value_bytes`](crate::StoreConfig::max_value_bytes). Writing for
    /// an account that does not exist is [`StoreError::NotFound`] when creating (and a
    /// conflict with no current version when replacing).
    pub async fn kv_put(
        &self,
        owner: AccountId,
        key: &str,
        value: &serde_json::Value,
        expected_version: Option<u64>,
        public_read: bool,
    ) -> Result<u64, StoreError> {
        validate::key(key)?;
        validate::json_size("value", value, self.config().max_value_bytes)?;
        self.call(async {
            let now = model::now_ms();
            match expected_version {
                None => {
                    let created = on_pool_write!(self, |pool| {
                        sqlx::query(INSERT)
                            .bind(owner.0)
                            .bind(key)
                            .bind(Json(value))
                            .bind(public_read)
                            .bind(now)
                            .execute(pool)
                            .await?
                            .rows_affected()
                    });
                    if created == 1 {
                        return Ok(1);
                    }
                }
                Some(expected) => {
                    // A version past i64::MAX cannot be stored, so cannot be current.
                    if let Ok(expected) = i64::try_from(expected) {
                        let updated: Option<i64> = on_pool_write!(self, |pool| {
                            sqlx::query_scalar(UPDATE)
                                .bind(owner.0)
                                .bind(key)
                                .bind(Json(value))
                                .bind(public_read)
                                .bind(now)
                                .bind(expected)
                                .fetch_optional(pool)
                                .await?
                        });
                        if let Some(version) = updated {
                            return model::to_u64("version", version);
                        }
                    }
                }
            }
            Err(self.conflict(owner, key).await)
        })
        .await
    }

    /// Deletes the entry under `key` if its version is `expected_version`; otherwise (also
    /// when it does not exist) [`StoreError::Conflict`] with the current version.
    pub async fn kv_delete(
        &self,
        owner: AccountId,
        key: &str,
        expected_version: u64,
    ) -> Result<(), StoreError> {
        validate::key(key)?;
        self.call(async {
            if let Ok(expected) = i64::try_from(expected_version) {
                let deleted = on_pool_write!(self, |pool| {
                    sqlx::query(DELETE)
                        .bind(owner.0)
                        .bind(key)
                        .bind(expected)
                        .execute(pool)
                        .await?
                        .rows_affected()
                });
                if deleted == 1 {
                    return Ok(());
                }
            }
            Err(self.conflict(owner, key).await)
        })
        .await
    }

    async fn select_one(&self, owner: AccountId, key: &str) -> Result<Option<KvEntry>, StoreError> {
        let row: Option<Row> = on_pool!(self.pool(), |pool| {
            sqlx::query_as(SELECT_ONE)
                .bind(owner.0)
                .bind(key)
                .fetch_optional(pool)
                .await?
        });
        row.map(entry).transpose()
    }

    /// The conflict error for a refused write: the entry's version now, or the error that
    /// prevented reading it.
    async fn conflict(&self, owner: AccountId, key: &str) -> StoreError {
        let current: Result<Option<i64>, sqlx::Error> = on_pool!(self.pool(), |pool| {
            sqlx::query_scalar(SELECT_VERSION)
                .bind(owner.0)
                .bind(key)
                .fetch_optional(pool)
                .await
        });
        match current {
            Ok(None) => StoreError::Conflict { current: None },
            Ok(Some(v)) => match model::to_u64("version", v) {
                Ok(v) => StoreError::Conflict { current: Some(v) },
                Err(e) => e,
            },
            Err(e) => e.into(),
        }
    }
}
