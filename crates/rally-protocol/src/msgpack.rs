//! A small MessagePack reader and writer.
//!
//! Rally's message bodies are MessagePack (<https://msgpack.org>). The reader borrows from
//! the input and never allocates, so a hostile peer cannot make it allocate either; skipping
//! a value is iterative (no recursion), so deep nesting cannot overflow the stack.
//! The writer appends to a `Vec<u8>` and cannot fail.

use thiserror::Error;

/// Why a MessagePack value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReadError {
    /// The input ended in the middle of a value.
    #[error("unexpected end of input")]
    Eof,
    /// The next value is not of the expected type.
    #[error("expected {expected}, found marker 0x{marker:02x}")]
    Type {
        /// What the caller asked for.
        expected: &'static str,
        /// The marker byte that was found instead.
        marker: u8,
    },
    /// An integer does not fit the requested type.
    #[error("integer out of range for {0}")]
    Range(&'static str),
    /// A string is not valid UTF-8.
    #[error("string is not valid UTF-8")]
    Utf8,
    /// The marker byte 0xc1 is never used by MessagePack.
    #[error("reserved marker 0xc1")]
    Reserved,
}

/// A cursor over a MessagePack byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// How many bytes have been read.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn byte(&mut self) -> Result<u8, ReadError> {
        let b = *self.buf.get(self.pos).ok_or(ReadError::Eof)?;
        self.pos += 1;
        Ok(b)
    }

    fn peek(&self) -> Result<u8, ReadError> {
        self.buf.get(self.pos).copied().ok_or(ReadError::Eof)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        if self.remaining() < n {
            return Err(ReadError::Eof);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> Result<u64, ReadError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// Reads a nil.
    pub fn read_nil(&mut self) -> Result<(), ReadError> {
        match self.peek()? {
            0xc0 => {
                self.pos += 1;
                Ok(())
            }
            m => Err(ReadError::Type {
                expected: "nil",
                marker: m,
            }),
        }
    }

    /// True (and consumes it) when the next value is nil.
    pub fn try_nil(&mut self) -> bool {
        if self.peek() == Ok(0xc0) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Reads a boolean.
    pub fn read_bool(&mut self) -> Result<bool, ReadError> {
        match self.peek()? {
            0xc2 => {
                self.pos += 1;
                Ok(false)
            }
            0xc3 => {
                self.pos += 1;
                Ok(true)
            }
            m => Err(ReadError::Type {
                expected: "bool",
                marker: m,
            }),
        }
    }

    /// Reads any integer encoding as an `i128`, wide enough for every MessagePack integer.
    fn read_integer(&mut self, expected: &'static str) -> Result<i128, ReadError> {
        let m = self.peek()?;
        let v = match m {
            0x00..=0x7f => {
                self.pos += 1;
                i128::from(m)
            }
            0xe0..=0xff => {
                self.pos += 1;
                i128::from(m as i8)
            }
            0xcc..=0xcf => {
                self.pos += 1;
                let n = 1usize << (m - 0xcc);
                i128::from(self.be(n)?)
            }
            0xd0..=0xd3 => {
                self.pos += 1;
                let n = 1usize << (m - 0xd0);
                let raw = self.be(n)?;
                let shift = 64 - 8 * n as u32;
                i128::from(((raw << shift) as i64) >> shift)
            }
            _ => {
                return Err(ReadError::Type {
                    expected,
                    marker: m,
                })
            }
        };
        Ok(v)
    }

    /// Reads a non-negative integer that fits in a `u64`.
    pub fn read_u64(&mut self) -> Result<u64, ReadError> {
        let v = self.read_integer("unsigned integer")?;
        u64::try_from(v).map_err(|_| ReadError::Range("u64"))
    }

    /// Reads a non-negative integer that fits in a `u32`.
    pub fn read_u32(&mut self) -> Result<u32, ReadError> {
        let v = self.read_integer("unsigned integer")?;
        u32::try_from(v).map_err(|_| ReadError::Range("u32"))
    }

    /// Reads a non-negative integer that fits in a `u16`.
    pub fn read_u16(&mut self) -> Result<u16, ReadError> {
        let v = self.read_integer("unsigned integer")?;
        u16::try_from(v).map_err(|_| ReadError::Range("u16"))
    }

    /// Reads a signed integer that fits in an `i64`.
    pub fn read_i64(&mut self) -> Result<i64, ReadError> {
        let v = self.read_integer("integer")?;
        i64::try_from(v).map_err(|_| ReadError::Range("i64"))
    }

    /// Reads a number (float 32, float 64 or any integer) as an `f64`.
    pub fn read_f64(&mut self) -> Result<f64, ReadError> {
        match self.peek()? {
            0xca => {
                self.pos += 1;
                Ok(f64::from(f32::from_bits(self.be(4)? as u32)))
            }
            0xcb => {
                self.pos += 1;
                Ok(f64::from_bits(self.be(8)?))
            }
            _ => Ok(self.read_integer("number")? as f64),
        }
    }

    fn str_len(&mut self) -> Result<usize, ReadError> {
        let m = self.peek()?;
        let len = match m {
            0xa0..=0xbf => {
                self.pos += 1;
                usize::from(m & 0x1f)
            }
            0xd9..=0xdb => {
                self.pos += 1;
                self.be(1 << (m - 0xd9))? as usize
            }
            _ => {
                return Err(ReadError::Type {
                    expected: "string",
                    marker: m,
                })
            }
        };
        Ok(len)
    }

    /// Reads a UTF-8 string, borrowed from the input.
    pub fn read_str(&mut self) -> Result<&'a str, ReadError> {
        let len = self.str_len()?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| ReadError::Utf8)
    }

    /// Reads a binary value, borrowed from the input.
    pub fn read_bin(&mut self) -> Result<&'a [u8], ReadError> {
        let m = self.peek()?;
        match m {
            0xc4..=0xc6 => {
                self.pos += 1;
                let len = self.be(1 << (m - 0xc4))? as usize;
                self.take(len)
            }
            _ => Err(ReadError::Type {
                expected: "binary",
                marker: m,
            }),
        }
    }

    /// Reads an array header and returns the number of elements that follow.
    pub fn read_array_len(&mut self) -> Result<u32, ReadError> {
        let m = self.peek()?;
        match m {
            0x90..=0x9f => {
                self.pos += 1;
                Ok(u32::from(m & 0x0f))
            }
            0xdc => {
                self.pos += 1;
                Ok(self.be(2)? as u32)
            }
            0xdd => {
                self.pos += 1;
                Ok(self.be(4)? as u32)
            }
            _ => Err(ReadError::Type {
                expected: "array",
                marker: m,
            }),
        }
    }

    /// Reads a map header and returns the number of key/value pairs that follow.
    pub fn read_map_len(&mut self) -> Result<u32, ReadError> {
        let m = self.peek()?;
        match m {
            0x80..=0x8f => {
                self.pos += 1;
                Ok(u32::from(m & 0x0f))
            }
            0xde => {
                self.pos += 1;
                Ok(self.be(2)? as u32)
            }
            0xdf => {
                self.pos += 1;
                Ok(self.be(4)? as u32)
            }
            _ => Err(ReadError::Type {
                expected: "map",
                marker: m,
            }),
        }
    }

    /// Skips one whole value (arrays and maps with everything inside them).
    ///
    /// Iterative: the only state is a count of values still to skip, so nesting depth
    /// costs nothing. Every value takes at least one byte, so a count larger than the
    /// bytes left is refused at once instead of being walked.
    pub fn skip_value(&mut self) -> Result<(), ReadError> {
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            let m = self.byte()?;
            let (skip, children): (u64, u64) = match m {
                0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
                0x80..=0x8f => (0, 2 * u64::from(m & 0x0f)),
                0x90..=0x9f => (0, u64::from(m & 0x0f)),
                0xa0..=0xbf => (u64::from(m & 0x1f), 0),
                0xc1 => return Err(ReadError::Reserved),
                0xc4..=0xc6 => (self.be(1 << (m - 0xc4))?, 0),
                0xc7..=0xc9 => (self.be(1 << (m - 0xc7))? + 1, 0),
                0xca => (4, 0),
                0xcb => (8, 0),
                0xcc..=0xcf => (1 << (m - 0xcc), 0),
                0xd0..=0xd3 => (1 << (m - 0xd0), 0),
                0xd4..=0xd8 => (1 + (1 << (m - 0xd4)), 0),
                0xd9..=0xdb => (self.be(1 << (m - 0xd9))?, 0),
                0xdc => (0, self.be(2)?),
                0xdd => (0, self.be(4)?),
                0xde => (0, 2 * self.be(2)?),
                0xdf => (0, 2 * self.be(4)?),
            };
            if skip > self.remaining() as u64 {
                return Err(ReadError::Eof);
            }
            self.pos += skip as usize;
            pending += children;
            if pending > self.remaining() as u64 {
                return Err(ReadError::Eof);
            }
        }
        Ok(())
    }

    /// Skips one value and returns its bytes, borrowed from the input.
    pub fn read_value_bytes(&mut self) -> Result<&'a [u8], ReadError> {
        let start = self.pos;
        self.skip_value()?;
        Ok(&self.buf[start..self.pos])
    }
}

