//! Accounts and profiles: find-or-create by device id or by a backend-verified custom id,
//! read an account, set its display name.
//!
//! An account is reached through identities `(provider, external_id)`, whose primary key
//! makes concurrent first logins with the same id end with one account: each racer creates
//! an account and tries to attach the identity with `ON CONFLICT DO NOTHING` in one
//! transaction; the one whose insert lands commits, the others roll their account back and
//! read the winner's. (On PostgreSQL the losers' inserts wait for the winner's commit; on
//! SQLite writers are serialized by the write lock.)

use crate::backend::{on_pool, on_pool_write, WritePool};
use crate::error::StoreError;
use crate::model::{self, Account, AccountId};
use crate::store::Store;
use crate::validate;

const FIND_BY_IDENTITY: &str = "SELECT a.id, a.display_name, a.created_at \
     FROM identities i JOIN accounts a ON a.id = i.account_id \
     WHERE i.provider = $1 AND i.external_id = $2";
const INSERT_ACCOUNT: &str = "INSERT INTO accounts (created_at) VALUES ($1) RETURNING id";
const INSERT_STATS: &str = "INSERT INTO stats (account_id) VALUES ($1)";
const INSERT_IDENTITY: &str =
    "INSERT INTO identities (provider, external_id, account_id, created_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (provider, external_id) DO NOTHING";
const SELECT_ACCOUNT: &str = "SELECT id, display_name, created_at FROM accounts WHERE id = $1";
const UPDATE_NAME: &str = "UPDATE accounts SET display_name = $2 WHERE id = $1";

/// Identity providers, as stored in `identities.provider`.
const DEVICE: &str = "device";
const CUSTOM: &str = "custom";

/// How many times a login retries after losing a creation race to a racer that then
/// rolled back (each retry is one more race; more than one in a row means something is
/// wrong, not unlucky).
const LOGIN_ATTEMPTS: usize = 3;

impl Store {
    /// The account of a client-chosen device id (e.g. a UUID), created at the first login.
    ///
    /// The id must be 8..=128 visible ASCII characters (else [`StoreError::Invalid`] naming
    /// `device_id`). Concurrent first logins with one id get one account.
    pub async fn device_login(&self, device_id: &str) -> Result<Account, StoreError> {
        validate::device_id(device_id)?;
        self.call(self.login(DEVICE, device_id)).await
    }

    /// The account of an id the game's own backend vouched for (the webhook is the
    /// caller's), created at the first login. The id must be 1..=128 visible ASCII
    /// characters (else [`StoreError::Invalid`] naming `external_id`). Custom ids and
    /// device ids are separate spaces: the same string names two different accounts.
    pub async fn custom_login(&self, external_id: &str) -> Result<Account, StoreError> {
        validate::external_id(external_id)?;
        self.call(self.login(CUSTOM, external_id)).await
    }

    /// An account and its profile; [`StoreError::NotFound`] if there is none.
    pub async fn account(&self, id: AccountId) -> Result<Account, StoreError> {
        self.call(async {
            let row: Option<(i64, Option<String>, i64)> = on_pool!(self.pool(), |pool| {
                sqlx::query_as(SELECT_ACCOUNT)
                    .bind(id.0)
                    .fetch_optional(pool)
                    .await?
            });
            row.map(model::account)
                .unwrap_or(Err(StoreError::NotFound { what: "account" }))
        })
        .await
    }

    /// Sets an account's display name: 1..=32 characters, no control characters, not blank
    /// (else [`StoreError::Invalid`] naming `display_name`). Names need not be unique.
    pub async fn set_display_name(&self, id: AccountId, name: &str) -> Result<(), StoreError> {
        validate::display_name(name)?;
        self.call(async {
            let done = on_pool_write!(self, |pool| {
                sqlx::query(UPDATE_NAME)
                    .bind(id.0)
                    .bind(name)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
            if done == 0 {
                return Err(StoreError::NotFound { what: "account" });
            }
            Ok(())
        })
        .await
    }

    async fn login(
        &self,
        provider: &'static str,
        external_id: &str,
    ) -> Result<Account, StoreError> {
        for _ in 0..LOGIN_ATTEMPTS {
            // The common case, an existing account, is one read.
            let found: Option<(i64, Option<String>, i64)> = on_pool!(self.pool(), |pool| {
                sqlx::query_as(FIND_BY_IDENTITY)
                    .bind(provider)
                    .bind(external_id)
                    .fetch_optional(pool)
                    .await?
            });
            if let Some(row) = found {
                return model::account(row);
            }
            let now = model::now_ms();
            let created: Option<i64> = on_pool_write!(self, |pool| {
                let mut tx = pool.begin_write().await?;
                let (id,): (i64,) = sqlx::query_as(INSERT_ACCOUNT)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query(INSERT_STATS).bind(id).execute(&mut *tx).await?;
                let attached = sqlx::query(INSERT_IDENTITY)
                    .bind(provider)
                    .bind(external_id)
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if attached == 1 {
                    tx.commit().await?;
                    Some(id)
                } else {
                    // Someone else attached this identity first: theirs is the account.
                    tx.rollback().await?;
                    None
                }
            });
            if let Some(id) = created {
                tracing::debug!(account = id, provider, "account created");
                return model::account((id, None, now));
            }
        }
        Err(StoreError::other(format!(
            "{provider} login: the identity was neither found nor created after {LOGIN_ATTEMPTS} attempts"
        )))
    }
}
