//! The admin API (edge floor): list rooms and players, close a room, kick a player, drain.
//!
//! Every handler takes an [`Operator`], so none runs without the admin token. A player's
//! id here is its session id (the `session_id` of its `welcome`): unique in the server
//! for its whole life, unlike a player id, which is only unique within one room.
//! Closing and kicking are seen by the clients as protocol errors (`ROOM_CLOSED`,
//! `KICKED`); operator actions are logged at info with the operator's address.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use futures_util::future::join_all;
use rally_game::CloseReason;
use serde::{Deserialize, Serialize};

use super::{AdminEnv, ApiError, Operator};
use crate::room_handle::RoomHandle;

/// Longest operator reason accepted (sent to players in the error message).
const MAX_REASON: usize = 256;

/// One room in `GET /admin/rooms`.
#[derive(Debug, Serialize)]
pub(crate) struct RoomSummary {
    id: u64,
    kind: String,
    player_count: usize,
    max_players: usize,
    tick: u64,
    /// How long the room's last tick took, in milliseconds.
    tick_ms: f64,
    age_ms: u64,
    /// An operator or the server asked it to close; it ends within a moment.
    closing: bool,
    /// The share code (`join_by_code`).
    code: String,
    /// Kept out of listings and `join_or_create`.
    private: bool,
    /// The game locked it: it takes no joins.
    locked: bool,
    /// The options it was created with, as JSON.
    options: serde_json::Value,
    /// What its game published, as JSON (null: nothing).
    metadata: serde_json::Value,
}

fn summary(room: &RoomHandle) -> RoomSummary {
    let metadata = room.info.metadata();
    RoomSummary {
        code: room.code.to_string(),
        private: room.private,
        locked: room.info.is_locked(),
        options: room.options.to_json(),
        metadata: if metadata.is_empty() {
            serde_json::Value::Null
        } else {
            rally_game::to_json(&metadata)
        },
        id: room.id,
        kind: room.kind.to_string(),
        player_count: room.info.players(),
        max_players: room.max_players,
        tick: room.info.tick(),
        tick_ms: room.info.tick_time().as_secs_f64() * 1000.0,
        age_ms: room.info.opened.elapsed().as_millis() as u64,
        closing: room.token.is_cancelled(),
    }
}

/// `GET /admin/rooms`: every open room, oldest first.
pub(crate) async fn rooms(
    _: Operator,
    State(shared): State<Arc<AdminEnv>>,
) -> Json<serde_json::Value> {
    let rooms: Vec<RoomSummary> = shared.matchmaker.rooms().iter().map(summary).collect();
    Json(serde_json::json!({ "rooms": rooms }))
}

/// One seat in `GET /admin/rooms/{id}`.
#[derive(Debug, Serialize)]
pub(crate) struct SeatDetail {
    player_id: u32,
    /// The seated session (the player's admin id); null while the player is away.
    session_id: Option<u64>,
    name: Option<String>,
    connected: bool,
    last_seq: u32,
    /// How much longer an away player's seat is held.
    away_for_ms: Option<u64>,
    /// The seat's team (0: the kind has no teams).
    team: u32,
}

/// `GET /admin/rooms/{id}`: one room and its seats.
#[derive(Debug, Serialize)]
pub(crate) struct RoomDetail {
    #[serde(flatten)]
    room: RoomSummary,
    players: Vec<SeatDetail>,
}

pub(crate) async fn room(
    _: Operator,
    State(shared): State<Arc<AdminEnv>>,
    Path(id): Path<String>,
) -> Result<Json<RoomDetail>, ApiError> {
    let room = find_room(&shared, &id)?;
    let Some(seats) = room.inspect(shared.config.timeout()).await else {
        return Err(if room.token.is_cancelled() {
            no_room(room.id)
        } else {
            not_answering(room.id)
        });
    };
    let players = seats
        .into_iter()
        .map(|s| SeatDetail {
            player_id: s.player_id,
            session_id: s.session_id,
            name: s
                .session_id
                .and_then(|sid| shared.directory.get(sid))
                .map(|r| r.name.clone()),
            connected: s.session_id.is_some(),
            last_seq: s.last_seq,
            away_for_ms: s.away_for.map(|d| d.as_millis() as u64),
            team: s.team,
        })
        .collect();
    Ok(Json(RoomDetail {
        room: summary(&room),
        players,
    }))
}

/// Where a player sits, in `GET /admin/players`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PlayerRoom {
    id: u64,
    kind: String,
    player_id: u32,
}

/// One player in `GET /admin/players`.
#[derive(Debug, Serialize)]
pub(crate) struct PlayerSummary {
    /// The session id: what `POST /admin/players/{id}/kick` takes.
    id: u64,
    name: String,
    /// The account the session is logged in as; `None` (null) before a login.
    account_id: Option<u64>,
    transport: &'static str,
    peer: String,
    connected_ms: u64,
    room: Option<PlayerRoom>,
}

