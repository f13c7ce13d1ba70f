//! Commands: client actions that need checks before they run (join, leave, chat, login,
//! the player-data and profile requests).
//!
//! Every command goes through the same pipeline (SPEC.md section 4): its three checks,
//! validation, loading the player's data and the permission check, run concurrently;
//! the first to fail cancels the others and becomes the error the client gets. Then the
//! command executes. The whole command, checks and execution, is bounded by `timeout_ms`.
//!
//! The checks are a trait so that a deployment (and the tests) can wrap or replace them;
//! [`DefaultChecks`] is what `rally serve` uses. Loading the player reads the session's
//! cached account and display name, never the database; the requests that need the
//! database (login, player data, profiles) reach it only when they execute.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rally_protocol::{ErrorCode, ServerMessage};
use tokio::sync::oneshot;

use crate::accounts::{self, LoggedIn, CUSTOM, DEVICE, MAX_CREDENTIAL_BYTES};
use crate::directory::Directory;
use crate::games::Games;
use crate::player_data;
use crate::room::{Control, Membership};
use crate::server::Shared;
use crate::session::SessionLink;

/// Longest chat line, in bytes.
pub const MAX_CHAT_BYTES: usize = 256;
/// Longest room kind name, in bytes.
pub const MAX_KIND_BYTES: usize = 64;

/// A boxed, sendable future, as the check methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A command a client sent. Its `Debug` output leaves the resume token and login
/// credentials out: they are secrets.
#[derive(Clone, PartialEq, Eq)]
pub enum Command {
    /// Join a room of this kind, creating one if none has a free seat.
    Join {
        /// The room kind.
        kind: String,
    },
    /// Leave the current room.
    Leave,
    /// Say something to everyone in the current room.
    Chat {
        /// The line.
        text: String,
    },
    /// Take back the seat an earlier, dropped connection held (sent as part of `hello`).
    Resume {
        /// The earlier session's resume token.
        token: String,
    },
    /// Log in (or switch accounts).
    Login {
        /// `device` or `custom`.
        provider: String,
        /// The device id, or what the game's backend checks.
        credential: String,
    },
    /// Load the display name of the account a `hello`'s session token logged in as
    /// (queued by the session itself, ahead of the client's requests).
    Restore,
    /// Read one key-value entry.
    GetData {
        /// Whose (0: the sender's).
        owner: u64,
        /// The key.
        key: String,
    },
    /// Write one of the sender's entries.
    PutData {
        /// The key.
        key: String,
        /// The value, JSON text.
        value: String,
        /// The version last seen; 0: must not exist yet.
        expected_version: u64,
        /// Whether others may read it.
        public: bool,
    },
    /// Delete one of the sender's entries.
    DeleteData {
        /// The key.
        key: String,
        /// Its current version.
        expected_version: u64,
    },
    /// Read a profile.
    GetProfile {
        /// Whose (0: the sender's).
        account_id: u64,
    },
    /// Set the sender's display name.
    SetName {
        /// The new name.
        name: String,
    },
}

impl Command {
    /// Whether the sender must be logged in: always for account data, and for playing
    /// when the server requires logins.
    fn needs_account(&self, auth_required: bool) -> bool {
        match self {
            Command::Login { .. } | Command::Restore | Command::Resume { .. } => false,
            Command::GetData { .. }
            | Command::PutData { .. }
            | Command::DeleteData { .. }
            | Command::GetProfile { .. }
            | Command::SetName { .. } => true,
            Command::Join { .. } | Command::Leave | Command::Chat { .. } => auth_required,
        }
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Join { kind } => f.debug_struct("Join").field("kind", kind).finish(),
            Command::Leave => f.write_str("Leave"),
            Command::Chat { text } => f.debug_struct("Chat").field("text", text).finish(),
            Command::Resume { .. } => f
                .debug_struct("Resume")
                .field("token", &"<redacted>")
                .finish(),
            Command::Login { provider, .. } => f
                .debug_struct("Login")
                .field("provider", provider)
                .field("credential", &"<redacted>")
                .finish(),
            Command::Restore => f.write_str("Restore"),
            Command::GetData { owner, key } => f
                .debug_struct("GetData")
                .field("owner", owner)
                .field("key", key)
                .finish(),
            Command::PutData {
                key,
                value,
                expected_version,
                public,
            } => f
                .debug_struct("PutData")
                .field("key", key)
                .field("value_bytes", &value.len())
                .field("expected_version", expected_version)
                .field("public", public)
                .finish(),
            Command::DeleteData {
                key,
                expected_version,
            } => f
                .debug_struct("DeleteData")
                .field("key", key)
                .field("expected_version", expected_version)
                .finish(),
            Command::GetProfile { account_id } => f
                .debug_struct("GetProfile")
                .field("account_id", account_id)
                .finish(),
            Command::SetName { name } => f.debug_struct("SetName").field("name", name).finish(),
        }
    }
}

