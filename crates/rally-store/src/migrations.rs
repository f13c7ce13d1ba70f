//! Versioned schema migrations, embedded in the binary, one list per backend.
//!
//! The SQL files under `migrations/sqlite` and `migrations/postgres` are compiled in with
//! `include_str!` and handed to sqlx's [`Migrator`] through a tiny [`MigrationSource`], so
//! sqlx's `macros` feature (and its compile-time driver builds) is not needed. sqlx records
//! what ran in `_sqlx_migrations` (with a checksum, so an edited migration is refused rather
//! than silently skipped), takes an advisory lock on PostgreSQL so two servers starting at
//! once do not both migrate, and runs each migration in a transaction. On SQLite sqlx
//! takes no lock, so two processes opening one new file at once could both run the first
//! migration ("table accounts already exists"); there Rally holds an exclusive lock on a
//! file beside the database (`<database>.lock`, see `backend::sqlite_setup_lock`) while it
//! migrates, and the second process then finds nothing left to do.
//!
//! Adding a migration: add `NNNN_what.sql` to both directories and a line to both lists;
//! the two lists must keep the same versions (a unit test checks that).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

use crate::backend::Pool;
use crate::error::StoreError;

/// One migration: version, description, SQL.
type Embedded = (i64, &'static str, &'static str);

const SQLITE: &[Embedded] = &[(
    1,
    "init",
    include_str!("../migrations/sqlite/0001_init.sql"),
)];

const POSTGRES: &[Embedded] = &[(
    1,
    "init",
    include_str!("../migrations/postgres/0001_init.sql"),
)];

/// A [`MigrationSource`] over migrations compiled into the binary.
#[derive(Debug)]
struct EmbeddedSource(&'static [Embedded]);

impl<'s> MigrationSource<'s> for EmbeddedSource {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Applies every migration `pool`'s database has not had yet. Idempotent.
pub(crate) async fn run(pool: &Pool) -> Result<(), StoreError> {
    match pool {
        Pool::Sqlite(pool) => {
            let _lock =
                crate::backend::sqlite_setup_lock(pool.connect_options().get_filename()).await?;
            Migrator::new(EmbeddedSource(SQLITE))
                .await?
                .run(pool)
                .await?
        }
        Pool::Postgres(pool) => {
            Migrator::new(EmbeddedSource(POSTGRES))
                .await?
                .run(pool)
                .await?
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_have_the_same_versions() {
        let versions = |list: &[Embedded]| list.iter().map(|m| m.0).collect::<Vec<_>>();
        assert_eq!(versions(SQLITE), versions(POSTGRES));
        let v = versions(SQLITE);
        assert!(v.windows(2).all(|w| w[0] < w[1]), "versions ascend");
    }
}
