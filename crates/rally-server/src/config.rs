//! Server parameters: their ranges and defaults (written once, in [`KEYS`]), and how
//! `rally.toml`, `RALLY_<KEY>` environment variables and command-line flags combine.
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

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Concurrent player connections in one process.
    pub concurrency_limit: u32,
    /// Bound on every wait on a peer or dependency, in milliseconds.
    pub timeout_ms: u64,
    /// Room simulation and state rate.
    pub tick_hz: u32,
    /// How long a new connection has to finish its handshake, in milliseconds (the
    /// effective bound is [`Config::handshake_timeout`], capped by `timeout_ms`).
    pub handshake_timeout_ms: u64,
    /// Largest message a client may send.
    pub max_message_bytes: u32,
    /// Outbound messages buffered per connection.
    pub queue_capacity: u32,
    /// How long shutdown waits for rooms and players, in milliseconds.
    pub shutdown_grace_ms: u64,
    /// How long a dropped player's seat is kept for it to resume, in milliseconds.
    pub reconnect_grace_ms: u64,
    /// Inputs per second per connection; 0: twice `tick_hz` (see
    /// [`Config::effective_input_rate`]).
    pub input_rate: u32,
    /// Every other message after `hello` (requests, pings), per second per connection.
    pub command_rate: u32,
    /// Connections open at once from one client address.
    pub max_connections_per_ip: u32,
    /// New connections per second from one client address.
    pub connection_rate_per_ip: u32,
    /// Raw TCP game listener.
    pub tcp: SocketAddr,
    /// HTTP listener carrying the WebSocket endpoint `/ws`.
    pub http: SocketAddr,
    /// Admin listener: health, readiness, metrics and the admin API.
    pub admin: SocketAddr,
    /// Bearer token the admin API (`/admin/*`) requires; `None` turns the API off.
    pub admin_token: Option<Secret>,
    /// Log filter, e.g. `info` or `rally_server=debug`.
    pub log_level: String,
    /// Log line format.
    pub log_format: LogFormat,
    /// Where accounts and player data live: a SQLite file or a PostgreSQL server.
    pub database_url: DatabaseUrl,
    /// The key session tokens are signed with.
    pub auth_secret: Secret,
    /// Development or production; production refuses development switches.
    pub environment: Environment,
    /// How long a session token stays valid, in seconds.
    pub session_ttl_secs: u64,
    /// The game backend's login webhook (`http://...`); `None` turns custom login off.
    pub auth_webhook_url: Option<String>,
    /// Whether a session must log in before it may play (a development switch when false).
    pub auth_required: bool,
}

/// What kind of value a key holds, with its range or choices and its default.
#[derive(Debug, Clone, Copy)]
pub enum KeyKind {
    /// An integer in `min..=max`.
    Int {
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
        /// Default.
        default: u64,
    },
    /// A socket address `IP:PORT`.
    Addr {
        /// Default.
        default: &'static str,
    },
    /// One of a fixed set of words.
    Choice {
        /// Allowed words.
        options: &'static [&'static str],
        /// Default.
        default: &'static str,
    },
    /// Free text.
    Text {
        /// Default.
        default: &'static str,
    },
    /// A secret: at least `min_len` characters without whitespace when set, and never
    /// repeated in messages.
    Secret {
        /// Shortest accepted secret.
        min_len: usize,
        /// The value when no source sets it; empty: unset.
        default: &'static str,
    },
    /// `true` or `false`.
    Bool {
        /// Default.
        default: bool,
    },
    /// A URL starting with one of `schemes`; empty (unset) only if the default is.
    Url {
        /// Accepted prefixes, e.g. `sqlite:`.
        schemes: &'static [&'static str],
        /// Default; empty: unset.
        default: &'static str,
    },
}

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The name in `rally.toml`; upper-cased with a `RALLY_` prefix for the environment,
    /// dashed for the flag.
    pub name: &'static str,
    /// Type, range and default.
    pub kind: KeyKind,
    /// One line for `--help`.
    pub help: &'static str,
    /// Other environment variable names accepted for this key.
    pub env_aliases: &'static [&'static str],
}

impl Key {
    /// The command-line flag, e.g. `concurrency-limit`.
    pub fn flag(&self) -> String {
        self.name.replace('_', "-")
    }

    /// The environment variable, e.g. `RALLY_CONCURRENCY_LIMIT`.
    pub fn env(&self) -> String {
        format!("RALLY_{}", self.name.to_uppercase())
    }

