//! The key table's machinery: what kind of value a key holds ([`KeyKind`]), a key's
//! names and texts ([`Key`]), and the macro that turns the one table in `config.rs` into
//! both [`Config`](super::Config) and [`KEYS`](super::KEYS), with one typed conversion per
//! field ([`FromValue`]) in place of a lookup by name.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::{DatabaseUrl, Environment, LogFormat, Secret, DEVELOPMENT_AUTH_SECRET};

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
    pub(super) fn default_value(&self) -> String {
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

/// One key's value after validation, before it becomes its field's type.
#[derive(Debug)]
pub(super) enum Value {
    /// [`KeyKind::Int`], in range.
    Int(u64),
    /// [`KeyKind::Addr`].
    Addr(SocketAddr),
    /// [`KeyKind::Choice`], [`KeyKind::Text`] and [`KeyKind::Url`], trimmed.
    Text(String),
    /// [`KeyKind::Secret`]: `None` when unset.
    Secret(Option<Secret>),
    /// [`KeyKind::Bool`].
    Bool(bool),
}

/// The validated value of every key, by name: `Sources::load` fills it with one value
/// per entry of `KEYS`, and `Config::from_values` takes one per field.
#[derive(Debug, Default)]
pub(super) struct Values(BTreeMap<&'static str, Value>);

impl Values {
    pub(super) fn insert(&mut self, name: &'static str, value: Value) {
        self.0.insert(name, value);
    }

    /// The value of `name` as its field's type.
    pub(super) fn take<T: FromValue>(&mut self, name: &'static str) -> T {
        // Cannot be missing: `Config`'s fields and `KEYS` come from the same table, and
        // `load` inserts a value for every key in `KEYS` or fails.
        let value = self.0.remove(name).unwrap_or_else(|| mismatch(name));
        T::from_value(name, value)
    }
}

/// A field whose type does not fit its key's kind: a mistake in the table, which the
/// tests' `Config::default()` hits at once.
fn mismatch(name: &str) -> ! {
    panic!("config key table: the kind of {name} does not fit its field's type")
}

/// Turns a key's validated value into its field's type.
pub(super) trait FromValue {
    fn from_value(name: &str, value: Value) -> Self;
}

impl FromValue for u64 {
    fn from_value(name: &str, value: Value) -> Self {
        match value {
            Value::Int(n) => n,
            _ => mismatch(name),
        }
    }
}

impl FromValue for u32 {
    fn from_value(name: &str, value: Value) -> Self {
        // Every u32 field's range ends well below u32::MAX.
        u32::try_from(u64::from_value(name, value)).unwrap_or_else(|_| mismatch(name))
    }
}

impl FromValue for bool {
    fn from_value(name: &str, value: Value) -> Self {
        match value {
            Value::Bool(b) => b,
            _ => mismatch(name),
        }
    }
}

impl FromValue for SocketAddr {
    fn from_value(name: &str, value: Value) -> Self {
        match value {
            Value::Addr(a) => a,
            _ => mismatch(name),
        }
    }
}

impl FromValue for String {
    fn from_value(name: &str, value: Value) -> Self {
        match value {
            Value::Text(t) => t,
            _ => mismatch(name),
        }
    }
}

impl FromValue for Option<String> {
    /// An optional URL: empty means off.
    fn from_value(name: &str, value: Value) -> Self {
        Some(String::from_value(name, value)).filter(|t| !t.is_empty())
    }
}

impl FromValue for DatabaseUrl {
    fn from_value(name: &str, value: Value) -> Self {
        DatabaseUrl::new(String::from_value(name, value))
    }
}

impl FromValue for LogFormat {
    fn from_value(name: &str, value: Value) -> Self {
        match String::from_value(name, value).as_str() {
            "json" => LogFormat::Json,
            _ => LogFormat::Pretty,
        }
    }
}

impl FromValue for Environment {
    fn from_value(name: &str, value: Value) -> Self {
        match String::from_value(name, value).as_str() {
            "production" => Environment::Production,
            _ => Environment::Development,
        }
    }
}

impl FromValue for Option<Secret> {
    fn from_value(name: &str, value: Value) -> Self {
        match value {
            Value::Secret(s) => s,
            _ => mismatch(name),
        }
    }
}

impl FromValue for Secret {
    /// A secret with a default (`auth_secret`) is always set; the fallback only keeps
    /// this total.
    fn from_value(name: &str, value: Value) -> Self {
        Option::<Secret>::from_value(name, value)
            .unwrap_or_else(|| Secret::new(DEVELOPMENT_AUTH_SECRET))
    }
}

/// Declares the configuration once: each entry is a documented `Config` field, its type,
/// its [`KeyKind`] (range or choices and default), its `--help` line and any other
/// environment names. Expands to `pub struct Config`, `pub const KEYS` (in table order)
/// and `Config::from_values`, so a key without a field or a field without a key cannot
/// compile.
macro_rules! config_keys {
    ($(
        $(#[doc = $doc:literal])*
        $field:ident: $ty:ty = $kind:expr, help: $help:literal
        $(, env_aliases: [$($alias:literal),*])?;
    )*) => {
        /// A validated configuration: one field per key of [`KEYS`], declared together.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Config {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        /// Every key, with its range and default (SPEC.md section 1, plus listeners, logs
        /// and accounts), in the order `--help` lists them.
        pub const KEYS: &[Key] = &[
            $( Key {
                name: stringify!($field),
                kind: $kind,
                help: $help,
                env_aliases: &[$($($alias),*)?],
            }, )*
        ];

        impl Config {
            /// The config the validated `values` (one per key) describe.
            fn from_values(values: &mut Values) -> Config {
                Config { $( $field: values.take(stringify!($field)), )* }
            }
        }
    };
}
pub(super) use config_keys;
