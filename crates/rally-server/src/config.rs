//! Server parameters: their ranges and defaults, and how `rally.toml`, `RALLY_<KEY>`
//! environment variables and command-line flags combine.
//!
//! Every key is declared once, in the `config_keys!` table below: its [`Config`] field,
//! its kind (range or choices, and default) and its `--help` line. The macro
//! (`config/key.rs`) makes `Config`, [`KEYS`] and the typed loading from that one table,
//! so the keys and the fields cannot disagree.
//!
//! Flags beat the environment, the environment beats the file, the file beats the
//! default. A value that does not parse or is out of range is refused with a message
//! naming the key, the value, where it came from and what is allowed.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use rally_protocol::Redacted;

mod key;

use key::{config_keys, Value, Values};
pub use key::{Key, KeyKind};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// A secret value (the admin token, the auth secret): never shown by `Debug`, in logs or
/// in messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret(Redacted<String>);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Redacted::new(value.into()))
    }

    /// The secret itself, for comparing; do not log it.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// The database URL: its `Debug` and `Display` hide the password a PostgreSQL URL may hold.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a URL (`sqlite://...`, `postgres://...`).
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }

    /// The URL itself, password included, to connect with; do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", rally_store::redacted_url(&self.0))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&rally_store::redacted_url(&self.0))
    }
}

/// Whether the server runs for development or for players.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// The default: development switches (`auth_required = false`, the built-in
    /// `auth_secret`) are allowed.
    Development,
    /// Refuses to start with the development auth secret, a short one, or without
    /// required logins.
    Production,
}

/// The `auth_secret` a server gets when none is configured. Anyone can read it here, so
/// tokens signed with it prove nothing: `environment = "production"` refuses it.
pub const DEVELOPMENT_AUTH_SECRET: &str = "rally-development-auth-secret-not-for-production";
/// The shortest `auth_secret` production accepts, in bytes.
pub const MIN_PRODUCTION_SECRET_BYTES: usize = 32;

