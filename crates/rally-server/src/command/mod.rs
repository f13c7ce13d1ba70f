//! Commands (commands floor): client actions that need checks before they run (join, leave, chat, login,
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
//!
//! # Layout
//! - `checks`: [`DefaultChecks`].
//! - `env`: what the commands are given (`CommandEnv`).
//! - `join`, `resume`, `leave`, `chat`, `list_rooms`: one file per room command (`join`
//!   serves `join`, `create`, `join_or_create`, `join_by_id` and `join_by_code`). The
//!   account and data commands are the `accounts` and `player_data` modules' functions.
//! - `queue`: `queue` and `leave_queue`, and the task that makes the matchmaking queue's
//!   passes and seats its matches.
//! - `spectate`: `spectate`, `spectate_recording` and `stop_spectating`.
//! - `join`, `resume`, `leave`, `chat`: one file per room command (`join` also takes
//!   `claim_seat`, the second half of a cluster redirect). The account and data
//!   commands are the `accounts` and `player_data` modules' functions.
//! - this file: the command type, the check trait, and `run`: the checks, then one
//!   call per command.

mod chat;
mod checks;
mod env;
mod join;
mod leave;
mod list_rooms;
mod queue;
mod resume;
mod spectate;

use std::future::Future;
use std::pin::Pin;

use rally_protocol::{ErrorCode, ServerMessage};

use crate::accounts::{self, LoggedIn};
use crate::outbox::SessionLink;
use crate::player_data;
use crate::room_handle::{Membership, Watching};

pub use crate::error::CommandError;
pub use checks::DefaultChecks;
pub(crate) use env::CommandEnv;
#[allow(unused_imports)] // the rating queue seats matched players through it
pub(crate) use join::seat;
pub(crate) use queue::run as run_queue;

/// Longest chat line, in bytes.
pub const MAX_CHAT_BYTES: usize = 256;
/// Longest room kind name, in bytes.
pub const MAX_KIND_BYTES: usize = 64;

/// A matchmaking rating: a number compared by its bits, so [`Command`] stays `Eq`.
#[derive(Debug, Clone, Copy)]
pub struct Rating(pub f64);

impl PartialEq for Rating {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Rating {}

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
    /// Open a new room and take a seat in it.
    Create {
        /// The room kind.
        kind: String,
        /// The options, one MessagePack value as sent (checked by `validate`).
        options: Vec<u8>,
        /// Whether the room stays out of listings and `join_or_create`.
        private: bool,
    },
    /// Join an open public room whose options match on the kind's filter keys, else
    /// open one with these options.
    JoinOrCreate {
        /// The room kind.
        kind: String,
        /// The options, one MessagePack value as sent (checked by `validate`).
        options: Vec<u8>,
    },
    /// Join the room with this id.
    JoinById {
        /// The room's id.
        room_id: u64,
    },
    /// Join the room with this share code.
    JoinByCode {
        /// The code as typed.
        code: String,
    },
    /// A page of the open public rooms of a kind.
    ListRooms {
        /// The room kind.
        kind: String,
        /// Option values a listed room must have, one MessagePack value as sent.
        filter: Vec<u8>,
        /// Rooms to skip.
        offset: u32,
        /// Rooms wanted (capped by the server).
        limit: u32,
    },
    /// Wait in a kind's matchmaking queue (revision 2).
    Queue {
        /// The room kind.
        kind: String,
        /// The room options, one MessagePack value as sent (checked by `validate`).
        options: Vec<u8>,
        /// The player's rating.
        rating: Rating,
        /// Queue every connected player of the sender's room as one party.
        party: bool,
    },
    /// Leave the matchmaking queue.
    LeaveQueue,
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
    /// Watch a room without a seat.
    Spectate {
        /// The room.
        room_id: u64,
        /// The room's share code; empty: by id.
        code: String,
    },
    /// Watch a finished match from its recording.
    SpectateRecording {
        /// The recording's file name.
        file: String,
    },
    /// Stop watching.
    StopSpectating,
    /// Take the seat a cluster `redirect`'s ticket reserved on this node.
    ClaimSeat {
        /// The seat ticket.
        ticket: String,
    },
}

