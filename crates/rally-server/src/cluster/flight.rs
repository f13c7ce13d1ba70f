//! The players a node sent to another node's rooms that the owner's figures do not hold
//! yet: what [`View`](super::view::View) adds to an owner's load while joins are on their
//! way, and the owner's count of grants that comes with each answer.

/// What one owner's figures include of the reservations this node asked of it.
///
/// Without it a player on its way would count twice: the owner's answer to one
/// reservation says the room's and the node's load *now*, which already holds the seats
/// it granted to this node's other reservations whose answers are still on their way;
/// those are also counted on the way. Under bursts of joins a room then looks full when
/// it is not, and the next player gets a new room elsewhere. So the owner says, with
/// each answer, how many reservations of this node it has granted in all (`granted`,
/// under its `epoch`, a number fixed for the owner's process), and the players on their
/// way it does not yet count are those asked less those refused or granted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Flight {
    /// The owner's process the counts below are about (0: none answered yet).
    pub(super) epoch: u64,
    /// Reservations asked (placements counted on the way).
    pub(super) sent: u64,
    /// Of those, answered: granted, refused or failed.
    pub(super) answered: u64,
    /// Of those, refused or failed.
    failed: u64,
    /// Granted in all, as of the owner's latest answer.
    granted: u64,
}

impl Flight {
    /// Players on their way that the owner's latest figures do not include.
    pub(super) fn unseen(&self) -> u32 {
        let n = self
            .sent
            .saturating_sub(self.failed)
            .saturating_sub(self.granted);
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// One answer: `granted` in all under `epoch` for a seat (`Some`), or none.
    pub(super) fn answer(&mut self, seat: Option<Granted>) {
        self.answered += 1;
        match seat {
            None => self.failed += 1,
            // An owner that does not count (an older node): this grant is all we know.
            Some(Granted { epoch: 0, .. }) => self.granted += 1,
            Some(g) if g.epoch != self.epoch => {
                // A restarted owner (or its first answer): start over from what is on
                // its way, this answer among it.
                let pending = self.sent.saturating_sub(self.answered - 1);
                *self = Flight {
                    epoch: g.epoch,
                    sent: pending,
                    answered: 1,
                    failed: 0,
                    granted: g.granted,
                };
            }
            Some(g) => self.granted = self.granted.max(g.granted),
        }
        if self.answered >= self.sent {
            // Nothing on its way: whatever a lost answer left uncounted is forgotten.
            self.sent = self.granted;
            self.answered = self.granted;
            self.failed = 0;
        }
    }
}

/// The owner's count of the reservations it granted a node, with its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Granted {
    /// The owner's process (0: an older owner that does not count).
    pub(crate) epoch: u64,
    /// Reservations of the asking node it granted in all, this one included.
    pub(crate) granted: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_answers_and_a_restarted_owner_do_not_skew_the_count_for_long() {
        // Three asked; the first answer is lost (it was granted): counted as failed.
        let mut f = Flight {
            sent: 3,
            ..Flight::default()
        };
        f.answer(None);
        f.answer(Some(Granted {
            epoch: 5,
            granted: 3,
        }));
        // Granted counts the lost one too: nothing on the way is believed (one too few
        // at worst while answers are out) ...
        assert_eq!(f.unseen(), 0);
        f.answer(Some(Granted {
            epoch: 5,
            granted: 2,
        }));
        // ... and once every answer is in, the counts start over from the owner's.
        assert_eq!((f.sent, f.answered, f.failed, f.unseen()), (3, 3, 0, 0));
        f.sent += 2;
        assert_eq!(f.unseen(), 2);
        // The owner restarted: its count starts from 1 under a new epoch.
        f.answer(Some(Granted {
            epoch: 9,
            granted: 1,
        }));
        assert_eq!((f.epoch, f.unseen()), (9, 1));
        f.answer(Some(Granted {
            epoch: 9,
            granted: 2,
        }));
        assert_eq!(f.unseen(), 0);
        // An older owner says no count: each grant is all that is known.
        let mut old = Flight {
            sent: 2,
            ..Flight::default()
        };
        old.answer(Some(Granted::default()));
        assert_eq!(old.unseen(), 1);
    }
}
