//! The connection task: one per client, owning a [`Connection`].
//!
//! The connection reads, decodes and classifies what the server says (the one place
//! that does, shared with callers of `Connection` itself); this task turns each of its
//! results into a request's reply or an event, hands it what the handle queued to write,
//! pings when the client has been quiet for a third of the server's `timeout_ms`, and
//! declares the connection dead when the server has been silent for all of it. When the
//! connection drops unexpectedly it reconnects with the retry policy and presents the
//! last resume token; it stops for good after `close()`, a `shutdown`, a fatal server
//! error, or a failed reconnection.

use std::sync::Arc;
use std::time::Duration;

use rally_protocol::{ClientMessage, ErrorCode};
use tokio::time::Instant;

use crate::config::Config;
use crate::connect::{self, Conn, Tokens};
use crate::connection::{Connection, Message, Next};
use crate::error::Error;
use crate::events::Event;
use crate::shared::{Key, Phase, Reply, Shared};

/// Bounds the goodbye: the close frame or FIN, and the wait for the server's own close.
const GOODBYE_LIMIT: Duration = Duration::from_secs(2);
/// Floor on the server's `timeout_ms`, so a nonsensical `welcome` cannot make the task spin.
const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// How one connection ended.
#[derive(Debug)]
enum Ended {
    /// On purpose: `close()` or the server's `shutdown`.
    Closed,
    /// For a reason reconnecting would not cure: a fatal server error, a broken protocol.
    Fatal(Error),
    /// Unexpectedly: reset, closed under us, silent too long. Worth a reconnection.
    Dropped(Error),
    /// The handle asked to move to another node (a cluster redirect).
    Move(crate::shared::Move),
    /// A queue match whose room is on another node (a `redirect` with req 0): move there
    /// and claim the seat.
    Matched(crate::shared::Redirect),
}

/// Runs the client's connection, and its successors, until the end.
pub(crate) async fn run(shared: Arc<Shared>, config: Arc<Config>, conn: Conn) {
    let mut addr = conn.addr;
    // Where a cluster redirect moved the client, tried first when reconnecting.
    let mut moved: Option<String> = None;
    let welcome = shared.lock().welcome.clone();
    let mut conn = Connection::new(conn, welcome, &config);
    let end = loop {
        let cause = match session(&shared, &mut conn).await {
            Ended::Closed => break None,
            Ended::Fatal(e) => break Some(e),
            Ended::Dropped(e) => e,
            Ended::Move(to) => {
                // Boxed, like the reconnection: rare paths stay out of the task's size.
                let result = Box::pin(move_to(&shared, &config, &mut conn, &to.addr)).await;
                if result.is_ok() {
                    moved = Some(to.addr);
                }
                let _ = to.done.send(result);
                continue;
            }
            Ended::Matched(to) => {
                let at = match config.transport {
                    rally_protocol::Transport::Tcp => to.tcp,
                    rally_protocol::Transport::WebSocket => to.ws,
                };
                match Box::pin(move_to(&shared, &config, &mut conn, &at)).await {
                    Ok(()) => {
                        moved = Some(at);
                        // Once, never retried: the ticket is single-use.
                        let mut inner = shared.lock();
                        let req = inner.next_req();
                        let ticket = to.ticket.expose();
                        if inner
                            .push(&ClientMessage::ClaimSeat { req, ticket })
                            .is_ok()
                        {
                            inner.claiming = Some(req);
                        }
                    }
                    Err(e) => {
                        shared.lock().queued = false;
                        shared.emit(Event::Error(e));
                    }
                }
                continue;
            }
        };
        if !config.reconnect {
            break Some(cause);
        }
        let token = {
            let mut inner = shared.lock();
            if inner.phase != Phase::Connected {
                // A close was asked for as the connection dropped: nothing to resume.
                break None;
            }
            inner.phase = Phase::Reconnecting;
            // Whatever was queued was meant for the old session; the requests it carried
            // fail as lost, and the retry policy sends them again on the new one.
            inner.out.clear();
            inner.fail_pending(&Error::ConnectionLost);
            // Only a seat is worth resuming: a token presented without one only earns
            // RESUME_FAILED.
            let token = inner.welcome.resume_token.expose();
            let resume = (inner.room.is_some() && !token.is_empty()).then(|| token.clone());
            (resume, inner.session_token.clone())
        };
        let (token, session) = token;
        tracing::debug!(error = %cause, resume = token.is_some(), "connection lost; reconnecting");
        shared.emit(Event::Disconnected(cause));
        let tokens = Tokens {
            resume: token.as_deref(),
            session: session.as_deref(),
        };
        let reopened = tokio::select! {
            // Boxed: the rare path should not grow every idle connection task.
            r = Box::pin(async {
                match &moved {
                    Some(at) => connect::reopen_at(&config, at, tokens).await,
                    None => connect::reopen(&config, addr, tokens).await,
                }
            }) => r,
            () = closing(&shared) => break None,
        };
        match reopened {
            Ok((new_conn, welcome)) => {
                if new_conn.addr != usize::MAX {
                    // Back on a configured address: the redirect's node is gone.
                    moved = None;
                }
                addr = new_conn.addr;
                conn = Connection::new(new_conn, welcome.clone(), &config);
                {
                    let mut inner = shared.lock();
                    if token.is_none() {
                        inner.room = None;
                    }
                    // The seat asked back: the connection follows it from here.
                    conn.set_room(inner.room.clone());
                    inner.welcome = welcome.clone();
                    if inner.phase == Phase::Reconnecting {
                        inner.phase = Phase::Connected;
                    }
                }
                shared.emit(Event::Reconnected(welcome));
            }
            Err(e) => {
                tracing::warn!(error = %e, "reconnection failed; giving up");
                break Some(e);
            }
        }
    };
    shared.finish(end);
}