    /// The default, as text for messages and `--help`.
    pub fn default_text(&self) -> String {
        match self.kind {
            KeyKind::Secret { default: "", .. } => "unset".to_owned(),
            KeyKind::Secret { .. } => "a development-only secret".to_owned(),
            KeyKind::Url { default: "", .. } => "unset".to_owned(),
            _ => self.default_value(),
        }
    }

    /// The value a key takes when no source sets it.
    fn default_value(&self) -> String {
        match self.kind {
            KeyKind::Int { default, .. } => default.to_string(),
            KeyKind::Addr { default }
            | KeyKind::Choice { default, .. }
            | KeyKind::Text { default }
            | KeyKind::Secret { default, .. }
            | KeyKind::Url { default, .. } => default.to_owned(),
            KeyKind::Bool { default } => default.to_string(),
        }
    }

    /// What values are allowed, for messages and `--help`.
    pub fn allowed(&self) -> String {
        match self.kind {
            KeyKind::Int { min, max, .. } => format!("an integer in {min}..={max}"),
            KeyKind::Addr { .. } => "an address IP:PORT".to_owned(),
            KeyKind::Choice { options, .. } => format!("one of {}", options.join(", ")),
            KeyKind::Text { .. } => "text".to_owned(),
            KeyKind::Secret { min_len, default } => {
                let unset = if default.is_empty() { "unset, or " } else { "" };
                format!("{unset}at least {min_len} characters without whitespace")
            }
            KeyKind::Bool { .. } => "true or false".to_owned(),
            KeyKind::Url { schemes, default } => {
                let unset = if default.is_empty() {
                    "empty (off), or "
                } else {
                    ""
                };
                format!("{unset}a URL starting with {}", schemes.join(" or "))
            }
        }
    }
}

