//! What an attack counts while it runs: named counters and lists of durations, shared by
//! its connection tasks. Locks are held for one update, never across an `.await`.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde_json::{json, Value};

/// Counters by name (`ending:error:RATE_LIMITED`, `received:pong`, ...), and durations by
/// name (how long each connection lasted before the server cut it, ...).
#[derive(Debug, Default)]
pub(crate) struct Tally {
    counts: Mutex<BTreeMap<String, u64>>,
    durations: Mutex<BTreeMap<String, Vec<f64>>>,
}

impl Tally {
    /// Adds `n` to counter `key`.
    pub(crate) fn add(&self, key: impl Into<String>, n: u64) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        *counts.entry(key.into()).or_insert(0) += n;
    }

    /// Adds one to counter `key`.
    pub(crate) fn one(&self, key: impl Into<String>) {
        self.add(key, 1);
    }

    /// Records one duration under `key`.
    pub(crate) fn time(&self, key: impl Into<String>, d: Duration) {
        let mut durations = self
            .durations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        durations
            .entry(key.into())
            .or_default()
            .push(d.as_secs_f64());
    }

    /// Counter `key` now (0 if never counted).
    pub(crate) fn get(&self, key: &str) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    /// The counters whose name starts with `prefix`, without it.
    pub(crate) fn with_prefix(&self, prefix: &str) -> BTreeMap<String, u64> {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_owned(), *v)))
            .collect()
    }

    /// Every counter, and a summary of every list of durations, as JSON.
    pub(crate) fn to_json(&self) -> Value {
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let durations: BTreeMap<String, Value> = self
            .durations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), summary(v)))
            .collect();
        json!({ "counts": counts, "durations_secs": durations })
    }
}

/// Count, min, median, 90th percentile and max of `xs`, in seconds.
fn summary(xs: &[f64]) -> Value {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| -> Option<f64> {
        if v.is_empty() {
            return None;
        }
        let i = ((v.len() - 1) as f64 * q).round() as usize;
        Some(v[i.min(v.len() - 1)])
    };
    json!({
        "count": v.len(),
        "min": at(0.0),
        "p50": at(0.5),
        "p90": at(0.9),
        "max": at(1.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_durations_summarise() {
        let t = Tally::default();
        t.one("ending:error:RATE_LIMITED");
        t.add("ending:error:RATE_LIMITED", 2);
        t.one("received:pong");
        for s in [3, 1, 2] {
            t.time("cut_after", Duration::from_secs(s));
        }
        assert_eq!(t.get("ending:error:RATE_LIMITED"), 3);
        assert_eq!(t.get("nothing"), 0);
        assert_eq!(t.with_prefix("ending:")["error:RATE_LIMITED"], 3);
        let j = t.to_json();
        assert_eq!(j["counts"]["received:pong"], 1);
        let d = &j["durations_secs"]["cut_after"];
        assert_eq!(
            (d["count"].as_u64(), d["min"].as_f64()),
            (Some(3), Some(1.0))
        );
        assert_eq!(
            (d["p50"].as_f64(), d["max"].as_f64()),
            (Some(2.0), Some(3.0))
        );
    }
}
