//! [`RoomOptions`]: the options a room was created with, a bounded MessagePack map.
//!
//! A client sends options with `create` and `join_or_create`; the server checks them
//! here (size, entries, nesting, keys) before any game sees them, so a game reads them
//! without guarding against hostile input, and the same rules hold for listing filters.

use rally_protocol::msgpack::{self, Reader};

/// Largest options map, in bytes of MessagePack.
pub const MAX_OPTIONS_BYTES: usize = 1024;
/// Most keys in an options map.
pub const MAX_OPTION_ENTRIES: usize = 32;
/// Deepest nesting below the map itself (a value that is an array of maps is depth 2).
pub const MAX_OPTION_DEPTH: usize = 4;
/// Longest key, in bytes.
pub const MAX_OPTION_KEY_BYTES: usize = 64;
/// Most values in the whole map, nested ones included: bounds the work of a check.
const MAX_OPTION_VALUES: usize = 256;

/// Why options were refused; the text goes to the client with `BAD_OPTIONS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionsError(pub String);

impl std::fmt::Display for OptionsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OptionsError {}

/// A room's creation options (or a listing filter): a MessagePack map with string keys,
/// at most [`MAX_OPTIONS_BYTES`], [`MAX_OPTION_ENTRIES`] keys and [`MAX_OPTION_DEPTH`]
/// levels of nesting. Read values with [`RoomOptions::str`], [`RoomOptions::i64`], ... or
/// raw with [`RoomOptions::get`].
#[derive(Clone, PartialEq, Eq, Default)]
pub struct RoomOptions {
    /// The map's bytes, as sent; empty for no options.
    bytes: Vec<u8>,
}

impl std::fmt::Debug for RoomOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.entries().map(|(k, v)| (k, Shown(v))))
            .finish()
    }
}

/// A value shown as JSON-like text in `Debug` output.
struct Shown<'a>(&'a [u8]);

impl std::fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&to_json(self.0).to_string())
    }
}

impl RoomOptions {
    /// No options.
    pub fn empty() -> Self {
        RoomOptions::default()
    }

    /// Checks `bytes` (one MessagePack map, or nil or nothing for no options) against the
    /// bounds.
    pub fn parse(bytes: &[u8]) -> Result<Self, OptionsError> {
        if bytes.is_empty() || bytes == [0xc0] {
            return Ok(RoomOptions::empty());
        }
        if bytes.len() > MAX_OPTIONS_BYTES {
            return Err(OptionsError(format!(
                "options are {} bytes; at most {MAX_OPTIONS_BYTES}",
                bytes.len()
            )));
        }
        let mut r = Reader::new(bytes);
        let entries = r
            .read_map_len()
            .map_err(|_| OptionsError("options must be a MessagePack map (or nil)".into()))?;
        if entries as usize > MAX_OPTION_ENTRIES {
            return Err(OptionsError(format!(
                "options have {entries} keys; at most {MAX_OPTION_ENTRIES}"
            )));
        }
        let mut values = 0;
        for _ in 0..entries {
            let key = r
                .read_str()
                .map_err(|_| OptionsError("option keys must be strings".into()))?;
            if key.is_empty() || key.len() > MAX_OPTION_KEY_BYTES {
                return Err(OptionsError(format!(
                    "option keys are 1 to {MAX_OPTION_KEY_BYTES} bytes"
                )));
            }
            check_value(&mut r, 1, &mut values)?;
        }
        if r.remaining() != 0 {
            return Err(OptionsError("bytes follow the options map".into()));
        }
        let options = RoomOptions {
            bytes: bytes.to_vec(),
        };
        let mut seen: Vec<&str> = Vec::with_capacity(entries as usize);
        for (k, _) in options.entries() {
            if seen.contains(&k) {
                return Err(OptionsError(format!("option key {k:?} appears twice")));
            }
            seen.push(k);
        }
        Ok(options)
    }

