//! Accounts on the server (commands floor): logging a session in (by device id, or through the game
//! backend's webhook), session tokens in `hello`, profiles and display names.
//!
//! A session's account is cached twice, both per session and both without the database:
//! the session keeps the account id (and when it logged in, for the play-time stat), and
//! the directory record keeps the display name, which is where commands load the player
//! from ([`CommandChecks::load_player`](crate::CommandChecks::load_player)). So a chat line
//! or an input never waits on the database; only the requests that read or write account
//! data do.
//!
//! Session tokens ([`rally_auth::token`]) are checked with an HMAC, not a query: a `hello`
//! with a valid token is logged in at once, even while the database is down. Its display
//! name is then loaded in the background of the session's request queue (the internal
//! `restore` command, ahead of any request the client sends).

use std::time::{Instant, SystemTime};

use rally_auth::{IssuedToken, TokenError, TokenSigner, Webhook, WebhookError};
use rally_protocol::{ErrorCode, ServerMessage};
use rally_store::{Account, AccountId, StoreError};

use crate::config::Config;
use crate::directory::Directory;
use crate::error::CommandError;
use crate::storage::{self, Storage};

/// Login providers, as `login` names them.
pub(crate) const DEVICE: &str = "device";
/// See [`DEVICE`].
pub(crate) const CUSTOM: &str = "custom";
/// Longest credential accepted, in bytes.
pub(crate) const MAX_CREDENTIAL_BYTES: usize = 1024;

/// How sessions authenticate on this server.
#[derive(Debug)]
pub(crate) struct Auth {
    signer: TokenSigner,
    /// The game backend's login webhook; `None`: custom login is off.
    webhook: Option<Webhook>,
    /// Whether a session must log in before it plays (`auth_required`).
    pub(crate) required: bool,
}

impl Auth {
    pub(crate) fn new(config: &Config) -> Auth {
        // A quarter of timeout_ms: the account lookup after it gets the rest (at most
        // three quarters, see `storage`), all within the login request's own bound.
        let webhook_bound = config.timeout() / 4;
        let webhook = config.auth_webhook_url.as_deref().and_then(|url| {
            Webhook::new(url, webhook_bound)
                .map_err(|e| tracing::error!(error = %e, "custom login is off"))
                .ok()
        });
        Auth {
            signer: TokenSigner::new(config.auth_secret.expose().as_bytes(), config.session_ttl()),
            webhook,
            required: config.auth_required,
        }
    }

    /// The account a `hello`'s session token logs in as.
    pub(crate) fn verify(&self, token: &str) -> Result<u64, TokenError> {
        self.signer
            .verify(token, SystemTime::now())
            .map(|c| c.account_id)
    }
}

/// The account a session is logged in as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionAccount {
    pub(crate) id: u64,
    /// When the session became this account: its play time runs from here.
    pub(crate) since: Instant,
}

/// What a successful login gives the session.
#[derive(Debug)]
pub(crate) struct LoggedIn {
    pub(crate) account_id: u64,
    pub(crate) display_name: String,
    pub(crate) token: IssuedToken,
}

fn no_database() -> CommandError {
    CommandError::new(
        ErrorCode::Unavailable,
        "this server runs without a database: accounts and player data are unavailable",
    )
}

/// The server's storage, or the error a request needing it gets.
pub(crate) fn storage(storage: Option<&Storage>) -> Result<&Storage, CommandError> {
    storage.ok_or_else(no_database)
}

/// A protocol account id as the store's; ids past `i64::MAX` name no account.
pub(crate) fn account_id(id: u64) -> Result<AccountId, CommandError> {
    i64::try_from(id)
        .map(AccountId)
        .map_err(|_| CommandError::new(ErrorCode::NotFound, "no such account"))
}

/// The store's account id on the wire (store ids are positive).
pub(crate) fn wire_id(id: AccountId) -> u64 {
    u64::try_from(id.0).unwrap_or(0)
}

/// The display name an account has before it sets one.
pub(crate) fn default_name(id: u64) -> String {
    format!("player-{id}")
}

