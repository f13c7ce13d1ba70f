//! The retention sweep: at start and every [`SWEEP_EVERY`], deletes recordings (and their
//! summaries) older than `recordings_max_age_hours`, then the oldest ones while the
//! directory holds more than `recordings_max_mb`. Files being written are left alone.
//! The directory walk and deletes are synchronous IO, so they run on a blocking thread.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::{Recordings, EXTENSION};

/// How often the sweep runs.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

pub(super) async fn run(recordings: Arc<Recordings>, shutdown: CancellationToken) {
    if recordings.max_age.is_none() && recordings.max_bytes.is_none() {
        return;
    }
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let r = recordings.clone();
        let _task = recordings.metrics.task.start();
        match tokio::task::spawn_blocking(move || sweep(&r, SystemTime::now())).await {
            Ok(Ok(0)) => {}
            Ok(Ok(deleted)) => tracing::info!(deleted, "recordings deleted by retention"),
            Ok(Err(e)) => tracing::debug!(error = %e, "recordings retention sweep failed"),
            Err(e) => tracing::warn!(error = %e, "recordings retention sweep panicked"),
        }
    }
}

/// One sweep; returns how many recordings it deleted.
pub(super) fn sweep(recordings: &Recordings, now: SystemTime) -> std::io::Result<usize> {
    let dir = recordings.dir();
    // (name, modified, size, being written) of every recording, oldest first. Files
    // being written count towards the size but are not deleted.
    let mut files: Vec<(String, SystemTime, u64, bool)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !name.ends_with(&format!(".{EXTENSION}")) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let modified = meta.modified().unwrap_or(now);
        let active = recordings.is_active(&name);
        files.push((name, modified, meta.len(), active));
    }
    files.sort_by_key(|f| f.1);
    let mut total: u64 = files.iter().map(|f| f.2).sum();
    let mut deleted = 0;
    for (name, modified, size, active) in files {
        if active {
            continue;
        }
        let too_old = recordings
            .max_age
            .is_some_and(|age| now.duration_since(modified).unwrap_or_default() > age);
        let too_big = recordings.max_bytes.is_some_and(|max| total > max);
        if !too_old && !too_big {
            continue;
        }
        if std::fs::remove_file(dir.join(&name)).is_ok() {
            let _ = std::fs::remove_file(dir.join(format!("{name}.json")));
            total -= size;
            deleted += 1;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::metrics::Metrics;

    fn recordings(dir: &std::path::Path, age_hours: u64, mb: u64) -> Arc<Recordings> {
        let config = Config {
            recordings_dir: Some(dir.display().to_string()),
            recordings_max_age_hours: age_hours,
            recordings_max_mb: mb,
            ..Config::default()
        };
        let metrics = Metrics::new(&[]);
        Recordings::new(&config, metrics.recording(), Default::default()).unwrap()
    }

    #[test]
    fn old_files_go_then_the_oldest_while_over_the_size() {
        let dir = std::env::temp_dir().join(format!("rally-retention-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mib = vec![0u8; 1024 * 1024];
        for n in 1..=4 {
            std::fs::write(dir.join(format!("{n}-arena-{n}.{EXTENSION}")), &mib).unwrap();
            std::fs::write(dir.join(format!("{n}-arena-{n}.{EXTENSION}.json")), b"{}").unwrap();
            std::fs::write(dir.join("other.txt"), b"not a recording").unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        let r = recordings(&dir, 0, 2);
        r.active
            .lock()
            .unwrap()
            .insert(format!("1-arena-1.{EXTENSION}"));
        // 4 MiB over a 2 MiB limit: the oldest two not being written go (the one being
        // written counts towards the size but stays).
        assert_eq!(sweep(&r, SystemTime::now()).unwrap(), 2);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "1-arena-1.rrec",
                "1-arena-1.rrec.json",
                "4-arena-4.rrec",
                "4-arena-4.rrec.json",
                "other.txt"
            ]
        );
        // A day later, with a one-hour limit: all but the active one are too old.
        let r2 = recordings(&dir, 1, 0);
        r2.active
            .lock()
            .unwrap()
            .insert(format!("1-arena-1.{EXTENSION}"));
        let later = SystemTime::now() + Duration::from_secs(86_400);
        assert_eq!(sweep(&r2, later).unwrap(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
