//! [`Redacted`]: a value that `Debug` never shows, for secrets (tokens, credentials, keys)
//! held in structs that derive `Debug`.
//!
//! It lives in the protocol crate because that is the one crate below everything that
//! holds a secret (the server, the client, `rally-auth`), has no dependencies of its own
//! worth mentioning, and already redacts the tokens in its messages' `Debug` output.

use std::fmt;

/// A secret: `Debug` prints `<redacted>`, and there is no `Display`, so it cannot reach a
/// log line by accident. Reading it takes an explicit [`Redacted::expose`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Redacted<T>(T);

impl<T> Redacted<T> {
    /// Wraps a secret.
    pub const fn new(secret: T) -> Self {
        Redacted(secret)
    }

    /// The secret itself, to use it; never log it.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the secret.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Redacted<T> {
    fn from(secret: T) -> Self {
        Redacted(secret)
    }
}

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::Redacted;

    #[derive(Debug)]
    #[allow(dead_code)] // Read only through `Debug`, which is what the test checks.
    struct Login {
        user: &'static str,
        password: Redacted<&'static str>,
    }

    #[test]
    fn debug_shows_the_other_fields_but_not_the_secret() {
        let login = Login {
            user: "ada",
            password: Redacted::new("hunter2"),
        };
        let shown = format!("{login:?} {login:#?}");
        assert!(
            shown.contains("ada") && shown.contains("<redacted>"),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(*login.password.expose(), "hunter2");
    }
}
