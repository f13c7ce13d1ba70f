//! Argument checks, run before any database work so a bad argument costs no round trip
//! and is refused the same way on both backends. Each refusal names the argument.

use crate::error::StoreError;

/// Device ids are chosen by the client: long enough to be unguessable-ish (a UUID is 36).
const DEVICE_ID_LEN: std::ops::RangeInclusive<usize> = 8..=128;
/// Custom ids come from the game's own backend, which may use short ids like "42".
const EXTERNAL_ID_LEN: std::ops::RangeInclusive<usize> = 1..=128;
const DISPLAY_NAME_CHARS: std::ops::RangeInclusive<usize> = 1..=32;
const KEY_LEN: std::ops::RangeInclusive<usize> = 1..=64;

/// A device id: 8..=128 visible ASCII characters (`!`..=`~`, no spaces).
pub(crate) fn device_id(id: &str) -> Result<(), StoreError> {
    identifier("device_id", id, DEVICE_ID_LEN)
}

/// A custom (backend-verified) id: 1..=128 visible ASCII characters.
pub(crate) fn external_id(id: &str) -> Result<(), StoreError> {
    identifier("external_id", id, EXTERNAL_ID_LEN)
}

fn identifier(
    field: &'static str,
    id: &str,
    len: std::ops::RangeInclusive<usize>,
) -> Result<(), StoreError> {
    if !len.contains(&id.len()) {
        return Err(StoreError::invalid(
            field,
            format!(
                "{} characters; must be {}..={}",
                id.len(),
                len.start(),
                len.end()
            ),
        ));
    }
    if let Some(bad) = id.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(StoreError::invalid(
            field,
            format!("contains {bad:?}; only visible ASCII characters (no spaces) are allowed"),
        ));
    }
    Ok(())
}

/// A display name: 1..=32 characters, no control characters, not only spaces.
pub(crate) fn display_name(name: &str) -> Result<(), StoreError> {
    let chars = name.chars().count();
    if !DISPLAY_NAME_CHARS.contains(&chars) {
        return Err(StoreError::invalid(
            "display_name",
            format!(
                "{chars} characters; must be {}..={}",
                DISPLAY_NAME_CHARS.start(),
                DISPLAY_NAME_CHARS.end()
            ),
        ));
    }
    if let Some(bad) = name.chars().find(|c| c.is_control()) {
        return Err(StoreError::invalid(
            "display_name",
            format!("contains the control character {bad:?}"),
        ));
    }
    if name.trim().is_empty() {
        return Err(StoreError::invalid("display_name", "is blank"));
    }
    Ok(())
}

/// A key-value key: 1..=64 characters from `[A-Za-z0-9_.-]`.
pub(crate) fn key(key: &str) -> Result<(), StoreError> {
    name_like("key", key)
}

/// A match kind (a room kind such as `arena`): same rule as keys.
pub(crate) fn kind(kind: &str) -> Result<(), StoreError> {
    name_like("kind", kind)
}

fn name_like(field: &'static str, s: &str) -> Result<(), StoreError> {
    if !KEY_LEN.contains(&s.len()) {
        return Err(StoreError::invalid(
            field,
            format!(
                "{} characters; must be {}..={}",
                s.len(),
                KEY_LEN.start(),
                KEY_LEN.end()
            ),
        ));
    }
    if let Some(bad) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(StoreError::invalid(
            field,
            format!("contains {bad:?}; only A-Z a-z 0-9 _ . - are allowed"),
        ));
    }
    Ok(())
}

/// Serializes a JSON value, refusing it when the text is longer than `max_bytes`.
pub(crate) fn json_size(
    field: &'static str,
    value: &serde_json::Value,
    max_bytes: usize,
) -> Result<(), StoreError> {
    let len = serde_json::to_vec(value)
        .map_err(|e| StoreError::invalid(field, format!("cannot be serialized: {e}")))?
        .len();
    if len > max_bytes {
        return Err(StoreError::invalid(
            field,
            format!("{len} bytes as JSON; at most {max_bytes}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(r: Result<(), StoreError>) -> Option<&'static str> {
        match r {
            Err(StoreError::Invalid { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn device_ids() {
        assert!(device_id("0123abcd").is_ok());
        assert!(device_id(&"x".repeat(128)).is_ok());
        assert_eq!(field(device_id("short")), Some("device_id"));
        assert_eq!(field(device_id(&"x".repeat(129))), Some("device_id"));
        assert_eq!(field(device_id("has a space")), Some("device_id"));
        assert_eq!(field(device_id("tab\tinside!")), Some("device_id"));
        assert_eq!(field(device_id("nonascii-é-id")), Some("device_id"));
        assert!(external_id("42").is_ok());
        assert_eq!(field(external_id("")), Some("external_id"));
    }

    #[test]
    fn display_names() {
        assert!(display_name("Ada").is_ok());
        assert!(display_name("Zoë the 2nd").is_ok());
        assert!(
            display_name(&"é".repeat(32)).is_ok(),
            "counted in characters"
        );
        assert_eq!(field(display_name("")), Some("display_name"));
        assert_eq!(field(display_name(&"a".repeat(33))), Some("display_name"));
        assert_eq!(field(display_name("bell\u{7}")), Some("display_name"));
        assert_eq!(field(display_name("   ")), Some("display_name"));
    }

    #[test]
    fn keys_and_kinds() {
        assert!(key("save.slot-1_a").is_ok());
        assert!(key(&"k".repeat(64)).is_ok());
        assert_eq!(field(key("")), Some("key"));
        assert_eq!(field(key(&"k".repeat(65))), Some("key"));
        assert_eq!(field(key("a/b")), Some("key"));
        assert_eq!(field(kind("arena 2")), Some("kind"));
    }

    #[test]
    fn json_sizes() {
        let v = serde_json::json!({"a": "x".repeat(100)});
        assert!(json_size("value", &v, 200).is_ok());
        assert_eq!(field(json_size("value", &v, 50)), Some("value"));
    }
}
