//! Rally's match recordings, sans IO: the file format (`docs/recordings.md`), the reader
//! that refuses a corrupt or cut file with the offset it stopped at, and the replay that
//! runs a recorded match again on a fresh game and checks every recorded state hash.
//!
//! The server writes recordings (the bytes come from [`encode`]); `rally replay` and the
//! spectator stream of a finished match read them ([`Reader`], [`Replay`]). Neither side
//! touches a file here: the caller brings the bytes.
//!
//! # Layout
//! - [`encode`]: the format's constants and one function per record, writing into a `Vec`.
//! - [`reader`]: [`Reader`]: the header, then one [`Record`] at a time; [`ReadError`].
//! - [`replay`]: [`Replay`]: a game driven by records; [`verify`] a whole file.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod encode;
pub mod reader;
pub mod replay;

pub use encode::{CutReason, EndReason, Header, FORMAT_VERSION, MAGIC};
pub use rally_game::Game;
pub use reader::{ReadError, ReadErrorKind, Reader, Record};
pub use replay::{state_hash, verify, Divergence, Replay, Report, Step, VerifyError};

/// The entry point of the fuzz target: reads a whole file and ignores the outcome. A
/// panic, or a hang, here is a bug.
#[cfg(feature = "fuzzing")]
pub fn fuzz_read(bytes: &[u8]) {
    if let Ok((_, mut r)) = Reader::new(bytes) {
        while let Ok(Some(_)) = r.next_record() {}
    }
}
