//! Rally's client SDK: an async (tokio) client for game clients, tools and bots.
//!
//! [`Client::connect`] opens a session over raw TCP or WebSocket (trying several server
//! addresses at once when given more than one), and returns the [`Client`] handle, used
//! to join a room, send inputs and make requests, and the [`Events`] stream, which
//! yields the room's states and everything else the server says unprompted.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use rally_client::{Client, Config, Event};
//!
//! # async fn demo() -> Result<(), rally_client::Error> {
//! let (client, mut events) = Client::connect(Config::new("127.0.0.1:7000")).await?;
//! let room = client.join("arena").await?;
//! println!("player {} in room {}", room.player_id, room.room_id);
//! // [dx, dy] = [1.0, 0.0] as MessagePack: one input, sent without waiting on the network.
//! client.send_input(1, &[0x92, 0xca, 0x3f, 0x80, 0, 0, 0])?;
//! while let Some(event) = events.next().await {
//!     match event {
//!         Event::State(s) => println!("tick {} applied up to input {}", s.tick, s.last_seq),
//!         Event::Closed(_) => break,
//!         _ => {}
//!     }
//! }
//! client.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! A connection that drops unexpectedly is reopened with the retry policy and the seat
//! taken back with the last `welcome`'s resume token (`docs/protocol.md` section 11a); the
//! events stream goes on across it and tells what happened ([`Event::Disconnected`],
//! [`Event::Reconnected`], [`Event::Resumed`] or [`Event::ResumeFailed`]).
//!
//! In a cluster (`docs/cluster.md`), a `join` the server answers with a redirect is
//! followed inside [`Client::join`]: the client moves its connection to the node holding
//! the seat and claims it with the ticket (`docs/protocol.md` section 11b); the low-level
//! [`Connection`] hands the redirect to its caller instead ([`Connection::join_or_redirect`],
//! [`Connection::connect_at`], [`Connection::claim_seat`]).
//!
//! One client is one tokio task (driving a [`Connection`], below), one shared state and
//! two small buffers: about 4 KB of memory per client playing in an arena room (measured
//! with 4,000 bots in one process, before the task ran on a `Connection`, which added
//! about 350 bytes to it), so a load generator can run thousands of them.
//!
//! # The low-level connection
//!
//! [`Connection`] is the same session without the machinery: the same handshake over
//! the same transports, then no task, no lock, no channel and no reconnection. The task
//! that owns it encodes inputs into its write buffer, flushes, and `recv`s the next
//! server message, a state lent from the read buffer without a copy. It is what a bot
//! swarm wants (`rally bots` runs one task per bot on it); keep-alive and resuming after
//! a drop are then the caller's business. The [`Client`]'s task is such a caller: it
//! reads every server message through its `Connection`, so both decode and dispatch
//! what the server says in one place.
//!
//! # Layout
//! - [`config`]: what to connect to, over which transport, and every timeout.
//! - [`error`]: the error type, and which errors are worth retrying.
//! - [`retry`](mod@retry): the retry policy (SPEC.md section 2) as a reusable function.
//! - `wire`: framing of outgoing messages and decoding of incoming ones, per transport.
//! - `upgrade`: the client side of the WebSocket upgrade.
//! - `connect`: opening one connection through `welcome`, and racing several addresses.
//! - `said`: what one server message means, classified once.
//! - `ask`: the requests (login, join and the other ways into a room, list_rooms, leave,
//!   chat), each written once: its message and the reply it wants.
//! - [`connection`]: the [`Connection`]: one session driven by the caller's task; the
//!   one place that reads the socket and dispatches what the server says.
//! - `shared`: the state the client handle and the connection task share.
//! - [`client`]: the [`Client`] handle: join (by kind, options, id or code), create,
//!   list rooms, inputs, chat, leave, ping, close.
//! - `driver`: the connection task, owning a [`Connection`]: its results become replies
//!   and events; keep-alive and reconnection.
//! - [`events`]: the [`Events`] stream and what it yields.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

mod ask;
pub mod client;
pub mod config;
mod connect;
pub mod connection;
mod driver;
pub mod error;
pub mod events;
pub mod retry;
mod said;
mod shared;
mod upgrade;
mod wire;

pub use client::{Client, Room, RoomInfo, RoomPage, Spectating, Welcome};
pub use config::{Config, Transport};
pub use connection::{Connection, Message, Parts, Seat, Session, StateRef};
pub use error::Error;
pub use events::{ChatLine, Event, Events, SpectatorState, State};
pub use rally_protocol::{ErrorCode, Redacted};
pub use retry::{retry, RetryPolicy};
pub use shared::Redirect;