/// Moves to `addr`: opens a session there (logged in with the session token, no seat to
/// resume), then says goodbye to the old one. An error when the new node cannot be
/// reached: the old connection stays.
async fn move_to(
    shared: &Shared,
    config: &Config,
    conn: &mut Connection,
    addr: &str,
) -> Result<(), Error> {
    let session = shared.lock().session_token.clone();
    let tokens = Tokens {
        resume: None,
        session: session.as_deref(),
    };
    let (new_conn, welcome) = connect::open_at(config, addr, tokens).await?;
    let mut old = std::mem::replace(conn, Connection::new(new_conn, welcome.clone(), config));
    // The old session holds no seat (its join was answered with the redirect).
    let _ = tokio::time::timeout(GOODBYE_LIMIT, old.farewell()).await;
    let mut inner = shared.lock();
    inner.welcome = welcome;
    inner.room = None;
    conn.set_room(None);
    Ok(())
}

/// Returns once a close is asked for.
async fn closing(shared: &Shared) {
    while shared.lock().phase != Phase::Closing {
        shared.wake.notified().await;
    }
}

/// Runs one connection until it ends.
async fn session(shared: &Shared, conn: &mut Connection) -> Ended {
    let limit = {
        let timeout_ms = shared.lock().welcome.timeout_ms;
        Duration::from_millis(timeout_ms.into()).max(MIN_TIMEOUT)
    };
    let ping_every = limit / 3;
    // The last keep-alive queued: it counts as sent, so the next waits a full period.
    let mut pinged = Instant::now();
    // A lazy timer: it fires at the earliest deadline it was set to, then is set again
    // from the latest send and receive times, so traffic costs no timer updates.
    let timer = tokio::time::sleep(ping_every);
    tokio::pin!(timer);
    loop {
        if conn.unwritten() == 0 {
            // Double buffering: the handle fills `inner.out` while the connection writes
            // the other buffer.
            let closing = {
                let mut inner = shared.lock();
                conn.refill(&mut inner.out);
                conn.unwritten() == 0 && inner.phase == Phase::Closing
            };
            if closing {
                // Boxed, like the reconnection: rare paths stay out of the task's size.
                let _ = tokio::time::timeout(GOODBYE_LIMIT, Box::pin(conn.farewell())).await;
                return Ended::Closed;
            }
            if let Some(to) = shared.lock().move_to.take() {
                return Ended::Move(to);
            }
        }
        tokio::select! {
            r = conn.step() => match r {
                Ok(Some(next)) => {
                    if let Some(end) = dispatch(shared, conn, next) {
                        return end;
                    }
                }
                Ok(None) => {}
                Err(e) => return ended_by(shared, e),
            },
            () = shared.wake.notified(), if conn.unwritten() == 0 => {}
            () = &mut timer => {
                let now = Instant::now();
                let last_sent = conn.last_write().max(pinged);
                if now >= conn.last_read() + limit {
                    return Ended::Dropped(Error::Timeout("the server went silent"));
                }
                if conn.unwritten() > 0 && now >= conn.last_write() + limit {
                    return Ended::Dropped(Error::Timeout("writing to the server"));
                }
                if conn.unwritten() == 0 && now >= last_sent + ping_every {
                    // Keep-alive (nonce 0, whose pong nobody waits for); it also makes a
                    // live server answer, which is how a dead one is noticed.
                    let _ = shared.lock().push(&ClientMessage::Ping { nonce: 0 });
                    pinged = now;
                }
                let last_sent = conn.last_write().max(pinged);
                timer.as_mut().reset((last_sent + ping_every).min(conn.last_read() + limit));
            }
        }
    }
}

/// How an error from the connection ends it: a drop worth reconnecting after (the
/// network failed, or the server closed the connection or counts it as dropped and holds
/// the seat: `TIMEOUT`, `SLOW_CONSUMER`), or the end (a fatal server error, a broken
/// protocol). A close under way makes every loss of the connection the expected end.
fn ended_by(shared: &Shared, e: Error) -> Ended {
    let closing = shared.lock().phase == Phase::Closing;
    ending(closing, e)
}

