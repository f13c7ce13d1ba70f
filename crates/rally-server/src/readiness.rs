//! Readiness: whether a load balancer should send this server new players (`/readyz`).
//!
//! A server is not ready while it drains or shuts down, or while a dependency it needs
//! reports itself unhealthy. Dependencies (the database, once the storage layer is wired
//! in) report through a [`Dependency`] handle taken from
//! [`ServerHandle::dependency`](crate::ServerHandle::dependency).
//!
//! Infra floor: imports nothing of the crate.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Dependencies that reported a problem, by name.
#[derive(Debug, Default)]
pub(crate) struct Readiness {
    /// Never held across `.await`: every critical section is one map operation.
    unhealthy: Mutex<BTreeMap<String, String>>,
}

impl Readiness {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, String>> {
        // Single map operations cannot leave the map half-updated.
        self.unhealthy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `(dependency, reason)` for each unhealthy dependency, sorted by name.
    /// Why the server is not ready, as `/readyz` lists it; empty when ready.
    pub(crate) fn report(&self, shutting_down: bool, draining: bool) -> Vec<String> {
        let mut problems = Vec::new();
        if shutting_down {
            problems.push("shutting down".to_owned());
        }
        if draining {
            problems.push("draining".to_owned());
        }
        for (name, reason) in self.problems() {
            problems.push(format!("{name} unhealthy: {reason}"));
        }
        problems
    }

    pub(crate) fn problems(&self) -> Vec<(String, String)> {
        self.lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// How one dependency (e.g. `"database"`) tells the server whether it works.
///
/// While any dependency is unhealthy, `/readyz` answers 503 and names it. Cheap to clone;
/// the storage layer keeps one and reports on every state change (a failed call, a
/// successful reconnect).
#[derive(Debug, Clone)]
pub struct Dependency {
    name: Arc<str>,
    readiness: Arc<Readiness>,
}

impl Dependency {
    pub(crate) fn new(name: &str, readiness: Arc<Readiness>) -> Self {
        Dependency {
            name: Arc::from(name),
            readiness,
        }
    }

    /// The dependency's name, as `/readyz` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dependency works again.
    pub fn healthy(&self) {
        self.readiness.lock().remove(&*self.name);
    }

    /// The dependency does not work; `reason` is shown on `/readyz` (never put a secret
    /// such as a connection string with a password in it).
    pub fn unhealthy(&self, reason: impl Into<String>) {
        self.readiness
            .lock()
            .insert(self.name.to_string(), reason.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_shutdown_draining_and_each_unhealthy_dependency() {
        let readiness = Arc::new(Readiness::default());
        assert!(readiness.report(false, false).is_empty());
        let db = Dependency::new("database", readiness.clone());
        db.unhealthy("connection refused");
        assert_eq!(
            readiness.report(true, true),
            [
                "shutting down",
                "draining",
                "database unhealthy: connection refused"
            ]
        );
        db.healthy();
        assert!(readiness.report(false, false).is_empty());
    }
}