impl Command {
    /// The command's name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Join { .. } => "join",
            Command::Leave => "leave",
            Command::Chat { .. } => "chat",
            Command::Resume { .. } => "resume",
            Command::Login { .. } => "login",
            Command::Restore => "restore",
            Command::GetData { .. } => "get_data",
            Command::PutData { .. } => "put_data",
            Command::DeleteData { .. } => "delete_data",
            Command::GetProfile { .. } => "get_profile",
            Command::SetName { .. } => "set_name",
        }
    }
}

/// What the checks know about the session that sent a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandContext {
    /// The sender's session.
    pub session_id: u64,
    /// The room the sender is in, if any: `(room id, kind)`.
    pub room: Option<(u64, String)>,
    /// Whether the server is shutting down.
    pub draining: bool,
    /// The account the sender is logged in as, if any.
    pub account: Option<u64>,
}

/// The player data a command may need, loaded by [`CommandChecks::load_player`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayerData {
    /// The name other players see.
    pub display_name: String,
    /// The player's account, if logged in.
    pub account_id: Option<u64>,
}

/// Why a command failed: the code and message the client gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CommandError {
    /// The error code sent to the client.
    pub code: ErrorCode,
    /// The human-readable explanation sent with it.
    pub message: String,
    /// For `CONFLICT`: the entry's current version (0: none), sent as its own field.
    pub current_version: Option<u64>,
}

impl CommandError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CommandError {
            code,
            message: message.into(),
            current_version: None,
        }
    }
}

/// The three checks every command passes before it runs. They run concurrently.
pub trait CommandChecks: Send + Sync + 'static {
    /// Is the command well-formed (lengths, names, known kinds)?
    fn validate<'a>(
        &'a self,
        cmd: &'a Command,
        ctx: &'a CommandContext,
    ) -> BoxFuture<'a, Result<(), CommandError>>;

    /// Load the sender's player data.
    fn load_player<'a>(
        &'a self,
        ctx: &'a CommandContext,
    ) -> BoxFuture<'a, Result<PlayerData, CommandError>>;

    /// May the sender do this now?
    fn authorize<'a>(
        &'a self,
        cmd: &'a Command,
        ctx: &'a CommandContext,
    ) -> BoxFuture<'a, Result<(), CommandError>>;
}

/// The checks `rally serve` runs.
#[derive(Debug, Clone)]
pub struct DefaultChecks {
    games: Games,
    directory: Arc<Directory>,
    /// `auth_required`: playing needs a login.
    auth_required: bool,
}

impl DefaultChecks {
    pub(crate) fn new(games: Games, directory: Arc<Directory>, auth_required: bool) -> Self {
        DefaultChecks {
            games,
            directory,
            auth_required,
        }
    }
}