    /// The map's MessagePack bytes; an empty map (`0x80`) when there are no options.
    pub fn to_bytes(&self) -> Vec<u8> {
        if self.bytes.is_empty() {
            vec![0x80]
        } else {
            self.bytes.clone()
        }
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.entries().next().is_none()
    }

    /// Every key with its raw value, in the order sent.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        let mut r = Reader::new(&self.bytes);
        // Checked by `parse`: a map of string keys; an empty options value has no map.
        let mut left = if self.bytes.is_empty() {
            0
        } else {
            r.read_map_len().unwrap_or(0)
        };
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let key = r.read_str().ok()?;
            let value = r.read_value_bytes().ok()?;
            Some((key, value))
        })
    }

    /// The raw MessagePack value of `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.entries().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// `key`'s value if it is a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| Reader::new(v).read_str().ok())
    }

    /// `key`'s value if it is an integer that fits an `i64`.
    pub fn i64(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(|v| Reader::new(v).read_i64().ok())
    }

    /// `key`'s value if it is a number (integer or float).
    pub fn f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(|v| Reader::new(v).read_f64().ok())
    }

    /// `key`'s value if it is a boolean.
    pub fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(|v| Reader::new(v).read_bool().ok())
    }

    /// `key`'s value in a canonical encoding, so that equal values compare equal whoever
    /// encoded them (an integer in its smallest form, a float as float 64, a string in
    /// its shortest header); nil when the key is absent. Matching by filter keys uses it.
    pub fn canonical(&self, key: &str) -> Vec<u8> {
        let mut out = Vec::new();
        match self.get(key) {
            None => msgpack::write_nil(&mut out),
            Some(v) => canonical_value(v, &mut out),
        }
        out
    }

    /// Whether every key of `filter` is in these options with an equal value.
    pub fn matches(&self, filter: &RoomOptions) -> bool {
        filter.to_filter().matches(self, &mut Vec::new())
    }

    /// These options as a [`Filter`]: each key with its canonical value, worked out once
    /// to test many rooms.
    pub fn to_filter(&self) -> Filter {
        Filter {
            wanted: self
                .entries()
                .map(|(k, v)| {
                    let mut canonical = Vec::new();
                    canonical_value(v, &mut canonical);
                    (k.to_owned(), canonical)
                })
                .collect(),
        }
    }

    /// The options as JSON (for the admin API and logs); binary values and extensions
    /// show as their length.
    pub fn to_json(&self) -> serde_json::Value {
        if self.bytes.is_empty() {
            return serde_json::Value::Object(serde_json::Map::new());
        }
        to_json(&self.bytes)
    }
}

/// Option values a room must have (a listing's filter), ready to test room after room.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    /// Each key with its value in canonical form.
    wanted: Vec<(String, Vec<u8>)>,
}

impl Filter {
    /// Whether the filter asks for nothing (every room matches).
    pub fn is_empty(&self) -> bool {
        self.wanted.is_empty()
    }

    /// Whether `options` has every key with an equal value; `scratch` is a buffer reused
    /// from call to call, so testing a room allocates nothing once it has grown.
    pub fn matches(&self, options: &RoomOptions, scratch: &mut Vec<u8>) -> bool {
        self.wanted.iter().all(|(k, want)| match options.get(k) {
            Some(have) => {
                scratch.clear();
                canonical_value(have, scratch);
                scratch == want
            }
            None => false,
        })
    }
}

