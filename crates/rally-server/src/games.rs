//! The registry of room kinds: which game a kind runs, and how many seats its rooms have
//! (play floor; imports nothing of the crate).

use std::collections::HashMap;
use std::sync::Arc;

use rally_game::Game;

/// Makes a fresh game value for each new room of one kind. Rooms of every kind share
/// one room task implementation through `Box<dyn Game>` (the trait is object-safe).
pub(crate) type Factory = Arc<dyn Fn() -> Box<dyn Game> + Send + Sync>;

/// One registered room kind.
#[derive(Clone)]
pub(crate) struct Kind {
    /// Seats per room.
    pub(crate) max_players: usize,
    pub(crate) factory: Factory,
}

/// The room kinds a server offers. Build it with [`Games::register`] and hand it to the
/// server builder.
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
    /// game made by `make`. Registering a kind again replaces it.
    pub fn register<G, F>(&mut self, kind: &str, max_players: usize, make: F) -> &mut Self
    where
        G: Game,
        F: Fn() -> G + Send + Sync + 'static,
    {
        let factory: Factory = Arc::new(move || Box::new(make()) as Box<dyn Game>);
        self.kinds.insert(
            kind.to_owned(),
            Kind {
                max_players: max_players.max(1),
                factory,
            },
        );
        self
    }

    /// A fresh game of `kind`, as a new room gets (`rally replay` runs recordings on it).
    pub fn make(&self, kind: &str) -> Option<Box<dyn Game>> {
        self.kinds.get(kind).map(|k| (k.factory)())
    }

    pub(crate) fn get(&self, kind: &str) -> Option<&Kind> {
        self.kinds.get(kind)
    }

    /// The registered kind names, sorted.
    pub fn kinds(&self) -> Vec<String> {
        let mut v: Vec<String> = self.kinds.keys().cloned().collect();
        v.sort();
        v
    }
}
