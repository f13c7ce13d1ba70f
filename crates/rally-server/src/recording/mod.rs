//! Match recordings (infra floor): one file per match in `recordings_dir`, in the format
//! of `rally_record` (`docs/recordings.md`).
//!
//! The room encodes each tick's records (joins, leaves, inputs, the tick, a state hash
//! every [`HASH_EVERY`] ticks) into one buffer and hands it to its recording's writer task
//! through a bounded queue with `try_send`: the tick never waits on the disk. When the
//! queue is full the recording is cut (the writer ends the file with a `cut` record), the
//! cut is counted and logged once, and the game goes on. The writer batches what it
//! receives and writes it with `tokio::fs` at least every [`FLUSH_EVERY`], so a crash loses
//! at most that tail; at the match's end it writes the trailer, fsyncs, and writes a small
//! JSON summary beside the file for the admin listing. A background sweep deletes
//! recordings past `recordings_max_age_hours` and, oldest first, past `recordings_max_mb`.
//!
//! # Layout
//! - this file: [`Recordings`] (one per server) and [`RoomRecording`] (one per room).
//! - `writer`: the writer task of one recording.
//! - `retention`: the age and size sweep.
//! - `list`: the summaries the admin API lists and filters.

mod list;
mod retention;
mod writer;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rally_record::encode::{self, CutReason, Header};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::metrics::RecordingMetrics;

pub(crate) use list::{is_recording_name, list, Filter, Summary};

/// A state hash is recorded after every tick whose number is a multiple of this: at
/// 20 Hz, twice a second, so a replay names a divergence within half a second of play.
pub(crate) const HASH_EVERY: u32 = 10;
/// Ticks of records a room may have queued for its writer before the recording is cut:
/// ten seconds at 20 Hz, far more than a healthy disk ever lags.
const QUEUE_TICKS: usize = 200;
/// The writer writes what it holds at least this often: the most a crash loses.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// ... or as soon as it holds this much.
const FLUSH_BYTES: usize = 64 * 1024;
/// A recording file's extension; the summary beside it is `<name>.json`.
pub(crate) const EXTENSION: &str = "rrec";

/// What a room sends its recording's writer.
#[derive(Debug)]
enum Chunk {
    /// One tick's records.
    Records(Vec<u8>),
    /// The last records (the trailer) and the summary to write beside the file.
    End(Vec<u8>, Box<Summary>),
}

/// The recordings of one server: where they go, and the writer tasks' shared handles.
#[derive(Debug)]
pub(crate) struct Recordings {
    dir: PathBuf,
    metrics: RecordingMetrics,
    /// Writers run in the server's tracker, so shutdown waits for their fsync.
    tracker: TaskTracker,
    /// Files being written now: the retention sweep leaves them alone.
    active: Mutex<HashSet<String>>,
    max_age: Option<Duration>,
    max_bytes: Option<u64>,
}