// The one declaration of every key: its `Config` field (docs, type), its kind (range or
// choices, and default) and its `--help` line. `config_keys!` (config/key.rs) makes
// `Config`, `KEYS` and the typed loading from it. Not rustfmt'd: a macro's input.
#[rustfmt::skip]
config_keys! {
    /// Concurrent player connections in one process.
    concurrency_limit: u32 = KeyKind::Int { min: 1, max: 10_000, default: 1000 },
        help: "concurrent player connections in one process";

    /// Bound on every wait on a peer or dependency, in milliseconds.
    timeout_ms: u64 = KeyKind::Int { min: 100, max: 60_000, default: 30_000 },
        help: "bound on every wait on a peer or dependency: handshake, idle read, blocked write, one command";

    /// Room simulation and state rate.
    tick_hz: u32 = KeyKind::Int { min: 1, max: 120, default: 20 },
        help: "room simulation and state rate";

    /// How long a new connection has to finish its handshake, in milliseconds (the
    /// effective bound is [`Config::handshake_timeout`], capped by `timeout_ms`).
    handshake_timeout_ms: u64 = KeyKind::Int { min: 100, max: 60_000, default: 5000 },
        help: "how long a new connection has to finish its handshake (WebSocket upgrade and hello); capped by timeout_ms";

    /// Largest message a client may send.
    max_message_bytes: u32 = KeyKind::Int { min: 64, max: 1_048_576, default: 4096 },
        help: "largest message a client may send";

    /// Outbound messages buffered per connection.
    queue_capacity: u32 = KeyKind::Int { min: 1, max: 10_000, default: 100 },
        help: "outbound messages buffered per connection";

    /// How long shutdown waits for rooms and players, in milliseconds.
    shutdown_grace_ms: u64 = KeyKind::Int { min: 0, max: 600_000, default: 10_000 },
        help: "how long shutdown waits for rooms and players to finish";

    /// How long a dropped player's seat is kept for it to resume, in milliseconds.
    reconnect_grace_ms: u64 = KeyKind::Int { min: 0, max: 600_000, default: 10_000 },
        help: "how long a dropped player's seat is kept for it to resume (0: freed at once)";

    /// Inputs per second per connection; 0: twice `tick_hz` (see
    /// [`Config::effective_input_rate`]).
    input_rate: u32 = KeyKind::Int { min: 0, max: 100_000, default: 0 },
        help: "inputs per second per connection, burst of one second's worth (0: twice tick_hz)";

    /// Every other message after `hello` (requests, pings), per second per connection.
    command_rate: u32 = KeyKind::Int { min: 1, max: 100_000, default: 10 },
        help: "requests and pings per second per connection, burst of one second's worth";

    /// Connections open at once from one client address.
    max_connections_per_ip: u32 = KeyKind::Int { min: 1, max: 10_000, default: 64 },
        help: "connections open at once from one client address (IPv6: one /64)";

    /// New connections per second from one client address.
    connection_rate_per_ip: u32 = KeyKind::Int { min: 1, max: 10_000, default: 32 },
        help: "new connections per second from one client address, burst of one second's worth";

    /// Raw TCP game listener.
    tcp: SocketAddr = KeyKind::Addr { default: "0.0.0.0:7000" },
        help: "raw TCP game listener";

    /// HTTP listener carrying the WebSocket endpoint `/ws`.
    http: SocketAddr = KeyKind::Addr { default: "0.0.0.0:8080" },
        help: "HTTP listener with the WebSocket endpoint /ws";

    /// Admin listener: health, readiness, metrics and the admin API.
    admin: SocketAddr = KeyKind::Addr { default: "127.0.0.1:9100" },
        help: "admin listener (/healthz, /readyz, /metrics, /admin/*)";

    /// Bearer token the admin API (`/admin/*`) requires; `None` turns the API off.
    admin_token: Option<Secret> = KeyKind::Secret { min_len: 16, default: "" },
        help: "bearer token for the admin API /admin/* (unset: the admin API is off); prefer the environment or the file to the flag";

    /// Log filter, e.g. `info` or `rally_server=debug`.
    log_level: String = KeyKind::Text { default: "info" },
        help: "log filter: error, warn, info, debug, trace, or target=level directives",
        env_aliases: ["RALLY_LOG"];

    /// Log line format.
    log_format: LogFormat = KeyKind::Choice { options: &["pretty", "json"], default: "pretty" },
        help: "log line format";

    /// Where accounts and player data live: a SQLite file or a PostgreSQL server.
    database_url: DatabaseUrl = KeyKind::Url {
            schemes: &["sqlite:", "postgres://", "postgresql://"],
            default: rally_store::DEFAULT_DATABASE_URL,
        },
        help: "accounts and player data: a SQLite file (created if missing) or a PostgreSQL server";

    /// The key session tokens are signed with.
    auth_secret: Secret = KeyKind::Secret { min_len: 16, default: DEVELOPMENT_AUTH_SECRET },
        help: "key that signs session tokens (production: 32+ bytes, not the default); prefer the environment or the file to the flag";

    /// Development or production; production refuses development switches.
    environment: Environment = KeyKind::Choice { options: &["development", "production"], default: "development" },
        help: "production refuses the default auth_secret, a short one, and auth_required = false";

    /// How long a session token stays valid, in seconds.
    session_ttl_secs: u64 = KeyKind::Int { min: 60, max: 2_592_000, default: 86_400 },
        help: "how long a session token stays valid";

    /// The game backend's login webhook (`http://...`); `None` turns custom login off.
    auth_webhook_url: Option<String> = KeyKind::Url { schemes: &["http://"], default: "" },
        help: "custom login: the game backend's webhook, POSTed {\"credential\"} (empty: custom login off)";

    /// Whether a session must log in before it may play (a development switch when false).
    auth_required: bool = KeyKind::Bool { default: true },
        help: "sessions must log in before playing (false: a development switch production refuses)";

    /// Where match recordings go, one file per match (`docs/recordings.md`); `None`
    /// (empty, the default) records nothing: a server writes no files its operator did
    /// not ask for, and the README's example turns it on.
    recordings_dir: Option<String> = KeyKind::Text { default: "" },
        help: "directory for match recordings, one file per match (empty: no recordings)";

    /// Recordings older than this are deleted, in hours (0: kept whatever their age).
    recordings_max_age_hours: u64 = KeyKind::Int { min: 0, max: 87_600, default: 168 },
        help: "delete recordings older than this many hours (0: no age limit)";

    /// The recordings directory is kept under this many MiB, oldest deleted first (0: no limit).
    recordings_max_mb: u64 = KeyKind::Int { min: 0, max: 100_000_000, default: 10_240 },
        help: "keep the recordings under this many MiB, deleting the oldest first (0: no size limit)";
    /// The NATS server of a cluster (`nats://host:port`); `None`: a single node, the default.
    cluster_nats_url: Option<String> = KeyKind::Url { schemes: &["nats://"], default: "" },
        help: "cluster mode: the NATS server (with JetStream) the nodes share, nats://host:port (empty: a single node)";

    /// This node's name in the cluster: unique per node, letters, digits, `-` and `_`.
    node_id: String = KeyKind::Text { default: "rally-1" },
        help: "cluster mode: this node's unique name (1-64 of A-Z a-z 0-9 - _)";

    /// The raw TCP address players are redirected to (`host:port`); `auto`: the TCP
    /// listener's own address (an unspecified IP becomes 127.0.0.1).
    advertise_tcp: String = KeyKind::Text { default: "auto" },
        help: "cluster mode: the host:port other nodes send players to for raw TCP (auto: the tcp listener's address)";

    /// The WebSocket address players are redirected to (`host:port`, path `/ws`); `auto`:
    /// the HTTP listener's own address.
    advertise_ws: String = KeyKind::Text { default: "auto" },
        help: "cluster mode: the host:port other nodes send players to for WebSocket /ws (auto: the http listener's address)";

    /// How long a node's membership entry and its rooms' directory entries live without a
    /// heartbeat (one every third of it), in milliseconds.
    cluster_node_ttl_ms: u64 = KeyKind::Int { min: 1000, max: 60_000, default: 3000 },
        help: "cluster mode: a node that stops heartbeating is dead after this, and its rooms leave the directory";

    /// How long a seat ticket (and the seat it reserves) lasts unclaimed, in milliseconds.
    seat_ticket_ttl_ms: u64 = KeyKind::Int { min: 1000, max: 60_000, default: 10_000 },
        help: "cluster mode: how long a redirected player has to claim its seat on the other node";

    /// Bound on one attempt of a request to another node (a seat reservation), in
    /// milliseconds; retried per the retry policy.
    cluster_request_timeout_ms: u64 = KeyKind::Int { min: 100, max: 10_000, default: 1000 },
        help: "cluster mode: bound on one attempt of a seat reservation on another node (3 attempts at most)";
}

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// A config file.
    File(String),
    /// An environment variable.
    Env(String),
    /// A command-line flag.
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "the default"),
            Source::File(path) => write!(f, "config file {path}"),
            Source::Env(var) => write!(f, "environment variable {var}"),
            Source::Flag(flag) => write!(f, "flag --{flag}"),
        }
    }
}