/// True when `bytes` holds exactly one well-formed MessagePack value.
pub fn is_single_value(bytes: &[u8]) -> bool {
    let mut r = Reader::new(bytes);
    r.skip_value().is_ok() && r.remaining() == 0
}

/// Appends a nil.
pub fn write_nil(out: &mut Vec<u8>) {
    out.push(0xc0);
}

/// Appends a boolean.
pub fn write_bool(out: &mut Vec<u8>, v: bool) {
    out.push(if v { 0xc3 } else { 0xc2 });
}

/// Appends an unsigned integer in its smallest encoding.
pub fn write_uint(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
    } else if v <= u64::from(u8::MAX) {
        out.extend_from_slice(&[0xcc, v as u8]);
    } else if v <= u64::from(u16::MAX) {
        out.push(0xcd);
        out.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v <= u64::from(u32::MAX) {
        out.push(0xce);
        out.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Appends a signed integer in its smallest encoding.
pub fn write_int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        write_uint(out, v as u64);
    } else if v >= -32 {
        out.push(v as i8 as u8);
    } else if v >= i64::from(i8::MIN) {
        out.extend_from_slice(&[0xd0, v as i8 as u8]);
    } else if v >= i64::from(i16::MIN) {
        out.push(0xd1);
        out.extend_from_slice(&(v as i16).to_be_bytes());
    } else if v >= i64::from(i32::MIN) {
        out.push(0xd2);
        out.extend_from_slice(&(v as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Appends a 32-bit float.
pub fn write_f32(out: &mut Vec<u8>, v: f32) {
    out.push(0xca);
    out.extend_from_slice(&v.to_bits().to_be_bytes());
}

/// Appends a 64-bit float.
pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    out.push(0xcb);
    out.extend_from_slice(&v.to_bits().to_be_bytes());
}

/// Appends a UTF-8 string.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let len = s.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len <= usize::from(u8::MAX) {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= usize::from(u16::MAX) {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

/// Appends a binary value.
pub fn write_bin(out: &mut Vec<u8>, b: &[u8]) {
    let len = b.len();
    if len <= usize::from(u8::MAX) {
        out.extend_from_slice(&[0xc4, len as u8]);
    } else if len <= usize::from(u16::MAX) {
        out.push(0xc5);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xc6);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(b);
}

/// Appends an array header for `len` elements; the caller appends the elements.
pub fn write_array_len(out: &mut Vec<u8>, len: u32) {
    if len < 16 {
        out.push(0x90 | len as u8);
    } else if len <= u32::from(u16::MAX) {
        out.push(0xdc);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// Appends a map header for `len` pairs; the caller appends keys and values in turn.
pub fn write_map_len(out: &mut Vec<u8>, len: u32) {
    if len < 16 {
        out.push(0x80 | len as u8);
    } else if len <= u32::from(u16::MAX) {
        out.push(0xde);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdf);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn integers_round_trip_at_every_width() {
        for v in [
            0u64,
            1,
            127,
            128,
            255,
            256,
            65535,
            65536,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            write_uint(&mut out, v);
            assert_eq!(Reader::new(&out).read_u64(), Ok(v));
        }
        for v in [
            -1i64,
            -32,
            -33,
            -128,
            -129,
            -32768,
            -32769,
            i32::MIN as i64,
            i64::MIN,
        ] {
            let mut out = Vec::new();
            write_int(&mut out, v);
            assert_eq!(Reader::new(&out).read_i64(), Ok(v));
        }
    }

    #[test]
    fn negative_is_not_unsigned() {
        let mut out = Vec::new();
        write_int(&mut out, -5);
        assert_eq!(Reader::new(&out).read_u32(), Err(ReadError::Range("u32")));
    }

    #[test]
    fn huge_claimed_array_is_refused_without_walking() {
        // An array claiming 4 billion elements in a 5-byte input.
        let input = [0xdd, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(Reader::new(&input).skip_value(), Err(ReadError::Eof));
    }

    #[test]
    fn deep_nesting_does_not_recurse() {
        let input = vec![0x91u8; 1_000_000];
        // Every level is an array of one; the innermost is missing.
        assert_eq!(Reader::new(&input).skip_value(), Err(ReadError::Eof));
        let mut ok = vec![0x91u8; 100_000];
        ok.push(0xc0);
        assert!(is_single_value(&ok));
    }

    proptest! {
        #[test]
        fn skip_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&bytes);
            let _ = r.skip_value();
            prop_assert!(r.position() <= bytes.len());
        }

        #[test]
        fn strings_round_trip(s in ".{0,300}") {
            let mut out = Vec::new();
            write_str(&mut out, &s);
            let mut r = Reader::new(&out);
            prop_assert_eq!(r.read_str(), Ok(s.as_str()));
            prop_assert_eq!(r.remaining(), 0);
            prop_assert!(is_single_value(&out));
        }

        #[test]
        fn floats_round_trip(v in any::<f64>()) {
            let mut out = Vec::new();
            write_f64(&mut out, v);
            let got = Reader::new(&out).read_f64().unwrap();
            prop_assert!(got.to_bits() == v.to_bits());
        }
    }
}
