//! The checks `rally serve` runs before every command (commands floor).

use std::sync::Arc;

use rally_game::RoomOptions;
use rally_protocol::ErrorCode;

use super::{BoxFuture, Command, CommandChecks, CommandContext, CommandError, PlayerData};
use super::{MAX_CHAT_BYTES, MAX_KIND_BYTES};
use crate::accounts::{CUSTOM, DEVICE, MAX_CREDENTIAL_BYTES};
use crate::directory::Directory;
use crate::games::Games;

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

/// Longest room code accepted (codes are 6 characters; spaces around are trimmed).
const MAX_CODE_BYTES: usize = 16;

impl DefaultChecks {
    /// A kind name of the right length that this server offers.
    fn known_kind(&self, kind: &str) -> Result<(), CommandError> {
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
        Ok(())
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
                Command::Join { kind } | Command::ListRooms { kind, .. } => {
                    self.known_kind(kind)?
                }
                Command::Create { kind, options, .. } | Command::JoinOrCreate { kind, options } => {
                    self.known_kind(kind)?;
                    RoomOptions::parse(options)
                        .map_err(|e| CommandError::new(ErrorCode::BadOptions, e.0))?;
                }
                Command::JoinByCode { code } => {
                    if code.is_empty() || code.len() > MAX_CODE_BYTES {
                        return Err(CommandError::new(
                            ErrorCode::InvalidArgument,
                            format!("a room code is 1 to {MAX_CODE_BYTES} bytes"),
                        ));
                    }
                }
                Command::Queue {
                    kind,
                    options,
                    rating,
                    ..
                } => {
                    self.known_kind(kind)?;
                    RoomOptions::parse(options)
                        .map_err(|e| CommandError::new(ErrorCode::BadOptions, e.0))?;
                    if !rating.0.is_finite() {
                        return Err(CommandError::new(
                            ErrorCode::InvalidArgument,
                            "the rating must be a finite number",
                        ));
                    }
                }
                Command::JoinById { .. } | Command::LeaveQueue => {}
                Command::ClaimSeat { ticket } => {
                    if ticket.is_empty() || ticket.len() > rally_auth::ticket::MAX_TICKET_LEN {
                        return Err(CommandError::new(
                            ErrorCode::TicketInvalid,
                            "not a valid seat ticket",
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
                | Command::SetName { .. }
                | Command::Spectate { .. }
                | Command::StopSpectating => {}
                Command::SpectateRecording { file } => {
                    if file.is_empty() || file.len() > 255 {
                        return Err(CommandError::new(
                            ErrorCode::InvalidArgument,
                            "a recording's file name is 1 to 255 bytes",
                        ));
                    }
                }
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
            let seats =
                cmd.joins() || matches!(cmd, Command::Resume { .. } | Command::ClaimSeat { .. });
            match cmd {
                _ if seats && ctx.draining => Err(CommandError::new(
                    ErrorCode::ServerShutdown,
                    "the server is shutting down",
                )),
                _ if seats => match &ctx.room {
                    Some((id, _)) => Err(CommandError::new(
                        ErrorCode::AlreadyInRoom,
                        format!("already in room {id}; leave it first"),
                    )),
                    None => Ok(()),
                },
                Command::Queue { .. } if ctx.draining => Err(CommandError::new(
                    ErrorCode::ServerShutdown,
                    "the server is shutting down",
                )),
                // A solo player may queue from a room (a lobby, left when the match is
                // found); a party needs one, which the command itself checks.
                Command::Queue { .. } | Command::LeaveQueue => Ok(()),
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
                // Listings show public rooms only, to anyone.
                Command::ListRooms { .. }
                | Command::Restore
                | Command::GetData { .. }
                | Command::PutData { .. }
                | Command::DeleteData { .. }
                | Command::GetProfile { .. }
                | Command::SetName { .. } => Ok(()),
                Command::Join { .. }
                | Command::Create { .. }
                | Command::JoinOrCreate { .. }
                | Command::JoinById { .. }
                | Command::JoinByCode { .. }
                | Command::ClaimSeat { .. }
                | Command::Resume { .. } => Ok(()),
                Command::Spectate { .. }
                | Command::SpectateRecording { .. }
                | Command::StopSpectating => Ok(()),
            }
        })
    }
}