impl Command {
    /// Whether the sender must be logged in: always for account data, and for playing
    /// when the server requires logins.
    pub(crate) fn needs_account(&self, auth_required: bool) -> bool {
        match self {
            Command::Login { .. } | Command::Restore | Command::Resume { .. } => false,
            Command::GetData { .. }
            | Command::PutData { .. }
            | Command::DeleteData { .. }
            | Command::GetProfile { .. }
            | Command::SetName { .. } => true,
            Command::Join { .. }
            | Command::Create { .. }
            | Command::JoinOrCreate { .. }
            | Command::JoinById { .. }
            | Command::JoinByCode { .. }
            | Command::ListRooms { .. }
            | Command::Queue { .. }
            | Command::LeaveQueue
            | Command::Leave
            | Command::Chat { .. }
            | Command::Spectate { .. }
            | Command::SpectateRecording { .. }
            | Command::StopSpectating
            | Command::ClaimSeat { .. } => auth_required,
        }
    }

    /// Whether the command takes a seat in a room (and so may not run while in one).
    pub(crate) fn joins(&self) -> bool {
        matches!(
            self,
            Command::Join { .. }
                | Command::Create { .. }
                | Command::JoinOrCreate { .. }
                | Command::JoinById { .. }
                | Command::JoinByCode { .. }
        )
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Join { kind } => f.debug_struct("Join").field("kind", kind).finish(),
            Command::Create {
                kind,
                options,
                private,
            } => f
                .debug_struct("Create")
                .field("kind", kind)
                .field("options_bytes", &options.len())
                .field("private", private)
                .finish(),
            Command::JoinOrCreate { kind, options } => f
                .debug_struct("JoinOrCreate")
                .field("kind", kind)
                .field("options_bytes", &options.len())
                .finish(),
            Command::JoinById { room_id } => f
                .debug_struct("JoinById")
                .field("room_id", room_id)
                .finish(),
            // The code lets anyone into a private room: kept out of logs.
            Command::JoinByCode { .. } => f
                .debug_struct("JoinByCode")
                .field("code", &"<redacted>")
                .finish(),
            Command::Queue {
                kind,
                options,
                rating,
                party,
            } => f
                .debug_struct("Queue")
                .field("kind", kind)
                .field("options_bytes", &options.len())
                .field("rating", &rating.0)
                .field("party", party)
                .finish(),
            Command::LeaveQueue => f.write_str("LeaveQueue"),
            Command::ListRooms {
                kind,
                filter,
                offset,
                limit,
            } => f
                .debug_struct("ListRooms")
                .field("kind", kind)
                .field("filter_bytes", &filter.len())
                .field("offset", offset)
                .field("limit", limit)
                .finish(),
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
            Command::Spectate { room_id, code } => f
                .debug_struct("Spectate")
                .field("room_id", room_id)
                .field("code", code)
                .finish(),
            Command::SpectateRecording { file } => f
                .debug_struct("SpectateRecording")
                .field("file", file)
                .finish(),
            Command::StopSpectating => f.write_str("StopSpectating"),
            Command::ClaimSeat { .. } => f
                .debug_struct("ClaimSeat")
                .field("ticket", &"<redacted>")
                .finish(),
        }
    }
}

