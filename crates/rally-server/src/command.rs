//! Commands: client actions that need checks before they run (join, leave, chat).
//!
//! Every command goes through the same pipeline (SPEC.md section 4): its three checks,
//! validation, loading the player's data and the permission check, run concurrently;
//! the first to fail cancels the others and becomes the error the client gets. Then the
//! command executes. The whole command, checks and execution, is bounded by `timeout_ms`.
//!
//! The checks are a trait so that a deployment (and the tests) can wrap or replace them;
//! [`DefaultChecks`] is what `rally serve` uses.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rally_protocol::ErrorCode;
use tokio::sync::oneshot;

use crate::directory::Directory;
use crate::games::Games;
use crate::room::{Control, Membership};
use crate::server::Shared;
use crate::session::SessionLink;

/// Longest chat line, in bytes.
pub const MAX_CHAT_BYTES: usize = 256;
/// Longest room kind name, in bytes.
pub const MAX_KIND_BYTES: usize = 64;

/// A boxed, sendable future, as the check methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A command a client sent. Its `Debug` output leaves the resume token out: it is a secret.
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
}

/// The player data a command may need, loaded by [`CommandChecks::load_player`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayerData {
    /// The name other players see.
    pub display_name: String,
}

/// Why a command failed: the code and message the client gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CommandError {
    /// The error code sent to the client.
    pub code: ErrorCode,
    /// The human-readable explanation sent with it.
    pub message: String,
}

impl CommandError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CommandError {
            code,
            message: message.into(),
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
}

impl DefaultChecks {
    pub(crate) fn new(games: Games, directory: Arc<Directory>) -> Self {
        DefaultChecks { games, directory }
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
                Command::Leave => {}
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
            }
        })
    }
}

/// What a successful command did, for the session to apply.
#[derive(Debug)]
pub(crate) enum Outcome {
    Joined(Membership),
    Left { room_id: u64 },
    Said,
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
            room.control
                .send(Control::Join {
                    link,
                    req,
                    reservation,
                    reply,
                })
                .await
                .map_err(|_| {
                    CommandError::new(ErrorCode::RoomFull, "the room closed; try again")
                })?;
            match answer.await {
                Ok(Ok(player_id)) => Ok(Outcome::Joined(Membership { room, player_id })),
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
            let (room, player_id) = shared.resume.get(&token).ok_or_else(failed)?;
            let (reply, answer) = oneshot::channel();
            room.control
                .send(Control::Resume {
                    player: player_id,
                    link,
                    reply,
                })
                .await
                .map_err(|_| failed())?;
            match answer.await {
                Ok(Ok(())) => Ok(Outcome::Joined(Membership { room, player_id })),
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
                    name: player.display_name,
                    text,
                    reply,
                })
                .await
                .map_err(|_| room_gone())?;
            answer.await.map_err(|_| room_gone())?;
            Ok(Outcome::Said)
        }
    }
}
