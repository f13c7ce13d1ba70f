//! One recording's writer task: receives the room's records, writes them in batches with
//! `tokio::fs` (at least every `FLUSH_EVERY`), and at the end writes the trailer or a cut
//! record, fsyncs, and writes the summary beside the file.
//!
//! A failed write (a full disk, a file size limit, a directory it cannot write) cuts the
//! recording: counted, logged once, the queue closed so the room stops encoding, and
//! nothing more written, so what is on disk stays a readable prefix.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rally_record::encode::{self, CutReason};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::{Chunk, Recordings, Summary, FLUSH_BYTES, FLUSH_EVERY};

/// The file and its figures.
struct Out {
    file: tokio::fs::File,
    written: u64,
}

pub(super) async fn run(
    recordings: Arc<Recordings>,
    path: PathBuf,
    name: String,
    mut rx: mpsc::Receiver<Chunk>,
    cut: Arc<AtomicU8>,
) {
    let _task = recordings.metrics.task.start();
    let failed = |e: std::io::Error, rx: &mut mpsc::Receiver<Chunk>| {
        cut.store(CutReason::WriteError as u8, Ordering::Relaxed);
        recordings.metrics.cut_write_error.increment(1);
        tracing::warn!(
            recording = %path.display(),
            error = %e,
            "recording cut: a write failed (the match goes on unrecorded)"
        );
        rx.close();
    };
    let mut out = match open(&path).await {
        Ok(file) => Out { file, written: 0 },
        Err(e) => {
            failed(e, &mut rx);
            recordings.finished(&name);
            return;
        }
    };
    let mut pending: Vec<u8> = Vec::with_capacity(FLUSH_BYTES);
    let mut summary = None;
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ok = true;
    loop {
        tokio::select! {
            chunk = rx.recv() => match chunk {
                Some(Chunk::Records(records)) => {
                    pending.extend_from_slice(&records);
                    if pending.len() >= FLUSH_BYTES {
                        ok = write(&recordings, &mut out, &mut pending).await.map_err(|e| failed(e, &mut rx)).is_ok();
                    }
                }
                Some(Chunk::End(records, s)) => {
                    pending.extend_from_slice(&records);
                    summary = Some(*s);
                    break;
                }
                None => {
                    if let Some(reason) = cut_reason(&cut) {
                        encode::cut(&mut pending, reason);
                    }
                    break;
                }
            },
            _ = flush.tick() => {
                ok = write(&recordings, &mut out, &mut pending).await.map_err(|e| failed(e, &mut rx)).is_ok();
            }
        }
        if !ok {
            break;
        }
    }
    if ok {
        let end = async {
            write(&recordings, &mut out, &mut pending).await?;
            out.file.sync_all().await
        };
        match end.await {
            Ok(()) => {
                if let Some(mut s) = summary {
                    s.bytes = out.written;
                    s.cut = cut_reason(&cut).map(|r| r.name().to_owned());
                    write_summary(&path, &s).await;
                }
            }
            Err(e) => failed(e, &mut rx),
        }
    }
    recordings.finished(&name);
}

fn cut_reason(cut: &AtomicU8) -> Option<CutReason> {
    match cut.load(Ordering::Relaxed) {
        1 => Some(CutReason::BufferFull),
        2 => Some(CutReason::WriteError),
        _ => None,
    }
}

async fn open(path: &std::path::Path) -> std::io::Result<tokio::fs::File> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await
}

/// Writes what is pending and waits for it to reach the OS (not the disk: that is the
/// fsync at the end), timing it.
async fn write(
    recordings: &Recordings,
    out: &mut Out,
    pending: &mut Vec<u8>,
) -> std::io::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    out.file.write_all(pending).await?;
    // tokio's file hands the bytes to a blocking thread; flush waits for that write's
    // result, so an error (EFBIG, ENOSPC) surfaces here and not at the next write.
    out.file.flush().await?;
    recordings.metrics.write.record(started.elapsed());
    recordings.metrics.bytes.increment(pending.len() as u64);
    out.written += pending.len() as u64;
    pending.clear();
    Ok(())
}

/// The summary beside the file, written to a temporary name and renamed, so a listing
/// never reads half of one. A failure only loses the summary: the listing then reads the
/// recording's header instead.
async fn write_summary(path: &std::path::Path, s: &Summary) {
    let Ok(json) = serde_json::to_vec(s) else {
        return;
    };
    let done = path.with_extension(format!("{}.json", super::EXTENSION));
    let tmp = path.with_extension("json.tmp");
    let result = async {
        tokio::fs::write(&tmp, &json).await?;
        tokio::fs::rename(&tmp, &done).await
    };
    if let Err(e) = result.await {
        tracing::debug!(recording = %path.display(), error = %e, "recording summary not written");
    }
}