impl Command {
    /// The command's name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Join { .. } => "join",
            Command::Create { .. } => "create",
            Command::JoinOrCreate { .. } => "join_or_create",
            Command::JoinById { .. } => "join_by_id",
            Command::JoinByCode { .. } => "join_by_code",
            Command::ListRooms { .. } => "list_rooms",
            Command::Queue { .. } => "queue",
            Command::LeaveQueue => "leave_queue",
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
            Command::Spectate { .. } => "spectate",
            Command::SpectateRecording { .. } => "spectate_recording",
            Command::StopSpectating => "stop_spectating",
            Command::ClaimSeat { .. } => "claim_seat",
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
    /// Answered already (`queue` says `ok` as the ticket is queued).
    Done,
    /// A spectator stream started (`spectating` is sent already); it replaces any other.
    Spectating(Watching),
    /// Stop the spectator stream, if any.
    StopSpectating,
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
    env: &CommandEnv,
    req: u32,
    cmd: Command,
    ctx: CommandContext,
    link: SessionLink,
    membership: Option<Membership>,
) -> Result<Outcome, CommandError> {
    let checks = &*env.checks;
    let ((), player, ()) = tokio::try_join!(
        checks.validate(&cmd, &ctx),
        checks.load_player(&ctx),
        checks.authorize(&cmd, &ctx)
    )?;
    let storage = env.storage.as_deref();
    if cmd.joins() && env.queue.contains(ctx.session_id) {
        return Err(CommandError::new(
            ErrorCode::AlreadyQueued,
            "in the matchmaking queue: leave_queue before joining a room",
        ));
    }
    match cmd {
        Command::Queue {
            kind,
            options,
            rating,
            party,
        } => {
            let q = queue::QueueRequest {
                kind,
                options: options.into(),
                rating: rating.0,
                party,
            };
            queue::queue(env, req, q, &ctx, link, membership).await
        }
        Command::LeaveQueue => queue::leave_queue(env, req, ctx.session_id),
        Command::Join { kind } => {
            join::join(
                &env.rooms,
                env.cluster.as_deref(),
                req,
                join::Target::kind(kind, &[])?,
                &ctx,
                link,
            )
            .await
        }
        Command::JoinOrCreate { kind, options } => {
            join::join(
                &env.rooms,
                env.cluster.as_deref(),
                req,
                join::Target::kind(kind, &options)?,
                &ctx,
                link,
            )
            .await
        }
        Command::Create {
            kind,
            options,
            private,
        } => {
            let target = join::Target::new_room(kind, &options, private)?;
            join::join(&env.rooms, env.cluster.as_deref(), req, target, &ctx, link).await
        }
        Command::JoinById { room_id } => {
            join::join(
                &env.rooms,
                env.cluster.as_deref(),
                req,
                join::Target::Id(room_id),
                &ctx,
                link,
            )
            .await
        }
        Command::JoinByCode { code } => {
            join::join(
                &env.rooms,
                env.cluster.as_deref(),
                req,
                join::Target::Code(code),
                &ctx,
                link,
            )
            .await
        }
        Command::ListRooms {
            kind,
            filter,
            offset,
            limit,
        } => {
            let cluster = env.cluster.as_deref();
            list_rooms::list_rooms(&env.rooms, cluster, req, &kind, &filter, offset, limit)
                .map(Outcome::Reply)
        }
        Command::ClaimSeat { ticket } => {
            join::claim(env.cluster.as_deref(), req, &ticket, &ctx, link).await
        }
        Command::Leave => leave::leave(membership, &link).await,
        Command::Resume { token } => resume::resume(&env.rooms, token, &ctx, link).await,
        Command::Chat { text } => chat::chat(membership, &link, player.display_name, text).await,
        Command::Login {
            provider,
            credential,
        } => accounts::login(&env.auth, storage, &provider, &credential)
            .await
            .map(Outcome::LoggedIn),
        Command::Restore => match accounts::restore(storage, logged_in(&ctx)?).await {
            Ok(name) => Ok(Outcome::Restored(name)),
            Err(e) => Ok(Outcome::Forgotten(e)),
        },
        Command::GetData { owner, key } => {
            player_data::get(storage, req, logged_in(&ctx)?, owner, key)
                .await
                .map(Outcome::Reply)
        }
        Command::PutData {
            key,
            value,
            expected_version,
            public,
        } => player_data::put(
            storage,
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
        } => player_data::delete(storage, req, logged_in(&ctx)?, &key, expected_version)
            .await
            .map(Outcome::Reply),
        Command::GetProfile { account_id } => {
            accounts::profile(storage, req, logged_in(&ctx)?, account_id)
                .await
                .map(Outcome::Reply)
        }
        Command::SetName { name } => {
            let (session, account) = (ctx.session_id, logged_in(&ctx)?);
            accounts::set_name(storage, &env.directory, session, account, &name).await?;
            Ok(Outcome::Reply(ServerMessage::Ok { req }))
        }
        Command::Spectate { room_id, code } => {
            spectate::spectate(&env.rooms, req, room_id, &code, link).await
        }
        Command::SpectateRecording { file } => {
            spectate::spectate_recording(&env.rooms, req, &file, link).await
        }
        Command::StopSpectating => Ok(Outcome::StopSpectating),
    }
}
