//! The matchmaking queue (play floor): players and parties wait here, by room kind and
//! rating, until a pass groups them into a match.
//!
//! # Layout
//! - `pool`: the sans-IO state machine: tickets, pools, the pass that forms matches.
//! - this file: the server's side of it.

// The server wires the queue in once the room registry it seats matches in exists.
#![allow(dead_code, unused_imports)]

mod pool;

pub(crate) use pool::{Limits, Match, Outcome, PoolKey, QueueRules, Refusal, Tickets, TimedOut};