/// Logs in with `provider` and `credential` (validated already) and issues a token.
pub(crate) async fn login(
    auth: &Auth,
    storage: Option<&Storage>,
    provider: &str,
    credential: &str,
) -> Result<LoggedIn, CommandError> {
    let storage = self::storage(storage)?;
    let account = match provider {
        DEVICE => storage
            .device_login(credential)
            .await
            .map_err(storage::command_error)?,
        CUSTOM => custom_login(auth, storage, credential).await?,
        other => {
            return Err(CommandError::new(
                ErrorCode::InvalidArgument,
                format!("unknown login provider {other:?}; use \"device\" or \"custom\""),
            ))
        }
    };
    let account_id = wire_id(account.id);
    let token = auth
        .signer
        .issue(account_id, SystemTime::now())
        .map_err(|e| CommandError::new(ErrorCode::Internal, e.to_string()))?;
    tracing::debug!(account = account_id, provider, "logged in");
    Ok(LoggedIn {
        account_id,
        display_name: account.display_name,
        token,
    })
}

/// Asks the game's backend who the credential belongs to, then finds or creates that
/// account. A name the backend gives names a new account (one still on its default name).
async fn custom_login(
    auth: &Auth,
    storage: &Storage,
    credential: &str,
) -> Result<Account, CommandError> {
    let hook = auth.webhook.as_ref().ok_or_else(|| {
        CommandError::new(
            ErrorCode::Unauthorized,
            "custom login is not configured on this server",
        )
    })?;
    let verified = hook.verify(credential).await.map_err(|e| match e {
        WebhookError::Refused { reason } => {
            tracing::debug!(%reason, "custom login refused");
            CommandError::new(
                ErrorCode::Unauthorized,
                "the game's backend refused the credential",
            )
        }
        WebhookError::Unavailable { detail } => {
            tracing::warn!(%detail, "auth webhook unavailable");
            CommandError::new(
                ErrorCode::Unavailable,
                "the game's login backend is unavailable; try again later",
            )
        }
    })?;
    let mut account = storage
        .custom_login(&verified.external_id)
        .await
        .map_err(|e| match e {
            StoreError::Invalid { reason, .. } => {
                tracing::warn!(%reason, "the auth webhook answered an unusable external_id");
                CommandError::new(
                    ErrorCode::Unauthorized,
                    "the game's backend answered an unusable player id",
                )
            }
            e => storage::command_error(e),
        })?;
    if let Some(name) = verified.display_name {
        if account.display_name == default_name(wire_id(account.id)) && name != account.display_name
        {
            match storage.set_display_name(account.id, &name).await {
                Ok(()) => account.display_name = name,
                Err(e) => tracing::debug!(error = %e, "the backend's display name was not kept"),
            }
        }
    }
    Ok(account)
}

/// The display name of the account a `hello` token logged in as: `Ok(Some)` loaded,
/// `Ok(None)` when the database cannot say now (the session keeps `player-<id>`), an
/// error when the account does not exist.
pub(crate) async fn restore(
    storage: Option<&Storage>,
    account: u64,
) -> Result<Option<String>, CommandError> {
    let Some(storage) = storage else {
        return Ok(None);
    };
    match storage.account(account_id(account)?).await {
        Ok(a) => Ok(Some(a.display_name)),
        Err(StoreError::NotFound { .. }) => Err(CommandError::new(
            ErrorCode::Unauthorized,
            "the session token's account does not exist on this server; log in again",
        )),
        Err(e) => {
            tracing::debug!(account, error = %e, "profile not loaded; keeping the default name");
            Ok(None)
        }
    }
}

/// `profile` for `account_id` (0: the reader's own).
pub(crate) async fn profile(
    storage: Option<&Storage>,
    req: u32,
    reader: u64,
    account: u64,
) -> Result<ServerMessage, CommandError> {
    let storage = self::storage(storage)?;
    let wanted = if account == 0 { reader } else { account };
    let id = account_id(wanted)?;
    let (account, stats) =
        tokio::try_join!(storage.account(id), storage.stats(id)).map_err(storage::command_error)?;
    Ok(ServerMessage::Profile {
        req,
        account_id: wanted,
        display_name: account.display_name,
        sessions: stats.sessions,
        play_ms: stats.play_ms,
        games_played: stats.games_played,
    })
}

/// Sets the account's display name, then the session's cached copy.
pub(crate) async fn set_name(
    storage: Option<&Storage>,
    directory: &Directory,
    session_id: u64,
    account: u64,
    name: &str,
) -> Result<(), CommandError> {
    let storage = self::storage(storage)?;
    storage
        .set_display_name(account_id(account)?, name)
        .await
        .map_err(storage::command_error)?;
    directory.set_account(session_id, Some(account), name.to_owned());
    Ok(())
}