/// `GET /admin/players`: every handshaken session, by id, with its room if it sits in one.
pub(crate) async fn players(
    _: Operator,
    State(shared): State<Arc<AdminEnv>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // Rooms own their seats: ask each, all at once, each bounded.
    let rooms = shared.matchmaker.rooms();
    let limit = shared.config.timeout();
    let answers = join_all(rooms.iter().map(|r| r.inspect(limit))).await;
    let mut seated: HashMap<u64, PlayerRoom> = HashMap::new();
    for (room, seats) in rooms.iter().zip(answers) {
        let seats = match seats {
            Some(s) => s,
            // It ended meanwhile: its players are in no room now.
            None if room.token.is_cancelled() => continue,
            None => return Err(not_answering(room.id)),
        };
        for seat in seats {
            if let Some(sid) = seat.session_id {
                seated.insert(
                    sid,
                    PlayerRoom {
                        id: room.id,
                        kind: room.kind.to_string(),
                        player_id: seat.player_id,
                    },
                );
            }
        }
    }
    let mut players: Vec<PlayerSummary> = shared
        .directory
        .snapshot()
        .into_iter()
        .map(|r| PlayerSummary {
            id: r.session_id,
            name: r.name.clone(),
            account_id: r.account_id,
            transport: r.transport.name(),
            peer: r.peer.to_string(),
            connected_ms: r.since.elapsed().as_millis() as u64,
            room: seated.get(&r.session_id).cloned(),
        })
        .collect();
    players.sort_by_key(|p| p.id);
    Ok(Json(serde_json::json!({ "players": players })))
}

/// The optional body of close and kick.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    /// Why, for the players affected (added to the error message they get) and the log.
    reason: Option<String>,
}

/// Reads an optional JSON body `{"reason": "..."}` (an empty body is no reason).
fn reason(body: &Bytes) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let parsed: ActionBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("the body must be empty or a JSON object {{\"reason\": string}}: {e}"),
        )
    })?;
    match parsed.reason {
        Some(r) if r.len() > MAX_REASON || r.chars().any(char::is_control) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("reason must be at most {MAX_REASON} bytes, without control characters"),
        )),
        Some(r) if r.trim().is_empty() => Ok(None),
        r => Ok(r),
    }
}

/// `POST /admin/rooms/{id}/close`: ends the room; its players get `ROOM_CLOSED`, then
/// `room_closed`.
pub(crate) async fn close_room(
    op: Operator,
    State(shared): State<Arc<AdminEnv>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let room = find_room(&shared, &id)?;
    let why = reason(&body)?;
    if let Some(note) = &why {
        let _ = room.info.close_note.set(note.clone());
    }
    room.close(CloseReason::Closed);
    tracing::info!(
        room_id = room.id,
        kind = &*room.kind,
        players = room.info.players(),
        reason = why.as_deref(),
        operator = %op.peer,
        "admin: room closed"
    );
    Ok(Json(serde_json::json!({ "closed": room.id })))
}

/// `POST /admin/players/{id}/kick`: ends the session with `KICKED`; its seat is freed.
pub(crate) async fn kick(
    op: Operator,
    State(shared): State<Arc<AdminEnv>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let session_id = parse_id(&id, "player")?;
    let why = reason(&body)?;
    let message = match &why {
        Some(r) => format!("kicked by an operator: {r}"),
        None => "kicked by an operator".to_owned(),
    };
    if !shared.sessions.kick(session_id, message) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no connected player {session_id}"),
        ));
    }
    tracing::info!(
        session_id,
        reason = why.as_deref(),
        operator = %op.peer,
        "admin: player kicked"
    );
    Ok(Json(serde_json::json!({ "kicked": session_id })))
}

/// `POST /admin/drain`: no new players or joins from now on; rooms play on. `/readyz`
/// answers 503. There is no undo: restart the server to take players again. In cluster
/// mode this node's joins are redirected to the others, and once its last room ends it
/// leaves the membership (the cluster heartbeat sees to that).
pub(crate) async fn drain(
    op: Operator,
    State(shared): State<Arc<AdminEnv>>,
) -> Json<serde_json::Value> {
    let started = shared.matchmaker.start_draining();
    let rooms = shared.matchmaker.rooms();
    let players: usize = rooms.iter().map(|r| r.info.players()).sum();
    if started {
        tracing::info!(
            rooms = rooms.len(),
            players,
            operator = %op.peer,
            "admin: draining: no new players or joins; rooms play on"
        );
    }
    Json(serde_json::json!({
        "draining": true,
        "already_draining": !started,
        "rooms": rooms.len(),
        "players": players,
    }))
}

/// `GET /admin/cluster`: this node, and every live node with its load and rooms as the
/// membership and directory buckets say; 404 for a single node.
pub(crate) async fn cluster(
    _op: Operator,
    State(shared): State<Arc<AdminEnv>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    match &shared.cluster {
        Some(c) => Ok(Json(c.snapshot())),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "this server is a single node (cluster_nats_url is empty)",
        )),
    }
}

fn parse_id(id: &str, what: &str) -> Result<u64, ApiError> {
    id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("a {what} id is a non-negative integer, not {id:?}"),
        )
    })
}

fn find_room(shared: &AdminEnv, id: &str) -> Result<RoomHandle, ApiError> {
    let id = parse_id(id, "room")?;
    shared.matchmaker.get(id).ok_or_else(|| no_room(id))
}

fn no_room(id: u64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no open room {id}"),
    )
}

fn not_answering(room_id: u64) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("room {room_id} did not answer within timeout_ms"),
    )
}
