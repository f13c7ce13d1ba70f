//! A bot's way into a room, through the SDK's [`Connection`]: connect (from its source
//! address, if the run has them, with the SDK's retry policy), take a seat the way the run
//! asks (logging in first as the bot's own device when the server wants it), and in a
//! cluster follow the `redirect` (docs/protocol.md section 11b): connect to the node it
//! names, logged in with the session token if there is one, and `claim_seat` with the
//! ticket. The time from the start of the connect to the seat is the bot's join time.
//!
//! Entering happens once per bot, so it may wait and allocate; what it hands its group
//! is the bare socket ([`Entered`]), which the group then drives without the SDK.

use std::sync::Arc;

use rally_client::{Config, Connection, Error, ErrorCode, Parts, Redirect, Seat, Transport};
use tokio::time::{self, Instant};

use crate::config::{BotsConfig, Entry};
use crate::stats::Stats;

/// A bot in its room, ready to play.
#[derive(Debug)]
pub(crate) struct Entered {
    pub(crate) id: u32,
    /// The socket of the seat's session, and the bytes buffered either way.
    pub(crate) parts: Parts,
    /// The server's `max_message_bytes`.
    pub(crate) max_body: usize,
    /// When the seat was taken.
    pub(crate) joined: Instant,
}

/// What kind of error `e` is, for counting: short and stable.
pub(crate) fn kind(e: &Error) -> String {
    match e {
        Error::Io(io) => format!("io:{:?}", io.kind()),
        Error::Timeout(_) => "timeout".to_owned(),
        Error::Server { code, .. } => code.name().to_owned(),
        Error::UnknownServerError { code, .. } => format!("code_{code}"),
        Error::Protocol(_) => "protocol".to_owned(),
        Error::PeerClosed => "peer_closed".to_owned(),
        Error::ConnectionLost => "connection_lost".to_owned(),
        Error::Closed => "closed".to_owned(),
        Error::Backpressure => "backpressure".to_owned(),
        Error::TooLarge { .. } => "too_large".to_owned(),
        Error::InvalidPayload => "invalid_payload".to_owned(),
        Error::Config(_) => "config".to_owned(),
        Error::AllFailed(_) => "all_failed".to_owned(),
        _ => "other".to_owned(),
    }
}

/// Bot `id` enters at `start`; `None` (its error counted) when it found no seat before
/// `deadline`.
pub(crate) async fn enter(
    id: u32,
    cfg: Arc<BotsConfig>,
    stats: Arc<Stats>,
    start: Instant,
    deadline: Instant,
) -> Option<Entered> {
    // A bot whose turn would come after the end (a ramp longer than the run) does not
    // keep its group waiting.
    time::sleep_until(start.min(deadline)).await;
    if Instant::now() >= deadline {
        return None;
    }
    let mut config = Config::new(cfg.addr.clone())
        .transport(cfg.transport)
        .client_name(format!("bot-{id}"));
    if let Some(sources) = &cfg.sources {
        config = config.source_ip(sources.nth(u64::from(id)));
    }
    let connecting = Instant::now();
    let mut conn = match time::timeout_at(deadline, Connection::connect(&config)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            stats.error(format!("connect:{}", kind(&e)));
            return None;
        }
        Err(_) => {
            stats.error("connect:unfinished");
            return None;
        }
    };
    let seated = match time::timeout_at(deadline, seat(&mut conn, id, &cfg, &config, &stats)).await
    {
        Ok(Ok(seated)) => seated,
        Ok(Err(kind)) => {
            stats.error(kind);
            close(conn, &cfg, &stats).await;
            return None;
        }
        Err(_) => {
            stats.error("join:unfinished");
            close(conn, &cfg, &stats).await;
            return None;
        }
    };
    stats.record_join(connecting.elapsed());
    Stats::add(&stats.connected, 1);
    Stats::add(&stats.active, 1);
    let joined = Instant::now();
    let conn = match seated {
        Some(there) => {
            // The first node holds no seat for this bot: say goodbye to it.
            close(conn, &cfg, &stats).await;
            there
        }
        None => conn,
    };
    Some(Entered {
        id,
        max_body: conn.welcome().max_message_bytes as usize,
        parts: conn.into_parts(),
        joined,
    })
}

/// Closes a connection the bot no longer needs, bounded; its errors are counted.
async fn close(conn: Connection, cfg: &BotsConfig, stats: &Stats) {
    match time::timeout(cfg.close_timeout, conn.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(Error::Timeout(_))) | Err(_) => stats.error("close:timeout"),
        Ok(Err(e)) => stats.error(format!("close:{}", kind(&e))),
    }
}

/// Takes a seat the way the run asks (`cfg.entry`), logging in first when the server
/// requires it (as `rally serve` does by default). `Ok(None)`: seated on `conn`;
/// `Ok(Some(there))`: seated on another node after a redirect; `Err`: the error kind.
async fn seat(
    conn: &mut Connection,
    id: u32,
    cfg: &BotsConfig,
    config: &Config,
    stats: &Stats,
) -> Result<Option<Connection>, String> {
    match ask(conn, cfg).await {
        Ok(got) => return follow(got, config, None, stats).await,
        Err(e) if e.code() == Some(ErrorCode::Unauthorized) => {}
        Err(e) => return Err(format!("join:{}", kind(&e))),
    }
    // The same device id on every run: each bot is one account, created at its first run.
    let session = conn
        .login("device", &format!("rally-bot-{id:06}"))
        .await
        .map_err(|e| format!("login:{}", kind(&e)))?;
    let got = ask(conn, cfg)
        .await
        .map_err(|e| format!("join:{}", kind(&e)))?;
    follow(got, config, Some(session.token.expose()), stats).await
}

/// One request for a seat, as `cfg.entry` says; only `join` may be redirected.
async fn ask(conn: &mut Connection, cfg: &BotsConfig) -> Result<Option<Redirect>, Error> {
    match &cfg.entry {
        Entry::Join => Ok(match conn.join_or_redirect(&cfg.room_kind).await? {
            Seat::Here(_) => None,
            Seat::Elsewhere(to) => Some(to),
        }),
        Entry::Create => conn.create(&cfg.room_kind, &[], true).await.map(|_| None),
        Entry::Code(code) => conn.join_by_code(code).await.map(|_| None),
    }
}

/// Follows a redirect, if there is one: connects to the node of the seat (logged in with
/// `token`, the seat being that account's) and claims it with the ticket.
async fn follow(
    to: Option<Redirect>,
    config: &Config,
    token: Option<&String>,
    stats: &Stats,
) -> Result<Option<Connection>, String> {
    let Some(to) = to else { return Ok(None) };
    Stats::add(&stats.redirects, 1);
    let addr = match config.transport {
        Transport::Tcp => &to.tcp,
        Transport::WebSocket => &to.ws,
    };
    let mut there = Connection::connect_at(config, addr, token.map(String::as_str))
        .await
        .map_err(|e| format!("redirect:{}", kind(&e)))?;
    // A refused claim leaves no seat on either node; the connection just closes.
    there
        .claim_seat(to.ticket.expose())
        .await
        .map_err(|e| format!("claim:{}", kind(&e)))?;
    Ok(Some(there))
}