/// Checks one value's nesting and counts it.
fn check_value(r: &mut Reader<'_>, depth: usize, values: &mut usize) -> Result<(), OptionsError> {
    *values += 1;
    if *values > MAX_OPTION_VALUES {
        return Err(OptionsError(format!(
            "options hold more than {MAX_OPTION_VALUES} values"
        )));
    }
    let bad = |_| OptionsError("options are not well-formed MessagePack".into());
    let mut peek = r.clone();
    if let Ok(n) = peek.read_array_len() {
        if depth >= MAX_OPTION_DEPTH {
            return Err(too_deep());
        }
        *r = peek;
        for _ in 0..n {
            check_value(r, depth + 1, values)?;
        }
        return Ok(());
    }
    let mut peek = r.clone();
    if let Ok(n) = peek.read_map_len() {
        if depth >= MAX_OPTION_DEPTH {
            return Err(too_deep());
        }
        *r = peek;
        for _ in 0..n {
            check_value(r, depth + 1, values)?;
            check_value(r, depth + 1, values)?;
        }
        return Ok(());
    }
    r.skip_value().map_err(bad)
}

fn too_deep() -> OptionsError {
    OptionsError(format!(
        "options nest deeper than {MAX_OPTION_DEPTH} levels"
    ))
}

/// Appends `v` in its canonical encoding (see [`RoomOptions::canonical`]).
fn canonical_value(v: &[u8], out: &mut Vec<u8>) {
    if let Ok(n) = Reader::new(v).read_i64() {
        msgpack::write_int(out, n);
    } else if let Ok(n) = Reader::new(v).read_u64() {
        msgpack::write_uint(out, n);
    } else if matches!(v.first(), Some(0xca | 0xcb)) {
        if let Ok(f) = Reader::new(v).read_f64() {
            msgpack::write_f64(out, f);
        }
    } else if let Ok(s) = Reader::new(v).read_str() {
        msgpack::write_str(out, s);
    } else {
        out.extend_from_slice(v);
    }
}

/// One MessagePack value as JSON, for people: maps with string keys become objects,
/// binary and extension values show as `"<n bytes>"`. Nesting is bounded by whoever
/// checked the value ([`RoomOptions::parse`], or the metadata size limit).
pub fn to_json(v: &[u8]) -> serde_json::Value {
    let mut r = Reader::new(v);
    value_json(&mut r, 0).unwrap_or(serde_json::Value::Null)
}

/// Nesting past this shows as null: recursion is bounded for any input.
const MAX_JSON_DEPTH: usize = 16;

