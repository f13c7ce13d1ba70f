//! Membership and the room directory: this node's heartbeat into both buckets, and the
//! watchers that follow both into the `View`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::kv::{self, Operation};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{buckets, Cluster, NodeEntry, RoomEntry, NODES_BUCKET, RETRY_PAUSE};
use crate::room::RoomEnv;

fn unix_nanos(t: SystemTime) -> i128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// When an entry was written, on this node's monotonic clock (the nodes of one cluster
/// are assumed to keep their wall clocks in step, as NTP does).
fn written_at(entry: &kv::Entry) -> Instant {
    let age_ns = unix_nanos(SystemTime::now()) - entry.created.unix_timestamp_nanos();
    let age = Duration::from_nanos(u64::try_from(age_ns.max(0)).unwrap_or(u64::MAX));
    Instant::now().checked_sub(age).unwrap_or_else(Instant::now)
}

impl Cluster {
    /// Rewrites this node's entry and its rooms' every third of the TTL (or at once when
    /// asked), sweeps expired seats and view entries, and leaves once drained.
    pub(super) async fn heartbeat(self: Arc<Self>, rooms: Arc<RoomEnv>, stop: CancellationToken) {
        let every = self.ttl / 3;
        let mut published: Vec<String> = Vec::new();
        let mut broken = false;
        loop {
            let now = Instant::now();
            let swept = self.seats.sweep(now);
            if swept > 0 {
                tracing::debug!(seats = swept, "seat tickets expired unclaimed");
            }
            let alive = {
                let mut view = self.view();
                view.expire(now);
                view.nodes().len()
            };
            self.metrics.nodes_alive.set(alive as f64);
            let me = self.own_entry(&rooms);
            if me.draining && me.rooms == 0 && self.seats.len() == 0 {
                // Drained: every match here has finished. Leave, and say so once.
                if !self.left.swap(true, Ordering::AcqRel) {
                    let _ = self.nodes_kv.delete(&self.node).await;
                    self.view().remove_node(&self.node);
                    tracing::info!(node = %self.node, "drained: left the cluster");
                }
            } else if !self.left.load(Ordering::Acquire) {
                if broken {
                    // NATS came back without the buckets (a memory store restarted).
                    broken = buckets(&self.js, self.ttl).await.is_err();
                }
                if !broken {
                    broken = self.publish(&me, &rooms, &mut published).await.is_err();
                }
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(if broken { RETRY_PAUSE } else { every }) => {}
                () = self.publish_now.notified() => {}
            }
        }
        // Shutting down: leave now rather than after the TTL.
        let _ = tokio::time::timeout(self.request_timeout, async {
            let _ = self.nodes_kv.delete(&self.node).await;
            for key in &published {
                let _ = self.rooms_kv.delete(key).await;
            }
        })
        .await;
    }

    /// Writes this node's entry and its rooms', and deletes the entries of rooms gone.
    async fn publish(
        &self,
        me: &NodeEntry,
        rooms: &RoomEnv,
        published: &mut Vec<String>,
    ) -> Result<(), String> {
        let bound = self.request_timeout;
        let write = async {
            let entry = serde_json::to_vec(me).map_err(|e| e.to_string())?;
            self.nodes_kv
                .put(&self.node, Bytes::from(entry))
                .await
                .map_err(|e| e.to_string())?;
            self.view().put_node(me.clone(), Instant::now());
            let mut now_open = Vec::new();
            for room in rooms.matchmaker.rooms() {
                let entry = self.room_entry(rooms, &room);
                let key = entry.key();
                let bytes = serde_json::to_vec(&entry).map_err(|e| e.to_string())?;
                self.rooms_kv
                    .put(&key, Bytes::from(bytes))
                    .await
                    .map_err(|e| e.to_string())?;
                now_open.push(key);
            }
            for gone in published.iter().filter(|k| !now_open.contains(k)) {
                let _ = self.rooms_kv.delete(gone).await;
            }
            *published = now_open;
            Ok::<(), String>(())
        };
        match tokio::time::timeout(bound * 3, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cluster heartbeat failed; retrying");
                Err(e)
            }
            Err(_) => {
                tracing::warn!("cluster heartbeat timed out; retrying");
                Err("timed out".into())
            }
        }
    }

    /// Follows one bucket into the view, re-opening the watch whenever it ends.
    pub(super) async fn watch(self: Arc<Self>, bucket: &'static str, stop: CancellationToken) {
        let store = if bucket == NODES_BUCKET {
            self.nodes_kv.clone()
        } else {
            self.rooms_kv.clone()
        };
        loop {
            let opened = tokio::select! {
                () = stop.cancelled() => return,
                w = tokio::time::timeout(self.request_timeout * 3, store.watch_with_history(">")) => w,
            };
            match opened {
                Ok(Ok(mut watch)) => loop {
                    let next = tokio::select! {
                        () = stop.cancelled() => return,
                        n = watch.next() => n,
                    };
                    match next {
                        Some(Ok(entry)) => self.apply(bucket, &entry),
                        Some(Err(e)) => {
                            tracing::debug!(bucket, error = %e, "cluster watch ended; reopening");
                            break;
                        }
                        None => break,
                    }
                },
                Ok(Err(e)) => tracing::debug!(bucket, error = %e, "cannot watch; retrying"),
                Err(_) => tracing::debug!(bucket, "watch did not open in time; retrying"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(RETRY_PAUSE) => {}
            }
        }
    }

    /// One watched change.
    fn apply(&self, bucket: &str, entry: &kv::Entry) {
        let at = written_at(entry);
        let mut view = self.view();
        match (bucket, entry.operation) {
            (NODES_BUCKET, Operation::Put) => {
                if let Ok(n) = serde_json::from_slice::<NodeEntry>(&entry.value) {
                    // A node's own entry is kept by its heartbeat, with its live load.
                    if n.node != self.node {
                        view.put_node(n, at);
                    }
                }
            }
            (NODES_BUCKET, _) => {
                if entry.key != self.node {
                    view.remove_node(&entry.key);
                }
            }
            (_, Operation::Put) => {
                if let Ok(r) = serde_json::from_slice::<RoomEntry>(&entry.value) {
                    view.put_room(r, at);
                }
            }
            (_, _) => view.remove_room(&entry.key),
        }
    }
}
