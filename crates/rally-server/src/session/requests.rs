//! The request queue (session floor): a session runs one command at a time, in order,
//! each bounded by `timeout_ms`, and applies what it did (a seat taken, a login, a reply).

use std::collections::VecDeque;

use rally_protocol::{ErrorCode, ServerMessage};

use super::{CommandFuture, Core};
use crate::accounts::SessionAccount;
use crate::command::{self, Command, CommandContext, CommandError, Outcome};
use crate::error::ClientError;
use crate::metrics::{ErrorKind, TaskKind};
use crate::outbox::Outbound;

/// Commands waiting behind the running one, in order: 8 bytes while empty, which is
/// almost always, and no storage kept after a burst (a `VecDeque` keeps its largest
/// buffer for good: 288 bytes of every player that ever sent a request).
#[derive(Debug, Default)]
#[allow(
    clippy::box_collection,
    reason = "the box is the point: 8 bytes while empty, against a VecDeque's 32"
)]
pub(super) struct CommandQueue(Option<Box<VecDeque<(u32, Command)>>>);

impl CommandQueue {
    pub(super) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.len())
    }

    pub(super) fn push_back(&mut self, item: (u32, Command)) {
        self.0.get_or_insert_with(Box::default).push_back(item);
    }

    /// The next command; the storage goes with the last one.
    pub(super) fn pop_front(&mut self) -> Option<(u32, Command)> {
        let queue = self.0.as_mut()?;
        let next = queue.pop_front();
        if queue.is_empty() {
            self.0 = None;
        }
        next
    }
}

impl Core {
    /// Starts the next queued command, bounded by `timeout_ms`.
    pub(super) fn next_command(&mut self) -> Option<CommandFuture> {
        let (req, cmd) = self.queue.pop_front()?;
        self.running = true;
        let membership = self.membership().cloned();
        let ctx = CommandContext {
            session_id: self.link.session_id,
            room: membership
                .as_ref()
                .map(|m| (m.room.id, m.room.kind.to_string())),
            draining: self.draining,
            account: self.account.map(|a| a.id),
        };
        let env = self.env.clone();
        let link = self.link.clone();
        let limit = env.config.timeout();
        let session_id = self.link.session_id;
        Some(Box::pin(async move {
            let task = env.metrics.task(TaskKind::Command);
            let name = cmd.name();
            let run = command::run(&env.commands, req, cmd, ctx, link, membership);
            let result = match tokio::time::timeout(limit, run).await {
                Ok(r) => r,
                Err(_) => Err(CommandError::new(
                    ErrorCode::Timeout,
                    format!("{name} did not complete within timeout_ms"),
                )),
            };
            let elapsed = task.elapsed_ms();
            env.metrics.command(name, task.elapsed());
            tracing::debug!(
                task_id = %format_args!("command-{session_id}-{req}"),
                async_model = "async_await",
                duration_ms = elapsed,
                session_id,
                command = name,
                code = result.as_ref().err().map(|e| e.code.name()),
                "command ended"
            );
            (req, result)
        }))
    }

    pub(super) fn on_outcome(&mut self, req: u32, result: Result<Outcome, CommandError>) {
        self.running = false;
        match result {
            // The room already sent `joined`, ahead of its first state.
            Ok(Outcome::Joined(m)) => self.membership = Some(Box::new(m)),
            Ok(Outcome::Left { room_id }) => {
                self.membership = None;
                self.link
                    .send_in_task(Outbound::Msg(ServerMessage::Left { req, room_id }));
            }
            Ok(Outcome::Said) => {
                self.link
                    .send_in_task(Outbound::Msg(ServerMessage::Ok { req }));
            }
            Ok(Outcome::LoggedIn(login)) => {
                let since = match self.account.take() {
                    // The same account again: the session goes on.
                    Some(prev) if prev.id == login.account_id => prev.since,
                    Some(prev) => {
                        self.end_account_session(prev);
                        std::time::Instant::now()
                    }
                    None => std::time::Instant::now(),
                };
                self.account = Some(SessionAccount {
                    id: login.account_id,
                    since,
                });
                self.env.directory.set_account(
                    self.link.session_id,
                    Some(login.account_id),
                    login.display_name.clone(),
                );
                self.link
                    .send_in_task(Outbound::Msg(ServerMessage::Session {
                        req,
                        account_id: login.account_id,
                        token: login.token.token,
                        expires_at_ms: login.token.expires_at_ms,
                        display_name: login.display_name,
                    }));
            }
            Ok(Outcome::Restored(name)) => {
                if let (Some(name), Some(account)) = (name, self.account) {
                    self.env
                        .directory
                        .set_account(self.link.session_id, Some(account.id), name);
                }
            }
            Ok(Outcome::Forgotten(e)) => {
                // Not a session of that account after all; nothing to count for it.
                self.account = None;
                self.env.directory.set_account(
                    self.link.session_id,
                    None,
                    format!("player-{}", self.link.session_id),
                );
                self.client_error(ErrorKind::Command, e, req);
            }
            Ok(Outcome::Reply(msg)) => {
                self.link.send_in_task(Outbound::Msg(msg));
            }
            Ok(Outcome::Done) => {}
            // The stream watched before, if any, stops as its `Watching` drops.
            Ok(Outcome::Spectating(w)) => self.spectating = Some(w),
            Ok(Outcome::StopSpectating) => match self.spectating.take() {
                Some(_) => {
                    self.link
                        .send_in_task(Outbound::Msg(ServerMessage::Ok { req }));
                }
                None => self.client_error(
                    ErrorKind::Command,
                    ClientError::new(ErrorCode::NotSpectating, "not spectating"),
                    req,
                ),
            },
            Err(e) => self.client_error(ErrorKind::Command, e, req),
        }
    }
}