fn value_json(r: &mut Reader<'_>, depth: usize) -> Option<serde_json::Value> {
    use serde_json::Value;
    if depth > MAX_JSON_DEPTH {
        r.skip_value().ok()?;
        return Some(Value::Null);
    }
    if r.try_nil() {
        return Some(Value::Null);
    }
    let mut p = r.clone();
    if let Ok(b) = p.read_bool() {
        *r = p;
        return Some(Value::Bool(b));
    }
    let mut p = r.clone();
    if let Ok(n) = p.read_i64() {
        *r = p;
        return Some(Value::from(n));
    }
    let mut p = r.clone();
    if let Ok(n) = p.read_u64() {
        *r = p;
        return Some(Value::from(n));
    }
    let mut p = r.clone();
    if let Ok(f) = p.read_f64() {
        *r = p;
        return Some(Value::from(f));
    }
    let mut p = r.clone();
    if let Ok(s) = p.read_str() {
        *r = p;
        return Some(Value::from(s));
    }
    let mut p = r.clone();
    if let Ok(n) = p.read_array_len() {
        *r = p;
        let mut items = Vec::new();
        for _ in 0..n {
            items.push(value_json(r, depth + 1)?);
        }
        return Some(Value::Array(items));
    }
    let mut p = r.clone();
    if let Ok(n) = p.read_map_len() {
        *r = p;
        let mut map = serde_json::Map::new();
        for _ in 0..n {
            let key = match value_json(r, depth + 1)? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let value = value_json(r, depth + 1)?;
            map.insert(key, value);
        }
        return Some(Value::Object(map));
    }
    let bytes = r.read_value_bytes().ok()?;
    Some(Value::from(format!("<{} bytes>", bytes.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        msgpack::write_map_len(&mut out, entries.len() as u32);
        for (k, v) in entries {
            msgpack::write_str(&mut out, k);
            out.extend_from_slice(v);
        }
        out
    }

    fn s(v: &str) -> Vec<u8> {
        let mut out = Vec::new();
        msgpack::write_str(&mut out, v);
        out
    }

    #[test]
    fn reads_typed_values_and_treats_nil_as_none() {
        let o = RoomOptions::parse(&map(&[
            ("mode", &s("speed")),
            ("laps", &[3]),
            ("hard", &[0xc3]),
        ]))
        .unwrap();
        assert_eq!(o.str("mode"), Some("speed"));
        assert_eq!(o.i64("laps"), Some(3));
        assert_eq!(o.f64("laps"), Some(3.0));
        assert_eq!(o.bool("hard"), Some(true));
        assert_eq!(o.str("laps"), None);
        assert_eq!(o.get("nope"), None);
        assert!(RoomOptions::parse(&[0xc0]).unwrap().is_empty());
        assert!(RoomOptions::parse(&[]).unwrap().is_empty());
        assert_eq!(
            o.to_json(),
            serde_json::json!({"mode": "speed", "laps": 3, "hard": true})
        );
    }

    #[test]
    fn refuses_what_is_not_a_bounded_map() {
        assert!(RoomOptions::parse(&[0x01]).is_err(), "not a map");
        assert!(
            RoomOptions::parse(&[0x81, 0x01, 0x02]).is_err(),
            "integer key"
        );
        assert!(RoomOptions::parse(&[0x81]).is_err(), "truncated");
        let mut trailing = map(&[("a", &[1])]);
        trailing.push(0xc0);
        assert!(RoomOptions::parse(&trailing).is_err(), "trailing bytes");
        assert!(
            RoomOptions::parse(&map(&[("a", &[1]), ("a", &[2])])).is_err(),
            "duplicate"
        );
        let many: Vec<(String, Vec<u8>)> = (0..=MAX_OPTION_ENTRIES)
            .map(|i| (format!("k{i}"), vec![1]))
            .collect();
        let many: Vec<(&str, &[u8])> = many.iter().map(|(k, v)| (k.as_str(), &v[..])).collect();
        assert!(RoomOptions::parse(&map(&many)).is_err(), "too many keys");
        let long = "k".repeat(MAX_OPTION_KEY_BYTES + 1);
        assert!(
            RoomOptions::parse(&map(&[(&long, &[1])])).is_err(),
            "long key"
        );
        // [[[[1]]]] is four levels below the map: refused; three are fine.
        assert!(RoomOptions::parse(&map(&[("d", &[0x91, 0x91, 0x91, 0x91, 0x01])])).is_err());
        assert!(RoomOptions::parse(&map(&[("d", &[0x91, 0x91, 0x91, 0x01])])).is_ok());
        let big = s(&"x".repeat(MAX_OPTIONS_BYTES));
        assert!(
            RoomOptions::parse(&map(&[("big", &big)])).is_err(),
            "too large"
        );
        // A hostile depth never recurses past the bound.
        let mut deep = vec![0x81, 0xa1, b'd'];
        deep.extend(std::iter::repeat_n(0x91, 600));
        deep.push(0x01);
        assert!(RoomOptions::parse(&deep).is_err());
    }

    #[test]
    fn filters_match_equal_values_however_encoded() {
        let room =
            RoomOptions::parse(&map(&[("mode", &s("speed")), ("n", &[0xcd, 0x00, 0x05])])).unwrap();
        let same = RoomOptions::parse(&map(&[("n", &[0x05])])).unwrap();
        let other = RoomOptions::parse(&map(&[("mode", &s("classic"))])).unwrap();
        let missing = RoomOptions::parse(&map(&[("map", &s("dusk"))])).unwrap();
        assert!(room.matches(&same));
        assert!(room.matches(&RoomOptions::empty()));
        assert!(!room.matches(&other));
        assert!(!room.matches(&missing));
        assert_eq!(room.canonical("n"), vec![0x05]);
        assert_eq!(room.canonical("absent"), vec![0xc0]);
    }
}
