//! The recordings the admin API lists: each file's summary (written beside it when the
//! match ends) or, for a file without one (a match still playing, or a crash), what its
//! header says. Read on a blocking thread: a directory listing is synchronous IO.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::EXTENSION;

/// One recording, as listed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Summary {
    /// The file's name in `recordings_dir` (what the download takes).
    #[serde(default)]
    pub(crate) file: String,
    pub(crate) room_id: u64,
    pub(crate) kind: String,
    pub(crate) game_version: String,
    pub(crate) seed: u64,
    pub(crate) tick_hz: u32,
    pub(crate) started_unix_ms: u64,
    /// Accounts that took a seat (players who did not log in are not listed).
    pub(crate) players: Vec<u64>,
    /// How the match ended; `None` while it plays, or when the server died first.
    pub(crate) reason: Option<String>,
    pub(crate) ticks: Option<u64>,
    pub(crate) duration_ms: Option<u64>,
    /// Why the recording was cut short, if it was.
    pub(crate) cut: Option<String>,
    /// The file's size.
    pub(crate) bytes: u64,
    /// Whether the file holds the whole match (trailer written and fsynced).
    pub(crate) complete: bool,
}

/// Which recordings to list.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Filter {
    pub(crate) kind: Option<String>,
    /// An account id that played.
    pub(crate) player: Option<u64>,
    /// Started at or after (Unix ms).
    pub(crate) since: Option<u64>,
    /// Started before (Unix ms).
    pub(crate) until: Option<u64>,
    /// At most this many, newest first (default and cap: [`MAX_LISTED`]).
    pub(crate) limit: Option<usize>,
}

/// The most recordings one listing returns.
pub(crate) const MAX_LISTED: usize = 500;

impl Filter {
    fn keeps(&self, s: &Summary) -> bool {
        self.kind.as_ref().is_none_or(|k| *k == s.kind)
            && self.player.is_none_or(|p| s.players.contains(&p))
            && self.since.is_none_or(|t| s.started_unix_ms >= t)
            && self.until.is_none_or(|t| s.started_unix_ms < t)
    }
}

/// The recordings in `dir` that `filter` keeps, newest first.
pub(crate) fn list(dir: &Path, filter: &Filter) -> std::io::Result<Vec<Summary>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(&format!(".{EXTENSION}")))
        .collect();
    // Names start with the start time: newest first.
    names.sort_unstable_by(|a, b| b.cmp(a));
    let limit = filter.limit.unwrap_or(MAX_LISTED).min(MAX_LISTED);
    let mut out = Vec::new();
    for name in names {
        if out.len() >= limit {
            break;
        }
        if let Some(s) = summary(dir, &name) {
            if filter.keeps(&s) {
                out.push(s);
            }
        }
    }
    Ok(out)
}

fn summary(dir: &Path, name: &str) -> Option<Summary> {
    let path = dir.join(name);
    let bytes = std::fs::metadata(&path).ok()?.len();
    let side = dir.join(format!("{name}.json"));
    if let Ok(text) = std::fs::read(&side) {
        if let Ok(mut s) = serde_json::from_slice::<Summary>(&text) {
            s.file = name.to_owned();
            s.bytes = bytes;
            return Some(s);
        }
    }
    // No summary: the header, from the file's first bytes (a header is small).
    use std::io::Read as _;
    let mut head = Vec::new();
    std::fs::File::open(&path)
        .ok()?
        .take(64 * 1024)
        .read_to_end(&mut head)
        .ok()?;
    let (h, _) = rally_record::Reader::new(&head).ok()?;
    Some(Summary {
        file: name.to_owned(),
        room_id: h.room_id,
        kind: h.kind,
        game_version: h.game_version,
        seed: h.seed,
        tick_hz: h.tick_hz,
        started_unix_ms: h.started_unix_ms,
        bytes,
        ..Summary::default()
    })
}

/// Whether `name` is a recording's file name (no path, no `..`): what a download may read.
pub(crate) fn is_recording_name(name: &str) -> bool {
    name.ends_with(&format!(".{EXTENSION}"))
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_recording_names_are_downloadable() {
        assert!(is_recording_name("1765000000000-arena-42.rrec"));
        for bad in [
            "../etc/passwd",
            "a/b.rrec",
            ".rrec",
            "x.json",
            "..rrec",
            "a\\b.rrec",
        ] {
            assert!(!is_recording_name(bad), "{bad}");
        }
    }
}