/// Every key, with its range and default (SPEC.md section 1, plus listeners and logs).
pub const KEYS: &[Key] = &[
    Key {
        name: "concurrency_limit",
        kind: KeyKind::Int { min: 1, max: 10_000, default: 1000 },
        help: "concurrent player connections in one process",
        env_aliases: &[],
    },
    Key {
        name: "timeout_ms",
        kind: KeyKind::Int { min: 100, max: 60_000, default: 30_000 },
        help: "bound on every wait on a peer or dependency: handshake, idle read, blocked write, one command",
        env_aliases: &[],
    },
    Key {
        name: "tick_hz",
        kind: KeyKind::Int { min: 1, max: 120, default: 20 },
        help: "room simulation and state rate",
        env_aliases: &[],
    },
    Key {
        name: "handshake_timeout_ms",
        kind: KeyKind::Int { min: 100, max: 60_000, default: 5000 },
        help: "how long a new connection has to finish its handshake (WebSocket upgrade and hello); capped by timeout_ms",
        env_aliases: &[],
    },
    Key {
        name: "max_message_bytes",
        kind: KeyKind::Int { min: 64, max: 1_048_576, default: 4096 },
        help: "largest message a client may send",
        env_aliases: &[],
    },
    Key {
        name: "queue_capacity",
        kind: KeyKind::Int { min: 1, max: 10_000, default: 100 },
        help: "outbound messages buffered per connection",
        env_aliases: &[],
    },
    Key {
        name: "shutdown_grace_ms",
        kind: KeyKind::Int { min: 0, max: 600_000, default: 10_000 },
        help: "how long shutdown waits for rooms and players to finish",
        env_aliases: &[],
    },
    Key {
        name: "reconnect_grace_ms",
        kind: KeyKind::Int { min: 0, max: 600_000, default: 10_000 },
        help: "how long a dropped player's seat is kept for it to resume (0: freed at once)",
        env_aliases: &[],
    },
    Key {
        name: "input_rate",
        kind: KeyKind::Int { min: 0, max: 100_000, default: 0 },
        help: "inputs per second per connection, burst of one second's worth (0: twice tick_hz)",
        env_aliases: &[],
    },
    Key {
        name: "command_rate",
        kind: KeyKind::Int { min: 1, max: 100_000, default: 10 },
        help: "requests and pings per second per connection, burst of one second's worth",
        env_aliases: &[],
    },
    Key {
        name: "max_connections_per_ip",
        kind: KeyKind::Int { min: 1, max: 10_000, default: 64 },
        help: "connections open at once from one client address (IPv6: one /64)",
        env_aliases: &[],
    },
    Key {
        name: "connection_rate_per_ip",
        kind: KeyKind::Int { min: 1, max: 10_000, default: 32 },
        help: "new connections per second from one client address, burst of one second's worth",
        env_aliases: &[],
    },
    Key {
        name: "tcp",
        kind: KeyKind::Addr { default: "0.0.0.0:7000" },
        help: "raw TCP game listener",
        env_aliases: &[],
    },
    Key {
        name: "http",
        kind: KeyKind::Addr { default: "0.0.0.0:8080" },
        help: "HTTP listener with the WebSocket endpoint /ws",
        env_aliases: &[],
    },
    Key {
        name: "admin",
        kind: KeyKind::Addr { default: "127.0.0.1:9100" },
        help: "admin listener (/healthz, /readyz, /metrics, /admin/*)",
        env_aliases: &[],
    },
    Key {
        name: "admin_token",
        kind: KeyKind::Secret { min_len: 16, default: "" },
        help: "bearer token for the admin API /admin/* (unset: the admin API is off); prefer the environment or the file to the flag",
        env_aliases: &[],
    },
    Key {
        name: "log_level",
        kind: KeyKind::Text { default: "info" },
        help: "log filter: error, warn, info, debug, trace, or target=level directives",
        env_aliases: &["RALLY_LOG"],
    },
    Key {
        name: "log_format",
        kind: KeyKind::Choice { options: &["pretty", "json"], default: "pretty" },
        help: "log line format",
        env_aliases: &[],
    },
    Key {
        name: "database_url",
        kind: KeyKind::Url {
            schemes: &["sqlite:", "postgres://", "postgresql://"],
            default: rally_store::DEFAULT_DATABASE_URL,
        },
        help: "accounts and player data: a SQLite file (created if missing) or a PostgreSQL server",
        env_aliases: &[],
    },
    Key {
        name: "auth_secret",
        kind: KeyKind::Secret { min_len: 16, default: DEVELOPMENT_AUTH_SECRET },
        help: "key that signs session tokens (production: 32+ bytes, not the default); prefer the environment or the file to the flag",
        env_aliases: &[],
    },
    Key {
        name: "environment",
        kind: KeyKind::Choice { options: &["development", "production"], default: "development" },
        help: "production refuses the default auth_secret, a short one, and auth_required = false",
        env_aliases: &[],
    },
    Key {
        name: "session_ttl_secs",
        kind: KeyKind::Int { min: 60, max: 2_592_000, default: 86_400 },
        help: "how long a session token stays valid",
        env_aliases: &[],
    },
    Key {
        name: "auth_webhook_url",
        kind: KeyKind::Url { schemes: &["http://"], default: "" },
        help: "custom login: the game backend's webhook, POSTed {\"credential\"} (empty: custom login off)",
        env_aliases: &[],
    },
    Key {
        name: "auth_required",
        kind: KeyKind::Bool { default: true },
        help: "sessions must log in before playing (false: a development switch production refuses)",
        env_aliases: &[],
    },
];

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
        let mut ints = BTreeMap::new();
        let mut texts = BTreeMap::new();
        let mut secrets = BTreeMap::new();
        let mut bools = BTreeMap::new();
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
                    ints.insert(k.name, n);
                }
                KeyKind::Addr { .. } => {
                    value.trim().parse::<SocketAddr>().map_err(|_| invalid())?;
                    texts.insert(k.name, value.trim().to_owned());
                }
                KeyKind::Choice { options, .. } => {
                    if !options.contains(&value.trim()) {
                        return Err(invalid());
                    }
                    texts.insert(k.name, value.trim().to_owned());
                }
                KeyKind::Text { .. } => {
                    if value.trim().is_empty() {
                        return Err(invalid());
                    }
                    texts.insert(k.name, value.trim().to_owned());
                }
                KeyKind::Secret { min_len, .. } => {
                    if value.is_empty() {
                        continue;
                    }
                    if value.chars().count() < min_len || value.chars().any(char::is_whitespace) {
                        return Err(invalid());
                    }
                    secrets.insert(k.name, Secret::new(value.clone()));
                }
                KeyKind::Bool { .. } => {
                    let b = match value.trim() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(invalid()),
                    };
                    bools.insert(k.name, b);
                }
                KeyKind::Url { schemes, default } => {
                    let url = value.trim();
                    if url.is_empty() && default.is_empty() {
                        texts.insert(k.name, String::new());
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
                    texts.insert(k.name, url.to_owned());
                }
            }
        }
        // Every key above was inserted or returned an error; KEYS names each field below.
        let int = |name: &str| ints[name];
        let addr = |name: &str| texts[name].parse::<SocketAddr>().expect("validated above");
        Config {
            concurrency_limit: int("concurrency_limit") as u32,
            timeout_ms: int("timeout_ms"),
            tick_hz: int("tick_hz") as u32,
            handshake_timeout_ms: int("handshake_timeout_ms"),
            max_message_bytes: int("max_message_bytes") as u32,
            queue_capacity: int("queue_capacity") as u32,
            shutdown_grace_ms: int("shutdown_grace_ms"),
            reconnect_grace_ms: int("reconnect_grace_ms"),
            input_rate: int("input_rate") as u32,
            command_rate: int("command_rate") as u32,
            max_connections_per_ip: int("max_connections_per_ip") as u32,
            connection_rate_per_ip: int("connection_rate_per_ip") as u32,
            tcp: addr("tcp"),
            http: addr("http"),
            admin: addr("admin"),
            admin_token: secrets.remove("admin_token"),
            log_level: texts["log_level"].clone(),
            log_format: if texts["log_format"] == "json" {
                LogFormat::Json
            } else {
                LogFormat::Pretty
            },
            database_url: DatabaseUrl(texts["database_url"].clone()),
            // auth_secret has a default, so it is always set.
            auth_secret: secrets
                .remove("auth_secret")
                .unwrap_or_else(|| Secret::new(DEVELOPMENT_AUTH_SECRET)),
            environment: if texts["environment"] == "production" {
                Environment::Production
            } else {
                Environment::Development
            },
            session_ttl_secs: int("session_ttl_secs"),
            auth_webhook_url: Some(texts["auth_webhook_url"].clone()).filter(|u| !u.is_empty()),
            auth_required: bools["auth_required"],
        }
        .checked_for_production(&sources)
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

    /// [`Config::session_ttl_secs`] as a duration.
    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_ttl_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec() {
        let c = Config::default();
        assert_eq!(c.concurrency_limit, 1000);
        assert_eq!(c.timeout_ms, 30_000);
        assert_eq!(c.tick_hz, 20);
        assert_eq!(c.max_message_bytes, 4096);
        assert_eq!(c.queue_capacity, 100);
        assert_eq!(c.shutdown_grace_ms, 10_000);
        assert_eq!(c.reconnect_grace_ms, 10_000);
        assert_eq!(c.tcp.to_string(), "0.0.0.0:7000");
        assert_eq!(c.http.to_string(), "0.0.0.0:8080");
        assert_eq!(c.admin.to_string(), "127.0.0.1:9100");
        assert_eq!(c.admin_token, None);
        assert_eq!(c.handshake_timeout(), Duration::from_millis(5000));
        assert_eq!(c.effective_input_rate(), 40);
        assert_eq!(c.command_rate, 10);
        assert_eq!(c.max_connections_per_ip, 64);
        assert_eq!(c.connection_rate_per_ip, 32);
    }

    #[test]
    fn the_handshake_bound_is_capped_by_timeout_ms() {
        let c = Sources::new().flag("timeout_ms", "1000").load().unwrap();
        assert_eq!(c.handshake_timeout(), Duration::from_millis(1000));
        let c = Sources::new()
            .flag("timeout_ms", "1000")
            .flag("handshake_timeout_ms", "200")
            .load()
            .unwrap();
        assert_eq!(c.handshake_timeout(), Duration::from_millis(200));
        let err = Sources::new()
            .flag("handshake_timeout_ms", "50")
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("handshake_timeout_ms") && err.contains("100..=60000"),
            "{err}"
        );
    }

    #[test]
    fn admin_token_is_optional_and_never_shown() {
        let c = Sources::new()
            .env([("RALLY_ADMIN_TOKEN".into(), "0123456789abcdef-secret".into())])
            .load()
            .unwrap();
        let token = c.admin_token.as_ref().map(Secret::expose);
        assert_eq!(token, Some("0123456789abcdef-secret"));
        assert!(!format!("{c:?}").contains("0123456789abcdef"), "{c:?}");
        let c = Sources::new().flag("admin_token", "").load().unwrap();
        assert_eq!(c.admin_token, None);
        let err = Sources::new()
            .flag("admin_token", "short secret")
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("admin_token") && err.contains("at least 16") && !err.contains("short"),
            "{err}"
        );
    }

    #[test]
    fn accounts_keys_have_development_defaults() {
        let c = Config::default();
        assert_eq!(c.database_url.expose(), "sqlite://rally.db");
        assert_eq!(c.auth_secret.expose(), DEVELOPMENT_AUTH_SECRET);
        assert_eq!(c.environment, Environment::Development);
        assert_eq!(c.session_ttl_secs, 86_400);
        assert_eq!(c.auth_webhook_url, None);
        assert!(c.auth_required);
        let c = Sources::new()
            .toml(
                "auth_required = false\nsession_ttl_secs = 60\nauth_webhook_url = \"http://127.0.0.1:9/auth\"",
                "rally.toml",
            )
            .unwrap()
            .load()
            .unwrap();
        assert!(!c.auth_required);
        assert_eq!(c.session_ttl_secs, 60);
        assert_eq!(
            c.auth_webhook_url.as_deref(),
            Some("http://127.0.0.1:9/auth")
        );
        for (key, bad) in [
            ("session_ttl_secs", "59"),
            ("auth_required", "maybe"),
            ("database_url", "mysql://x/y"),
            ("auth_webhook_url", "https://auth.example/login"),
            ("environment", "staging"),
        ] {
            let err = Sources::new()
                .flag(key, bad)
                .load()
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn database_passwords_stay_out_of_debug_output() {
        let c = Sources::new()
            .env([(
                "RALLY_DATABASE_URL".into(),
                "postgres://rally:hunter2@db/rally".into(),
            )])
            .load()
            .unwrap();
        assert_eq!(c.database_url.expose(), "postgres://rally:hunter2@db/rally");
        let shown = format!("{c:?} {}", c.database_url);
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn production_refuses_development_switches_naming_the_key() {
        let prod = || Sources::new().flag("environment", "production");
        let err = prod().load().unwrap_err().to_string();
        assert!(
            err.contains("auth_secret") && err.contains("development default"),
            "{err}"
        );
        let err = prod()
            .env([("RALLY_AUTH_SECRET".into(), "0123456789abcdef-short".into())])
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("auth_secret") && err.contains("32 bytes") && !err.contains("short"),
            "{err}"
        );
        let strong = "0123456789abcdef0123456789abcdef";
        let err = prod()
            .env([("RALLY_AUTH_SECRET".into(), strong.into())])
            .flag("auth_required", "false")
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("auth_required") && err.contains("--auth-required"),
            "{err}"
        );
        let c = prod()
            .env([("RALLY_AUTH_SECRET".into(), strong.into())])
            .load()
            .unwrap();
        assert_eq!(c.environment, Environment::Production);
        assert!(!format!("{c:?}").contains(strong));
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let s = Sources::new()
            .toml(
                "tick_hz = 30\nqueue_capacity = 7\ntimeout_ms = 1000",
                "rally.toml",
            )
            .unwrap()
            .env([
                ("RALLY_TICK_HZ".into(), "40".into()),
                ("RALLY_TIMEOUT_MS".into(), "2000".into()),
            ])
            .flag("tick_hz", "50");
        let c = s.load().unwrap();
        assert_eq!((c.tick_hz, c.timeout_ms, c.queue_capacity), (50, 2000, 7));
    }

    #[test]
    fn out_of_range_names_key_value_source_and_range() {
        let err = Sources::new()
            .env([("RALLY_CONCURRENCY_LIMIT".into(), "20000".into())])
            .load()
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid concurrency_limit = \"20000\" (from environment variable RALLY_CONCURRENCY_LIMIT): \
             allowed is an integer in 1..=10000"
        );
        let err = Sources::new()
            .flag("tick_hz", "0")
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tick_hz") && err.contains("--tick-hz") && err.contains("1..=120"),
            "{err}"
        );
        let err = Sources::new()
            .toml("timeout_ms = -5", "x.toml")
            .unwrap()
            .load()
            .unwrap_err();
        assert!(err.to_string().contains("config file x.toml"), "{err}");
    }

    #[test]
    fn unknown_file_keys_and_bad_types_are_refused() {
        let err = Sources::new()
            .toml("tick_rate = 20", "rally.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown key \"tick_rate\""), "{err}");
        let err = Sources::new()
            .flag("tcp", "not-an-address")
            .load()
            .unwrap_err()
            .to_string();
        assert!(err.contains("IP:PORT"), "{err}");
        let err = Sources::new()
            .flag("log_format", "xml")
            .load()
            .unwrap_err()
            .to_string();
        assert!(err.contains("pretty, json"), "{err}");
    }
}
