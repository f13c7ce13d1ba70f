//! The matchmaking queue over real sockets: close ratings are matched first and the
//! tolerance widens until a far pair meets; a party of three lands in one match on one
//! team; a lone ticket times out with `MATCH_TIMEOUT`; `leave_queue` and a disconnect take
//! a player out; the queue's refusals and its metrics.

mod common;

use std::time::{Duration, Instant};

use common::{admin_config, config, scrape_until, Client, TestServer};
use rally_server::game::{Game, PlayerId, Refusal, Tick};
use rally_server::protocol::{ClientMessage, ErrorCode, ServerMessage};
use rally_server::{Games, KindRules, QueueRules, Server};

/// A game that seats anyone and does nothing: the tests are about who sits where.
struct Idle;

impl Game for Idle {
    fn join(&mut self, _: PlayerId) -> Result<(), Refusal> {
        Ok(())
    }
    fn leave(&mut self, _: PlayerId) {}
    fn input(&mut self, _: PlayerId, _: u32, _: &[u8]) -> Result<(), Refusal> {
        Ok(())
    }
    fn tick(&mut self, _: &mut Tick<'_>) {}
}

/// `duel`: two players a match, tolerance 50 widening 1000 a second; `squad`: two teams
/// of three; `lone`: two players, a one-second timeout; `lobby`: a room for a party to
/// meet in, no queue.
fn games() -> Games {
    let mut g = Games::new();
    let duel = QueueRules {
        tolerance: 50.0,
        widen_per_second: 1000.0,
        max_tolerance: 10_000.0,
        match_size: Some(2),
        timeout: Duration::from_secs(30),
    };
    g.register_kind("duel", KindRules::new(2).queue(duel.clone()), |_| Ok(Idle));
    g.register_kind(
        "squad",
        KindRules::new(6).teams(2).queue(QueueRules {
            match_size: Some(6),
            ..duel.clone()
        }),
        |_| Ok(Idle),
    );
    g.register_kind(
        "lone",
        KindRules::new(2).queue(QueueRules {
            timeout: Duration::from_secs(1),
            ..duel
        }),
        |_| Ok(Idle),
    );
    g.register_kind("lobby", KindRules::new(3), |_| Ok(Idle));
    g
}

async fn start() -> TestServer {
    start_with(config()).await
}

async fn start_with(config: rally_server::Config) -> TestServer {
    TestServer::start_with(Server::builder(config, games())).await
}

/// The empty options map.
const NO_OPTIONS: &[u8] = &[0x80];

async fn queue(
    c: &mut Client,
    req: u32,
    kind: &str,
    rating: f64,
    party: bool,
) -> Result<(), ErrorCode> {
    match c
        .call(ClientMessage::Queue {
            req,
            kind,
            options: NO_OPTIONS,
            rating,
            party,
        })
        .await
    {
        Ok(ServerMessage::Ok { .. }) => Ok(()),
        Ok(other) => panic!("queue answered {other:?}"),
        Err((code, _)) => Err(code),
    }
}

/// The match's `joined` (req 0): room id, team.
async fn matched(c: &mut Client) -> (u64, u32) {
    c.expect("the match's joined (req 0)", |m| match m {
        ServerMessage::Joined {
            req: 0,
            room_id,
            team,
            ..
        } => Some((*room_id, *team)),
        ServerMessage::Error { code, message, .. } => panic!("{code:?}: {message}"),
        _ => None,
    })
    .await
}

/// Nothing but states (and pongs) arrives for `for_`: in particular no match.
async fn no_match(c: &mut Client, for_: Duration) {
    let until = tokio::time::Instant::now() + for_;
    while let Ok(m) = tokio::time::timeout_at(until, c.recv()).await {
        match m {
            Some(ServerMessage::Joined { .. }) => panic!("matched: {m:?}"),
            Some(ServerMessage::Error { code, .. }) => panic!("error {code:?}"),
            Some(_) => {}
            None => panic!("connection closed"),
        }
    }
}

async fn close_all(clients: Vec<Client>) {
    for c in clients {
        c.close().await;
    }
}

#[tokio::test]
async fn close_ratings_are_matched_first_and_the_tolerance_widens_for_a_far_pair() {
    let server = start().await;
    let mut players = Vec::new();
    for _ in 0..4 {
        players.push(Client::tcp_hello(server.tcp).await.0);
    }
    let [a, b, c, d] = &mut players[..] else {
        unreachable!()
    };
    // B and C are 5 apart: the first pass pairs them. A and D are 400 apart: within the
    // base tolerance (50) of neither, they meet once it has widened (1000 a second).
    // B and C queue first, so a pass between two requests never sees A without C.
    queue(b, 1, "duel", 1030.0, false).await.unwrap();
    queue(c, 1, "duel", 1035.0, false).await.unwrap();
    let queued = Instant::now();
    queue(a, 1, "duel", 1000.0, false).await.unwrap();
    queue(d, 1, "duel", 1400.0, false).await.unwrap();
    let (room_b, team) = matched(b).await;
    let (room_c, _) = matched(c).await;
    assert_eq!(room_b, room_c, "the closest pair shares a room");
    assert_eq!(team, 0, "duel has no teams");
    let (room_a, _) = matched(a).await;
    let (room_d, _) = matched(d).await;
    let waited = queued.elapsed();
    assert_eq!(room_a, room_d);
    assert_ne!(room_a, room_b);
    assert!(
        waited >= Duration::from_millis(300),
        "A and D (400 apart) met only after the tolerance widened: {waited:?}"
    );
    close_all(players).await;
    assert!(server.shutdown().await.drained);
}

#[tokio::test]
async fn a_party_of_three_is_matched_together_on_one_team() {
    let server = start().await;
    let mut party = Vec::new();
    let mut lobby = None;
    for _ in 0..3 {
        let (mut c, _) = Client::tcp_hello(server.tcp).await;
        let (room, _) = c.join("lobby").await;
        assert_eq!(
            *lobby.get_or_insert(room),
            room,
            "the party meets in one lobby"
        );
        party.push(c);
    }
    let lobby = lobby.unwrap();
    queue(&mut party[0], 2, "squad", 1000.0, true)
        .await
        .unwrap();
    let mut solos = Vec::new();
    for rating in [990.0, 1005.0, 1010.0] {
        let (mut c, _) = Client::ws_hello(server.ws).await;
        queue(&mut c, 1, "squad", rating, false).await.unwrap();
        solos.push(c);
    }
    let mut party_seats = Vec::new();
    for c in &mut party {
        let left = c
            .expect("left (req 0) for the lobby", |m| match m {
                ServerMessage::Left { req: 0, room_id } => Some(*room_id),
                ServerMessage::Joined { req: 0, .. } => panic!("joined before left"),
                _ => None,
            })
            .await;
        assert_eq!(left, lobby);
        party_seats.push(matched(c).await);
    }
    let (room, team) = party_seats[0];
    assert_ne!(team, 0, "squad has teams");
    assert!(
        party_seats.iter().all(|s| *s == (room, team)),
        "same room, same team: {party_seats:?}"
    );
    for c in &mut solos {
        let (r, t) = matched(c).await;
        assert_eq!(r, room);
        assert_ne!(t, team, "the solos fill the other team");
        assert_ne!(t, 0);
    }
    // The lobby emptied and ended; the party plays on in the match's room.
    common::eventually("the lobby ends", || server.handle.rooms() == 1).await;
    close_all(party).await;
    close_all(solos).await;
    assert!(server.shutdown().await.drained);
}

#[tokio::test]
async fn a_lone_ticket_times_out_and_the_connection_stays() {
    let server = start().await;
    let (mut c, _) = Client::tcp_hello(server.tcp).await;
    queue(&mut c, 1, "lone", 1000.0, false).await.unwrap();
    let (code, _, req) = c.expect_error().await;
    assert_eq!((code, req), (ErrorCode::MatchTimeout, 0));
    let r = c.call(ClientMessage::LeaveQueue { req: 2 }).await;
    assert_eq!(r.unwrap_err().0, ErrorCode::NotInQueue, "out of the queue");
    queue(&mut c, 3, "lone", 1000.0, false).await.unwrap();
    c.close().await;
    assert!(server.shutdown().await.drained);
}

#[tokio::test]
async fn leave_queue_and_a_disconnect_take_players_out() {
    let server = TestServer::start_with(Server::builder(admin_config(), games())).await;
    let (mut a, _) = Client::tcp_hello(server.tcp).await;
    let (mut b, _) = Client::tcp_hello(server.tcp).await;
    queue(&mut a, 1, "duel", 1000.0, false).await.unwrap();
    assert_eq!(
        queue(&mut a, 2, "duel", 1000.0, false).await,
        Err(ErrorCode::AlreadyQueued)
    );
    let joined = a
        .call(ClientMessage::Join {
            req: 3,
            kind: "lobby",
        })
        .await;
    assert_eq!(
        joined.unwrap_err().0,
        ErrorCode::AlreadyQueued,
        "no joins while queued"
    );
    assert!(matches!(
        a.call(ClientMessage::LeaveQueue { req: 4 }).await,
        Ok(ServerMessage::Ok { req: 4 })
    ));
    assert_eq!(
        a.call(ClientMessage::LeaveQueue { req: 5 })
            .await
            .unwrap_err()
            .0,
        ErrorCode::NotInQueue
    );
    // A left: B, who queues now, waits alone (several passes) instead of meeting A.
    queue(&mut b, 1, "duel", 1000.0, false).await.unwrap();
    no_match(&mut a, Duration::from_millis(800)).await;
    no_match(&mut b, Duration::from_millis(10)).await;
    // C queues and drops: a pass later the queue holds B alone, and D meets B.
    let (mut c, _) = Client::ws_hello(server.ws).await;
    queue(&mut c, 1, "duel", 5000.0, false).await.unwrap();
    scrape_until(server.admin, "two players queued", |s| {
        s.value("rally_queue_players", &[("kind", "duel")]) == 2.0
    })
    .await;
    c.close().await;
    scrape_until(server.admin, "the dropped player leaves the queue", |s| {
        s.value("rally_queue_players", &[("kind", "duel")]) == 1.0
    })
    .await;
    let (mut d, _) = Client::tcp_hello(server.tcp).await;
    queue(&mut d, 1, "duel", 5000.0, false).await.unwrap();
    let (room_b, _) = matched(&mut b).await;
    let (room_d, _) = matched(&mut d).await;
    assert_eq!(room_b, room_d);
    let s = scrape_until(server.admin, "the waits are counted", |s| {
        s.value(
            "rally_queue_wait_seconds_count",
            &[("kind", "duel"), ("outcome", "matched")],
        ) == 2.0
    })
    .await;
    assert_eq!(s.value("rally_queue_players", &[("kind", "duel")]), 0.0);
    close_all(vec![a, b, d]).await;
    assert!(server.shutdown().await.drained);
}

#[tokio::test]
async fn the_queue_refuses_what_it_cannot_match() {
    let server = start().await;
    let (mut c, _) = Client::tcp_hello(server.tcp).await;
    assert_eq!(
        queue(&mut c, 1, "lobby", 1.0, false).await,
        Err(ErrorCode::InvalidArgument),
        "a kind without a queue"
    );
    assert_eq!(
        queue(&mut c, 2, "nope", 1.0, false).await,
        Err(ErrorCode::UnknownRoomKind)
    );
    assert_eq!(
        queue(&mut c, 3, "duel", 1.0, true).await,
        Err(ErrorCode::NotInRoom),
        "a party needs a room"
    );
    let r = c
        .call(ClientMessage::Queue {
            req: 4,
            kind: "duel",
            options: &[0x01],
            rating: 1.0,
            party: false,
        })
        .await;
    assert_eq!(r.unwrap_err().0, ErrorCode::BadOptions);
    // Still a working connection, in no queue.
    assert_eq!(
        c.call(ClientMessage::LeaveQueue { req: 5 })
            .await
            .unwrap_err()
            .0,
        ErrorCode::NotInQueue
    );
    c.close().await;
    assert!(server.shutdown().await.drained);
}
