//! The player-data requests (commands floor): `get_data`, `put_data`, `delete_data` on the per-player
//! key-value store.
//!
//! A player writes only its own entries (the owner is always the sender) and reads its
//! own or others' public ones; the store enforces both the read permission and the
//! versions. Values travel as JSON text and are parsed here, so a value that is not JSON
//! is refused before any database work. Replies are built only after the store returned,
//! so `written` means committed.

use rally_protocol::{ErrorCode, ServerMessage};

use crate::accounts::{self, account_id};
use crate::error::CommandError;
use crate::storage::{self, Storage};

/// `data` for `owner`'s entry under `key` (owner 0: the reader's own).
pub(crate) async fn get(
    storage: Option<&Storage>,
    req: u32,
    reader: u64,
    owner: u64,
    key: String,
) -> Result<ServerMessage, CommandError> {
    let store = accounts::storage(storage)?;
    let owner = if owner == 0 { reader } else { owner };
    let entry = store
        .kv_get_as(account_id(reader)?, account_id(owner)?, &key)
        .await
        .map_err(storage::command_error)?;
    Ok(match entry {
        Some(e) => ServerMessage::Data {
            req,
            owner,
            key,
            value: Some(e.value.to_string()),
            version: e.version,
            public: e.public_read,
        },
        None => ServerMessage::Data {
            req,
            owner,
            key,
            value: None,
            version: 0,
            public: false,
        },
    })
}

/// Writes one of the sender's entries; `written` with the new version.
pub(crate) async fn put(
    storage: Option<&Storage>,
    req: u32,
    owner: u64,
    key: String,
    value: &str,
    expected_version: u64,
    public: bool,
) -> Result<ServerMessage, CommandError> {
    let store = accounts::storage(storage)?;
    let value: serde_json::Value = serde_json::from_str(value).map_err(|e| {
        CommandError::new(
            ErrorCode::InvalidArgument,
            format!("the value is not JSON text: {e}"),
        )
    })?;
    let expected = (expected_version != 0).then_some(expected_version);
    let version = store
        .kv_put(account_id(owner)?, &key, &value, expected, public)
        .await
        .map_err(storage::command_error)?;
    Ok(ServerMessage::Written { req, key, version })
}

/// Deletes one of the sender's entries; `ok`.
pub(crate) async fn delete(
    storage: Option<&Storage>,
    req: u32,
    owner: u64,
    key: &str,
    expected_version: u64,
) -> Result<ServerMessage, CommandError> {
    let store = accounts::storage(storage)?;
    store
        .kv_delete(account_id(owner)?, key, expected_version)
        .await
        .map_err(storage::command_error)?;
    Ok(ServerMessage::Ok { req })
}
