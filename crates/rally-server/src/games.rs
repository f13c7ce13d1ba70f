//! The registry of room kinds: which game a kind runs, made from the room's options, and
//! the kind's matchmaking rules ([`KindRules`]) (play floor; imports nothing of the crate).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rally_game::{Game, Refusal, RoomOptions};

/// Makes a fresh game value for each new room of one kind from the room's options, or
/// refuses the options. Rooms of every kind share one room task implementation through
/// `Box<dyn Game>` (the trait is object-safe).
pub(crate) type Factory = Arc<dyn Fn(&RoomOptions) -> Result<Box<dyn Game>, Refusal> + Send + Sync>;

/// Most filter keys a kind may declare: each is compared on every `join_or_create`.
pub const MAX_FILTER_KEYS: usize = 8;

/// A kind's matchmaking rules, declared when it is registered ([`Games::register_kind`]).
#[derive(Debug, Clone, PartialEq)]
pub struct KindRules {
    max_players: usize,
    min_players: usize,
    filter_keys: Vec<String>,
    teams: u32,
    queue: Option<QueueRules>,
}

impl KindRules {
    /// Rooms of `max_players` seats (at least 1), starting with the first player, matched
    /// by kind alone, without teams or a rating queue.
    pub fn new(max_players: usize) -> Self {
        KindRules {
            max_players: max_players.max(1),
            min_players: 1,
            filter_keys: Vec::new(),
            teams: 0,
            queue: None,
        }
    }

    /// The room's game is told to start ([`Game::start`]) once this many players sit in
    /// it (clamped to 1..=max_players).
    pub fn min_players(mut self, n: usize) -> Self {
        self.min_players = n.clamp(1, self.max_players);
        self
    }

    /// The option keys `join_or_create` matches on: a player lands only in a room whose
    /// options have equal values for each of them (an absent key matches only absent).
    /// At most [`MAX_FILTER_KEYS`]; more are ignored.
    pub fn filter_keys(mut self, keys: &[&str]) -> Self {
        self.filter_keys = keys
            .iter()
            .take(MAX_FILTER_KEYS)
            .map(|k| (*k).to_owned())
            .collect();
        self
    }

    /// Players are spread over `n` teams (numbered from 1; `joined` carries the team).
    /// 0 or 1: no teams.
    pub fn teams(mut self, n: u32) -> Self {
        self.teams = if n <= 1 { 0 } else { n };
        self
    }

    /// Rooms of this kind can also be filled by the rating queue, with these settings.
    pub fn queue(mut self, rules: QueueRules) -> Self {
        self.queue = Some(rules);
        self
    }

    /// Seats per room.
    pub fn max(&self) -> usize {
        self.max_players
    }

    /// Players a room needs before its game starts.
    pub fn min(&self) -> usize {
        self.min_players
    }

    /// The option keys `join_or_create` matches on.
    pub fn keys(&self) -> &[String] {
        &self.filter_keys
    }

    /// Teams per room; 0 when the kind has none.
    pub fn team_count(&self) -> u32 {
        self.teams
    }

    /// The rating queue's settings, if the kind has a queue.
    pub fn queue_rules(&self) -> Option<&QueueRules> {
        self.queue.as_ref()
    }
}

/// How the rating queue matches players of one kind: ratings within a tolerance that
/// widens the longer a ticket waits, up to a cap, and a timeout.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueRules {
    /// The tolerance (largest rating difference in one match) for a ticket that just
    /// arrived.
    pub tolerance: f64,
    /// How much the tolerance grows per second of waiting.
    pub widen_per_second: f64,
    /// The tolerance never grows past this.
    pub max_tolerance: f64,
    /// Players per match; `None`: the kind's minimum players.
    pub match_size: Option<usize>,
    /// A ticket waiting this long gets `MATCH_TIMEOUT`.
    pub timeout: Duration,
}

impl Default for QueueRules {
    fn default() -> Self {
        QueueRules {
            tolerance: 100.0,
            widen_per_second: 50.0,
            max_tolerance: 1000.0,
            match_size: None,
            timeout: Duration::from_secs(60),
        }
    }
}

/// One registered room kind.
#[derive(Clone)]
pub(crate) struct Kind {
    /// Seats per room (the rules' `max`).
    pub(crate) max_players: usize,
    pub(crate) rules: KindRules,
    pub(crate) factory: Factory,
}

/// The room kinds a server offers. Build it with [`Games::register`] (a game without
/// options) or [`Games::register_kind`] (options and rules), and hand it to the server
/// builder.
#[derive(Clone, Default)]
pub struct Games {
    kinds: HashMap<String, Kind>,
}

impl std::fmt::Debug for Games {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not derived: a kind's factory is a closure; the kind names say enough.
        f.debug_list().entries(self.kinds.keys()).finish()
    }
}

impl Games {
    /// No games yet.
    pub fn new() -> Self {
        Games::default()
    }

    /// Offers rooms of `kind`, each with `max_players` seats (at least 1), each running a
    /// game made by `make`, which ignores the room's options. Registering a kind again
    /// replaces it.
    pub fn register<G, F>(&mut self, kind: &str, max_players: usize, make: F) -> &mut Self
    where
        G: Game,
        F: Fn() -> G + Send + Sync + 'static,
    {
        self.register_kind(kind, KindRules::new(max_players), move |_| Ok(make()))
    }

    /// Offers rooms of `kind` under `rules`, each running a game made by `make` from the
    /// room's options; `make` may refuse the options (the client gets `BAD_OPTIONS` with
    /// the refusal's text). Registering a kind again replaces it.
    pub fn register_kind<G, F>(&mut self, kind: &str, rules: KindRules, make: F) -> &mut Self
    where
        G: Game,
        F: Fn(&RoomOptions) -> Result<G, Refusal> + Send + Sync + 'static,
    {
        let factory: Factory =
            Arc::new(move |options| make(options).map(|g| Box::new(g) as Box<dyn Game>));
        self.kinds.insert(
            kind.to_owned(),
            Kind {
                max_players: rules.max(),
                rules,
                factory,
            },
        );
        self
    }

    /// A fresh game of `kind` made from `options` (raw MessagePack, as a recording's
    /// header keeps them), as a new room gets it (`rally replay` runs recordings on it).
    /// `None` for an unknown kind, options that do not parse, or options the game refuses.
    pub fn make(&self, kind: &str, options: &[u8]) -> Option<Box<dyn Game>> {
        let options = rally_game::RoomOptions::parse(options).ok()?;
        self.kinds
            .get(kind)
            .and_then(|k| (k.factory)(&options).ok())
    }

    pub(crate) fn get(&self, kind: &str) -> Option<&Kind> {
        self.kinds.get(kind)
    }

    /// The rules of `kind`, if it is registered.
    pub fn rules(&self, kind: &str) -> Option<&KindRules> {
        self.kinds.get(kind).map(|k| &k.rules)
    }

    /// The registered kind names, sorted.
    pub fn kinds(&self) -> Vec<String> {
        let mut v: Vec<String> = self.kinds.keys().cloned().collect();
        v.sort();
        v
    }
}