/// A configuration that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A value that does not parse or is out of range.
    #[error("invalid {key} = {value:?} (from {from}): allowed is {allowed}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// The value as given.
        value: String,
        /// Where it came from.
        from: Source,
        /// What is allowed.
        allowed: String,
    },
    /// A key in the file that Rally does not know (likely a typo).
    #[error("unknown key {key:?} in {path}; known keys: {known}")]
    UnknownKey {
        /// The key.
        key: String,
        /// The file.
        path: String,
        /// The known keys.
        known: String,
    },
    /// The file could not be read or is not TOML.
    #[error("cannot read config file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Raw values, by key name, from each source.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    file: BTreeMap<String, (String, Source)>,
    env: BTreeMap<&'static str, (String, Source)>,
    flags: BTreeMap<&'static str, (String, Source)>,
}

fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

impl Sources {
    /// No values: every key takes its default.
    pub fn new() -> Self {
        Sources::default()
    }

    /// Adds the values of a TOML file. Unknown keys are an error.
    pub fn file(mut self, path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        self = self.toml(&text, &shown)?;
        Ok(self)
    }

    /// Adds the values of TOML text; `path` names it in messages.
    pub fn toml(mut self, text: &str, path: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::File {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        for (name, value) in table {
            if key(&name).is_none() {
                let known = KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ");
                return Err(ConfigError::UnknownKey {
                    key: name,
                    path: path.to_owned(),
                    known,
                });
            }
            let text = match value {
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            self.file
                .insert(name, (text, Source::File(path.to_owned())));
        }
        Ok(self)
    }

    /// Adds the `RALLY_<KEY>` variables found in `vars` (others are ignored).
    pub fn env(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let vars: BTreeMap<String, String> = vars.into_iter().collect();
        for k in KEYS {
            let primary = k.env();
            let names = std::iter::once(primary.as_str()).chain(k.env_aliases.iter().copied());
            for name in names {
                if let Some(v) = vars.get(name) {
                    self.env
                        .insert(k.name, (v.clone(), Source::Env(name.to_owned())));
                    break;
                }
            }
        }
        self
    }

    /// Adds a flag value for `key` (a key name from [`KEYS`]; unknown names are ignored).
    pub fn flag(mut self, name: &str, value: impl Into<String>) -> Self {
        if let Some(k) = key(name) {
            self.flags
                .insert(k.name, (value.into(), Source::Flag(k.flag())));
        }
        self
    }

    fn raw(&self, k: &'static Key) -> (String, Source) {
        self.flags
            .get(k.name)
            .or_else(|| self.env.get(k.name))
            .or_else(|| self.file.get(k.name))
            .cloned()
            .unwrap_or_else(|| (k.default_value(), Source::Default))
    }

    /// Combines the sources and validates every key.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut values = Values::default();
        let mut sources = BTreeMap::new();
        for k in KEYS {
            let (value, source) = self.raw(k);
            sources.insert(k.name, source.clone());
            let invalid = || ConfigError::Invalid {
                key: k.name,
                value: match k.kind {
                    // The message may end up in a log or a terminal: never repeat a secret.
                    KeyKind::Secret { .. } => {
                        format!("<hidden, {} characters>", value.chars().count())
                    }
                    _ => value.clone(),
                },
                from: source.clone(),
                allowed: k.allowed(),
            };
            match k.kind {
                KeyKind::Int { min, max, .. } => {
                    let n: u64 = value.trim().parse().map_err(|_| invalid())?;
                    if !(min..=max).contains(&n) {
                        return Err(invalid());
                    }
                    values.insert(k.name, Value::Int(n));
                }
                KeyKind::Addr { .. } => {
                    let addr = value.trim().parse::<SocketAddr>().map_err(|_| invalid())?;
                    values.insert(k.name, Value::Addr(addr));
                }
                KeyKind::Choice { options, .. } => {
                    if !options.contains(&value.trim()) {
                        return Err(invalid());
                    }
                    values.insert(k.name, Value::Text(value.trim().to_owned()));
                }
                KeyKind::Text { default } => {
                    // Empty is refused unless it is the default: then it means "off".
                    if value.trim().is_empty() && !default.is_empty() {
                        return Err(invalid());
                    }
                    if k.name == "node_id" && !rally_auth::ticket::valid_node_id(value.trim()) {
                        return Err(ConfigError::Invalid {
                            key: k.name,
                            value: value.clone(),
                            from: source.clone(),
                            allowed: "1 to 64 of A-Z a-z 0-9 - _".to_owned(),
                        });
                    }
                    values.insert(k.name, Value::Text(value.trim().to_owned()));
                }
                KeyKind::Secret { min_len, .. } => {
                    if value.is_empty() {
                        values.insert(k.name, Value::Secret(None));
                        continue;
                    }
                    if value.chars().count() < min_len || value.chars().any(char::is_whitespace) {
                        return Err(invalid());
                    }
                    values.insert(k.name, Value::Secret(Some(Secret::new(value.clone()))));
                }
                KeyKind::Bool { .. } => {
                    let b = match value.trim() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(invalid()),
                    };
                    values.insert(k.name, Value::Bool(b));
                }
                KeyKind::Url { schemes, default } => {
                    let url = value.trim();
                    if url.is_empty() && default.is_empty() {
                        values.insert(k.name, Value::Text(String::new()));
                        continue;
                    }
                    if !schemes.iter().any(|s| url.starts_with(s)) {
                        return Err(invalid());
                    }
                    if k.name == "auth_webhook_url" {
                        rally_auth::Webhook::new(url, Duration::from_secs(1)).map_err(|e| {
                            ConfigError::Invalid {
                                key: k.name,
                                value: value.clone(),
                                from: source.clone(),
                                allowed: e.reason,
                            }
                        })?;
                    }
                    values.insert(k.name, Value::Text(url.to_owned()));
                }
            }
        }
        Config::from_values(&mut values).checked_for_production(&sources)
    }
}