impl CommandChecks for DefaultChecks {
    fn validate<'a>(
        &'a self,
        cmd: &'a Command,
        _ctx: &'a CommandContext,
    ) -> BoxFuture<'a, Result<(), CommandError>> {
        Box::pin(async move {
            match cmd {
                Command::Join { kind } => {
                    if kind.is_empty() || kind.len() > MAX_KIND_BYTES {
                        return Err(CommandError::new(
                            ErrorCode::InvalidArgument,
                            format!("room kind must be 1 to {MAX_KIND_BYTES} bytes"),
                        ));
                    }
                    if self.games.get(kind).is_none() {
                        return Err(CommandError::new(
                            ErrorCode::UnknownRoomKind,
                            format!(
                                "no room kind {kind:?}; this server offers {}",
                                self.games.kinds().join(", ")
                            ),
                        ));
                    }
                }
                Command::Chat { text } => {
                    if text.trim().is_empty() || text.len() > MAX_CHAT_BYTES {
                        return Err(CommandError::new(
                            ErrorCode::InvalidArgument,
                            format!("chat text must be 1 to {MAX_CHAT_BYTES} bytes and not blank"),
                        ));
                    }
                    if text.chars().any(char::is_control) {
                        return Err(CommandError::new(
                            ErrorCode::InvalidArgument,
                            "chat text must not contain control characters",
                        ));
                    }
                }
                Command::Login {
                    provider,
                    credential,
                } => {
                    if provider != DEVICE && provider != CUSTOM {
                        return Err(CommandError::new(
                            ErrorCode::InvalidArgument,
                            format!(
                                "unknown login provider {provider:?}; use \"device\" or \"custom\""
                            ),
                        ));
                    }
                    if credential.is_empty() || credential.len() > MAX_CREDENTIAL_BYTES {
                        return Err(CommandError::new(
                            ErrorCode::InvalidArgument,
                            format!("a credential is 1 to {MAX_CREDENTIAL_BYTES} bytes"),
                        ));
                    }
                }
                // Keys, names and versions are checked by the store before it touches the
                // database, with one set of rules for both backends.
                Command::Leave
                | Command::Restore
                | Command::GetData { .. }
                | Command::PutData { .. }
                | Command::DeleteData { .. }
                | Command::GetProfile { .. }
                | Command::SetName { .. } => {}
                Command::Resume { token } => {
                    if token.is_empty() || token.len() > 64 {
                        return Err(CommandError::new(
                            ErrorCode::ResumeFailed,
                            "a resume token is 1 to 64 bytes",
                        ));
                    }
                }
            }
            Ok(())
        })
    }

    fn load_player<'a>(
        &'a self,
        ctx: &'a CommandContext,
    ) -> BoxFuture<'a, Result<PlayerData, CommandError>> {
        Box::pin(async move {
            self.directory
                .get(ctx.session_id)
                .map(|p| PlayerData {
                    display_name: p.name.clone(),
                    account_id: p.account_id,
                })
                .ok_or_else(|| CommandError::new(ErrorCode::Internal, "session is not registered"))
        })
    }

    fn authorize<'a>(
        &'a self,
        cmd: &'a Command,
        ctx: &'a CommandContext,
    ) -> BoxFuture<'a, Result<(), CommandError>> {
        Box::pin(async move {
            if cmd.needs_account(self.auth_required) && ctx.account.is_none() {
                return Err(CommandError::new(
                    ErrorCode::Unauthorized,
                    "not logged in: send login first (or hello with a session token)",
                ));
            }
            match cmd {
                Command::Join { .. } | Command::Resume { .. } if ctx.draining => Err(
                    CommandError::new(ErrorCode::ServerShutdown, "the server is shutting down"),
                ),
                Command::Join { .. } | Command::Resume { .. } => match &ctx.room {
                    Some((id, _)) => Err(CommandError::new(
                        ErrorCode::AlreadyInRoom,
                        format!("already in room {id}; leave it first"),
                    )),
                    None => Ok(()),
                },
                Command::Leave | Command::Chat { .. } => match ctx.room {
                    Some(_) => Ok(()),
                    None => Err(CommandError::new(ErrorCode::NotInRoom, "not in a room")),
                },
                // A seat belongs to the account that took it: switching accounts in a
                // room would hand it to another player.
                Command::Login { .. } => match &ctx.room {
                    Some((id, _)) => Err(CommandError::new(
                        ErrorCode::AlreadyInRoom,
                        format!("in room {id}: leave it before logging in"),
                    )),
                    None => Ok(()),
                },
                // Own data only: the owner of a write is always the sender, and reads of
                // others' entries are checked against the entry's public flag by the store.
                Command::Restore
                | Command::GetData { .. }
                | Command::PutData { .. }
                | Command::DeleteData { .. }
                | Command::GetProfile { .. }
                | Command::SetName { .. } => Ok(()),
            }
        })
    }
}

/// What a successful command did, for the session to apply.
#[derive(Debug)]
pub(crate) enum Outcome {
    Joined(Membership),
    Left {
        room_id: u64,
    },
    Said,
    LoggedIn(LoggedIn),
    /// The display name of a `hello` token's account; `None`: not loaded (database down).
    Restored(Option<String>),
    /// The `hello` token's account does not exist: the session is not logged in after all.
    Forgotten(CommandError),
    /// A reply to send as it is.
    Reply(ServerMessage),
}

fn logged_in(ctx: &CommandContext) -> Result<u64, CommandError> {
    // `authorize` already refused these commands without an account.
    ctx.account
        .ok_or_else(|| CommandError::new(ErrorCode::Unauthorized, "not logged in"))
}

fn room_gone() -> CommandError {
    CommandError::new(ErrorCode::NotInRoom, "the room has closed")
}