impl Recordings {
    /// The server's recordings, or `None` when `recordings_dir` is empty.
    pub(crate) fn new(
        config: &Config,
        metrics: RecordingMetrics,
        tracker: TaskTracker,
    ) -> Option<Arc<Self>> {
        let dir = config.recordings_path()?.to_path_buf();
        Some(Arc::new(Recordings {
            dir,
            metrics,
            tracker,
            active: Mutex::default(),
            max_age: (config.recordings_max_age_hours > 0)
                .then(|| Duration::from_secs(config.recordings_max_age_hours * 3600)),
            max_bytes: (config.recordings_max_mb > 0)
                .then(|| config.recordings_max_mb.saturating_mul(1024 * 1024)),
        }))
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts recording a match: spawns its writer and returns the room's end.
    pub(crate) fn start(self: &Arc<Self>, header: &Header) -> RoomRecording {
        let name = file_name(header);
        let (tx, rx) = mpsc::channel(QUEUE_TICKS);
        let cut = Arc::new(AtomicU8::new(0));
        if let Ok(mut active) = self.active.lock() {
            active.insert(name.clone());
        }
        let mut buf = Vec::with_capacity(256);
        encode::header(&mut buf, header);
        self.tracker.spawn(writer::run(
            self.clone(),
            self.dir.join(&name),
            name.clone(),
            rx,
            cut.clone(),
        ));
        RoomRecording {
            buf,
            tx: Some(tx),
            cut,
            metrics: self.metrics.clone(),
            name,
            seed: header.seed,
        }
    }

    fn finished(&self, name: &str) {
        if let Ok(mut active) = self.active.lock() {
            active.remove(name);
        }
    }

    fn is_active(&self, name: &str) -> bool {
        self.active.lock().is_ok_and(|a| a.contains(name))
    }

    /// Runs the retention sweep until `shutdown` (spawned by the server when recording is
    /// on and a limit is set).
    pub(crate) async fn retention(self: Arc<Self>, shutdown: CancellationToken) {
        retention::run(self, shutdown).await;
    }
}

/// `<start ms>-<kind>-<room id>.rrec`: sorted by name is sorted by start; the kind is
/// cleaned to letters, digits, `-` and `_`, as a game developer names kinds freely.
fn file_name(h: &Header) -> String {
    let kind: String = h
        .kind
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    format!("{}-{kind}-{}.{EXTENSION}", h.started_unix_ms, h.room_id)
}

/// A room's end of its recording: the records of the tick being run, and the queue to
/// the writer. Once cut, it records nothing more.
#[derive(Debug)]
pub(crate) struct RoomRecording {
    buf: Vec<u8>,
    /// `None` once cut.
    tx: Option<mpsc::Sender<Chunk>>,
    /// Why the recording was cut (a [`CutReason`] as `u8`; 0: not cut), set by whichever
    /// side cut it, read by the writer to end the file.
    cut: Arc<AtomicU8>,
    metrics: RecordingMetrics,
    name: String,
    /// The header's seed, for the summary.
    seed: u64,
}

impl RoomRecording {
    /// The buffer to encode records into, or `None` once the recording is cut.
    pub(crate) fn records(&mut self) -> Option<&mut Vec<u8>> {
        self.tx.is_some().then_some(&mut self.buf)
    }

    /// Whether tick `number` is followed by a state hash.
    pub(crate) fn wants_hash(&self, number: u64) -> bool {
        self.tx.is_some() && number.is_multiple_of(u64::from(HASH_EVERY))
    }

    /// Hands the tick's records to the writer, without waiting: a full queue cuts the
    /// recording.
    pub(crate) fn end_tick(&mut self) {
        let Some(tx) = &self.tx else { return };
        if self.buf.is_empty() {
            return;
        }
        let size = self.buf.len();
        let records = std::mem::replace(&mut self.buf, Vec::with_capacity(size));
        match tx.try_send(Chunk::Records(records)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.cut
                    .store(CutReason::BufferFull as u8, Ordering::Relaxed);
                self.metrics.cut_buffer_full.increment(1);
                tracing::warn!(
                    recording = %self.name,
                    "recording cut: the disk is not keeping up (the match goes on unrecorded)"
                );
                // Dropping the sender tells the writer to end the file with a cut record.
                self.tx = None;
            }
            // The writer failed and said so already.
            Err(mpsc::error::TrySendError::Closed(_)) => self.tx = None,
        }
    }

    /// The match ended: `trailer` writes the end record; the writer fsyncs the file.
    pub(crate) fn finish(mut self, trailer: impl FnOnce(&mut Vec<u8>), mut summary: Summary) {
        let Some(tx) = self.tx.take() else { return };
        summary.seed = self.seed;
        trailer(&mut self.buf);
        match tx.try_send(Chunk::End(std::mem::take(&mut self.buf), Box::new(summary))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.cut
                    .store(CutReason::BufferFull as u8, Ordering::Relaxed);
                self.metrics.cut_buffer_full.increment(1);
                tracing::warn!(recording = %self.name, "recording cut at the match's end: the disk is not keeping up");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}