impl Config {
    /// In production, refuses the development switches, naming the key that holds one.
    fn checked_for_production(
        self,
        sources: &BTreeMap<&'static str, Source>,
    ) -> Result<Config, ConfigError> {
        if self.environment != Environment::Production {
            return Ok(self);
        }
        let from = |key: &str| sources.get(key).cloned().unwrap_or(Source::Default);
        let secret = self.auth_secret.expose();
        if secret == DEVELOPMENT_AUTH_SECRET || secret.len() < MIN_PRODUCTION_SECRET_BYTES {
            return Err(ConfigError::Invalid {
                key: "auth_secret",
                value: if secret == DEVELOPMENT_AUTH_SECRET {
                    "<the development default>".to_owned()
                } else {
                    format!("<hidden, {} bytes>", secret.len())
                },
                from: from("auth_secret"),
                allowed: format!(
                    "with environment = production, a secret of at least {MIN_PRODUCTION_SECRET_BYTES} bytes other than the development default (e.g. openssl rand -hex 32)"
                ),
            });
        }
        if !self.auth_required {
            return Err(ConfigError::Invalid {
                key: "auth_required",
                value: "false".to_owned(),
                from: from("auth_required"),
                allowed: "true with environment = production (false is a development switch)"
                    .to_owned(),
            });
        }
        Ok(self)
    }
}