/// Runs one command through the checks and executes it. The caller bounds it by `timeout_ms`.
pub(crate) async fn run(
    shared: Arc<Shared>,
    req: u32,
    cmd: Command,
    ctx: CommandContext,
    link: SessionLink,
    membership: Option<Membership>,
) -> Result<Outcome, CommandError> {
    let checks = &*shared.checks;
    let ((), player, ()) = tokio::try_join!(
        checks.validate(&cmd, &ctx),
        checks.load_player(&ctx),
        checks.authorize(&cmd, &ctx)
    )?;
    match cmd {
        Command::Join { kind } => {
            let (room, reservation) = shared.matchmaker.reserve(&shared, &kind)?;
            let (reply, answer) = oneshot::channel();
            // The membership's token: the room cancels it when the seat is no longer ours.
            let held = room.token.child_token();
            room.control
                .send(Control::Join {
                    link,
                    req,
                    reservation,
                    account: ctx.account,
                    held: held.clone(),
                    reply,
                })
                .await
                .map_err(|_| {
                    CommandError::new(ErrorCode::RoomFull, "the room closed; try again")
                })?;
            match answer.await {
                Ok(Ok(player_id)) => Ok(Outcome::Joined(Membership {
                    room,
                    player_id,
                    held,
                })),
                Ok(Err(refusal)) => Err(CommandError::new(ErrorCode::RoomFull, refusal.0)),
                Err(_) => Err(CommandError::new(
                    ErrorCode::RoomFull,
                    "the room closed; try again",
                )),
            }
        }
        Command::Leave => {
            let m = membership.ok_or_else(room_gone)?;
            let (reply, answer) = oneshot::channel();
            let room_id = m.room.id;
            m.room
                .control
                .send(Control::Leave {
                    player: m.player_id,
                    session: link.session_id,
                    reply: Some(reply),
                })
                .await
                .map_err(|_| room_gone())?;
            // The room closing before it answers leaves the player out all the same.
            let _ = answer.await;
            Ok(Outcome::Left { room_id })
        }
        Command::Resume { token } => {
            let failed = || {
                CommandError::new(
                    ErrorCode::ResumeFailed,
                    "the resume token is unknown or its seat has expired; this is a new session",
                )
            };
            let (room, player_id, account) = shared.resume.get(&token).ok_or_else(failed)?;
            // The seat is its account's: another account (or a session whose login did not
            // hold) cannot take it, whoever holds the token.
            if account != ctx.account {
                return Err(failed());
            }
            let (reply, answer) = oneshot::channel();
            let held = room.token.child_token();
            room.control
                .send(Control::Resume {
                    player: player_id,
                    token,
                    link,
                    held: held.clone(),
                    reply,
                })
                .await
                .map_err(|_| failed())?;
            match answer.await {
                Ok(Ok(())) => Ok(Outcome::Joined(Membership {
                    room,
                    player_id,
                    held,
                })),
                _ => Err(failed()),
            }
        }
        Command::Chat { text } => {
            let m = membership.ok_or_else(room_gone)?;
            let (reply, answer) = oneshot::channel();
            m.room
                .control
                .send(Control::Chat {
                    player: m.player_id,
                    session: link.session_id,
                    name: player.display_name,
                    text,
                    reply,
                })
                .await
                .map_err(|_| room_gone())?;
            // Not said: the seat was resumed by another connection meanwhile.
            if !answer.await.map_err(|_| room_gone())? {
                return Err(CommandError::new(ErrorCode::NotInRoom, "not in a room"));
            }
            Ok(Outcome::Said)
        }
        Command::Login {
            provider,
            credential,
        } => accounts::login(&shared, &provider, &credential)
            .await
            .map(Outcome::LoggedIn),
        Command::Restore => match accounts::restore(&shared, logged_in(&ctx)?).await {
            Ok(name) => Ok(Outcome::Restored(name)),
            Err(e) => Ok(Outcome::Forgotten(e)),
        },
        Command::GetData { owner, key } => {
            player_data::get(&shared, req, logged_in(&ctx)?, owner, key)
                .await
                .map(Outcome::Reply)
        }
        Command::PutData {
            key,
            value,
            expected_version,
            public,
        } => player_data::put(
            &shared,
            req,
            logged_in(&ctx)?,
            key,
            &value,
            expected_version,
            public,
        )
        .await
        .map(Outcome::Reply),
        Command::DeleteData {
            key,
            expected_version,
        } => player_data::delete(&shared, req, logged_in(&ctx)?, &key, expected_version)
            .await
            .map(Outcome::Reply),
        Command::GetProfile { account_id } => {
            accounts::profile(&shared, req, logged_in(&ctx)?, account_id)
                .await
                .map(Outcome::Reply)
        }
        Command::SetName { name } => {
            accounts::set_name(&shared, ctx.session_id, logged_in(&ctx)?, &name).await?;
            Ok(Outcome::Reply(ServerMessage::Ok { req }))
        }
    }
}