/// [`ended_by`], told whether a close is under way.
fn ending(closing: bool, e: Error) -> Ended {
    let lost = matches!(
        e,
        Error::Io(_) | Error::PeerClosed | Error::UnknownServerError { .. }
    );
    if lost && closing {
        return Ended::Closed;
    }
    match e {
        Error::Io(_) | Error::PeerClosed => Ended::Dropped(e),
        Error::Server {
            code: ErrorCode::Timeout | ErrorCode::SlowConsumer,
            ..
        } => Ended::Dropped(e),
        // An unknown code the server closed after, a fatal code, a broken protocol.
        _ => Ended::Fatal(e),
    }
}

/// Acts on one thing the connection read: a reply goes to the request waiting for it,
/// the rest to the events stream. Returns how the connection ends if it does.
fn dispatch(shared: &Shared, conn: &Connection, next: Next) -> Option<Ended> {
    let event = match next {
        Next::Reply { req, reply } => {
            let mut inner = shared.lock();
            // The room first: a `join` that returns finds the client in its room.
            inner.room = conn.room().cloned();
            if req == 0 {
                // Nobody asked: only a queue match sends a redirect unasked.
                return match reply {
                    Ok(Reply::Redirect(to)) => Some(Ended::Matched(to)),
                    _ => None,
                };
            }
            if inner.claiming == Some(req) {
                inner.claiming = None;
                inner.queued = false;
                let event = match reply {
                    Ok(Reply::Joined(room)) => {
                        inner.room = Some(room.clone());
                        Event::Matched(room)
                    }
                    Ok(_) => return None,
                    Err(e) => Event::Error(e),
                };
                drop(inner);
                shared.emit(event);
                return None;
            }
            if let Ok(Reply::Session(session)) = &reply {
                inner.session_token = Some(session.token.expose().clone());
            }
            inner.resolve(Key::Req(req), reply);
            return None;
        }
        Next::Resumed(room) => {
            let mut inner = shared.lock();
            inner.room = Some(room.clone());
            if std::mem::take(&mut inner.queued) {
                Event::Matched(room)
            } else {
                Event::Resumed(room)
            }
        }
        Next::Found(found) => match conn.lend(found) {
            Message::State(state) => Event::State(state.to_state()),
            Message::Chat(line) => Event::Chat(line),
            Message::SpectatorState(s) => Event::SpectatorState(s),
            Message::RoomClosed { room_id, reason } => {
                shared.lock().room = conn.room().cloned();
                Event::RoomClosed { room_id, reason }
            }
            Message::Pong { nonce } => {
                shared.lock().resolve(Key::Pong(nonce), Ok(Reply::Pong));
                return None;
            }
            Message::Shutdown {
                reason,
                reconnect_after,
            } => {
                {
                    // Close once what is queued is written (section 10: the client closes).
                    let mut inner = shared.lock();
                    if inner.phase == Phase::Connected {
                        inner.phase = Phase::Closing;
                    }
                }
                Event::Shutdown {
                    reason,
                    reconnect_after,
                }
            }
            Message::Matched(room) => {
                let mut inner = shared.lock();
                inner.room = Some(room.clone());
                inner.queued = false;
                Event::Matched(room)
            }
            Message::Left { room_id } => {
                let mut inner = shared.lock();
                inner.room = conn.room().cloned();
                inner.queued = true;
                Event::Left { room_id }
            }
            Message::Error(e) if e.code() == Some(ErrorCode::MatchTimeout) => {
                shared.lock().queued = false;
                Event::Error(e)
            }
            Message::Error(e) if e.code() == Some(ErrorCode::ResumeFailed) => {
                shared.lock().room = None;
                Event::ResumeFailed(e)
            }
            Message::Error(e) => Event::Error(e),
        },
        Next::Nothing => return None,
    };
    shared.emit(event);
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: ErrorCode) -> Error {
        Error::Server {
            code,
            message: "m".into(),
        }
    }

    #[test]
    fn drops_reconnect_and_fatal_errors_end() {
        let reset = Error::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        for e in [
            reset.clone(),
            Error::PeerClosed,
            server(ErrorCode::Timeout),
            server(ErrorCode::SlowConsumer),
        ] {
            assert!(matches!(ending(false, e.clone()), Ended::Dropped(_)), "{e}");
        }
        let unknown = Error::UnknownServerError {
            code: 999,
            message: "?".into(),
        };
        for e in [
            unknown.clone(),
            server(ErrorCode::ServerFull),
            server(ErrorCode::Kicked),
            Error::Protocol("bad frame".into()),
        ] {
            assert!(matches!(ending(false, e.clone()), Ended::Fatal(_)), "{e}");
        }
        // While closing, the connection going away is the goodbye; a fatal error is not.
        for e in [reset, Error::PeerClosed, unknown] {
            assert!(matches!(ending(true, e.clone()), Ended::Closed), "{e}");
        }
        assert!(matches!(
            ending(true, server(ErrorCode::BadMessage)),
            Ended::Fatal(_)
        ));
    }
}