impl Default for Config {
    fn default() -> Self {
        // The defaults in KEYS are all in range; a test below keeps it that way.
        Sources::new().load().expect("built-in defaults are valid")
    }
}

impl Config {
    /// [`Config::timeout_ms`] as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// How often quiet sessions are looked for: a tenth of the shorter of `timeout_ms`
    /// and the handshake bound, between 10 and 250 ms, so a session times out at most
    /// 10% (and at most a quarter second) after its deadline.
    pub fn sweep_period(&self) -> Duration {
        let shortest = self.timeout().min(self.handshake_timeout());
        (shortest / 10).clamp(Duration::from_millis(10), Duration::from_millis(250))
    }

    /// The handshake bound: `handshake_timeout_ms`, capped by `timeout_ms`.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms.min(self.timeout_ms))
    }

    /// Inputs per second per connection: `input_rate`, or twice `tick_hz` when it is 0.
    pub fn effective_input_rate(&self) -> u32 {
        if self.input_rate == 0 {
            self.tick_hz.saturating_mul(2)
        } else {
            self.input_rate
        }
    }

    /// [`Config::shutdown_grace_ms`] as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// [`Config::reconnect_grace_ms`] as a duration.
    pub fn reconnect_grace(&self) -> Duration {
        Duration::from_millis(self.reconnect_grace_ms)
    }

    /// One tick period.
    pub fn tick_period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / f64::from(self.tick_hz))
    }

    /// Where recordings go, when recording is on.
    pub fn recordings_path(&self) -> Option<&Path> {
        self.recordings_dir.as_deref().map(Path::new)
    }
    /// Whether the server runs as a node of a cluster (`cluster_nats_url` is set).
    pub fn clustered(&self) -> bool {
        self.cluster_nats_url.is_some()
    }

    /// [`Config::cluster_node_ttl_ms`] as a duration.
    pub fn cluster_node_ttl(&self) -> Duration {
        Duration::from_millis(self.cluster_node_ttl_ms)
    }

    /// [`Config::seat_ticket_ttl_ms`] as a duration.
    pub fn seat_ticket_ttl(&self) -> Duration {
        Duration::from_millis(self.seat_ticket_ttl_ms)
    }

    /// [`Config::cluster_request_timeout_ms`] as a duration.
    pub fn cluster_request_timeout(&self) -> Duration {
        Duration::from_millis(self.cluster_request_timeout_ms)
    }

    /// [`Config::session_ttl_secs`] as a duration.
    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_ttl_secs)
    }
}

#[cfg(test)]
mod tests;
