//! The connection task: one per client, owning the socket.
//!
//! It reads and dispatches server messages (replies to their waiting requests, the rest
//! to the events stream), writes what the handle queued, pings when the client has been
//! quiet for a third of the server's `timeout_ms`, and declares the connection dead when
//! the server has been silent for all of it. When the connection drops unexpectedly it
//! reconnects with the retry policy and presents the last resume token; it stops for
//! good after `close()`, a `shutdown`, a fatal server error, or a failed reconnection.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::time::Instant;

use crate::config::Config;
use crate::connect::{self, Conn, READ_CHUNK};
use crate::error::Error;
use crate::events::Event;
use crate::said::{follow_room, said, Said};
use crate::shared::{Key, Phase, Reply, Shared};
use crate::wire::{Inbound, Incoming};

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
}

/// Runs the client's connection, and its successors, until the end.
pub(crate) async fn run(shared: Arc<Shared>, config: Arc<Config>, mut conn: Conn) {
    let end = loop {
        let cause = match session(&shared, &mut conn).await {
            Ended::Closed => break None,
            Ended::Fatal(e) => break Some(e),
            Ended::Dropped(e) => e,
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
        let reopened = tokio::select! {
            // Boxed: the rare path should not grow every idle connection task.
            r = Box::pin(connect::reopen(&config, conn.addr, token.as_deref(), session.as_deref())) => r,
            () = closing(&shared) => break None,
        };
        match reopened {
            Ok((new_conn, welcome)) => {
                conn = new_conn;
                {
                    let mut inner = shared.lock();
                    if token.is_none() {
                        inner.room = None;
                    }
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

/// Returns once a close is asked for.
async fn closing(shared: &Shared) {
    while shared.lock().phase != Phase::Closing {
        shared.wake.notified().await;
    }
}

/// Runs one connection until it ends.
async fn session(shared: &Shared, conn: &mut Conn) -> Ended {
    let limit = {
        let timeout_ms = shared.lock().welcome.timeout_ms;
        Duration::from_millis(timeout_ms.into()).max(MIN_TIMEOUT)
    };
    let ping_every = limit / 3;
    let Conn {
        stream, inbound, ..
    } = conn;
    let (mut rd, mut wr) = stream.split();
    // Double buffering: the handle fills `inner.out` while this writes `wbuf`.
    let mut wbuf: Vec<u8> = Vec::new();
    let mut wpos = 0;
    let mut last_sent = Instant::now();
    let mut last_recv = Instant::now();
    // An `error` with a code this SDK does not know is fatal exactly when the server
    // closes right after it (`docs/protocol.md` section 9).
    let mut unknown_error: Option<Error> = None;
    // A lazy timer: it fires at the earliest deadline it was set to, then is set again
    // from the latest send and receive times, so traffic costs no timer updates.
    let timer = tokio::time::sleep(ping_every);
    tokio::pin!(timer);
    loop {
        loop {
            match inbound.next() {
                Ok(Some(incoming)) => {
                    if let Some(end) = dispatch(shared, incoming, &mut unknown_error) {
                        return end;
                    }
                }
                Ok(None) => break,
                Err(e) => return Ended::Fatal(e),
            }
        }
        if wpos == wbuf.len() {
            wbuf.clear();
            wpos = 0;
            let bye = {
                let mut inner = shared.lock();
                std::mem::swap(&mut inner.out, &mut wbuf);
                (wbuf.is_empty() && inner.phase == Phase::Closing).then(|| inner.close_frame())
            };
            if let Some(bye) = bye {
                // Boxed, like the reconnection: rare paths stay out of the task's size.
                Box::pin(goodbye(&mut rd, &mut wr, inbound, &bye)).await;
                return Ended::Closed;
            }
        }
        if inbound.buf.capacity() - inbound.buf.len() < READ_CHUNK / 4 {
            inbound.buf.reserve(READ_CHUNK);
        }
        tokio::select! {
            r = rd.read_buf(&mut inbound.buf) => match r {
                Ok(0) => return peer_gone(shared, unknown_error, Error::PeerClosed),
                Ok(_) => last_recv = Instant::now(),
                Err(e) => return peer_gone(shared, unknown_error, e.into()),
            },
            r = wr.write(&wbuf[wpos..]), if wpos < wbuf.len() => match r {
                Ok(0) => return Ended::Dropped(Error::PeerClosed),
                Ok(n) => {
                    wpos += n;
                    last_sent = Instant::now();
                }
                Err(e) => return peer_gone(shared, unknown_error, e.into()),
            },
            () = shared.wake.notified(), if wpos == wbuf.len() => {}
            () = &mut timer => {
                let now = Instant::now();
                if now >= last_recv + limit {
                    return Ended::Dropped(Error::Timeout("the server went silent"));
                }
                if wpos < wbuf.len() && now >= last_sent + limit {
                    return Ended::Dropped(Error::Timeout("writing to the server"));
                }
                if wpos == wbuf.len() && now >= last_sent + ping_every {
                    // Keep-alive (nonce 0, whose pong nobody waits for); it also makes a
                    // live server answer, which is how a dead one is noticed.
                    let _ = shared
                        .lock()
                        .push(&rally_protocol::ClientMessage::Ping { nonce: 0 });
                    last_sent = now;
                }
                timer.as_mut().reset((last_sent + ping_every).min(last_recv + limit));
            }
        }
    }
}

/// The connection closed or failed under us: a drop, unless a close was under way or
/// an unknown error said it was coming.
fn peer_gone(shared: &Shared, unknown_error: Option<Error>, cause: Error) -> Ended {
    if shared.lock().phase == Phase::Closing {
        return Ended::Closed;
    }
    match unknown_error {
        Some(e) => Ended::Fatal(e),
        None => Ended::Dropped(cause),
    }
}

/// Says goodbye: a close frame (WebSocket) and a FIN, then reads and discards until the
/// server closes too, so it has seen everything sent before. Bounded; errors are moot.
async fn goodbye(rd: &mut ReadHalf<'_>, wr: &mut WriteHalf<'_>, inbound: &mut Inbound, bye: &[u8]) {
    let _ = tokio::time::timeout(GOODBYE_LIMIT, async {
        wr.write_all(bye).await?;
        wr.shutdown().await?;
        loop {
            inbound.buf.clear();
            inbound.buf.reserve(READ_CHUNK);
            if rd.read_buf(&mut inbound.buf).await? == 0 {
                return Ok::<(), std::io::Error>(());
            }
        }
    })
    .await;
}

/// Acts on one decoded unit; returns how the connection ends if it does.
fn dispatch(
    shared: &Shared,
    incoming: Incoming,
    unknown_error: &mut Option<Error>,
) -> Option<Ended> {
    let said = said(incoming);
    if said.is_message() {
        *unknown_error = None;
    }
    follow_room(&mut shared.lock().room, &said);
    match said {
        Said::Reply { req, reply } => {
            let mut inner = shared.lock();
            if let Ok(Reply::Session(session)) = &reply {
                inner.session_token = Some(session.token.expose().clone());
            }
            inner.resolve(Key::Req(req), reply);
        }
        Said::Resumed(room) => shared.emit(Event::Resumed(room)),
        Said::Pong(nonce) => shared.lock().resolve(Key::Pong(nonce), Ok(Reply::Pong)),
        Said::State(state) => shared.emit(Event::State(state)),
        Said::Chat(line) => shared.emit(Event::Chat(line)),
        Said::RoomClosed { room_id, reason } => {
            shared.emit(Event::RoomClosed { room_id, reason });
        }
        Said::Shutdown {
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
            shared.emit(Event::Shutdown {
                reason,
                reconnect_after,
            });
        }
        Said::Error(e) => shared.emit(Event::Error(e)),
        Said::UnknownError(e) => {
            *unknown_error = Some(e.clone());
            shared.emit(Event::Error(e));
        }
        Said::ResumeFailed(e) => {
            shared.lock().room = None;
            shared.emit(Event::ResumeFailed(e));
        }
        // The server counts these as drops and holds the seat: come back and take it.
        Said::Dropped(e) => return Some(Ended::Dropped(e)),
        Said::Fatal(e) => return Some(Ended::Fatal(e)),
        Said::Ping(payload) => shared.lock().push_pong(&payload),
        Said::Close => return Some(peer_gone(shared, unknown_error.take(), Error::PeerClosed)),
        Said::Nothing | Said::Ignored => {}
    }
    None
}
