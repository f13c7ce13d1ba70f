//! Length-prefixed framing for raw TCP.
//!
//! A frame is a 4-byte big-endian unsigned length `N` followed by `N` bytes of message
//! body. `N` is at least 1. The length is checked against the receiver's limit as soon as
//! the 4 header bytes are in, before any body byte is buffered, so a peer that claims a
//! gigabyte is refused at once.

use thiserror::Error;

/// Bytes in the length prefix.
pub const HEADER_LEN: usize = 4;

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The length prefix is above the receiver's limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The length the peer claimed.
        len: u64,
        /// The receiver's limit.
        max: usize,
    },
    /// A zero length prefix: every message has at least one byte.
    #[error("empty frame")]
    Empty,
}

/// Looks for one whole frame at the start of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed (a normal outcome), or the number of bytes
/// the frame takes in `buf` and its body.
pub fn decode(buf: &[u8], max_body: usize) -> Result<Option<(usize, &[u8])>, FrameError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*header) as usize;
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > max_body {
        return Err(FrameError::TooLarge {
            len: len as u64,
            max: max_body,
        });
    }
    let total = HEADER_LEN + len;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some((total, &buf[HEADER_LEN..total])))
}

/// Starts a frame in `out`: reserves the length prefix and returns where it is. Append the
/// body to `out`, then call [`finish`] with the returned position.
pub fn begin(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    at
}

/// Writes the length prefix of the frame started at `at` by [`begin`].
pub fn finish(out: &mut [u8], at: usize) {
    let len = (out.len() - at - HEADER_LEN) as u32;
    out[at..at + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
}

/// Appends one frame holding `body`.
pub fn encode(body: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_is_not_an_error() {
        assert_eq!(decode(&[], 10), Ok(None));
        assert_eq!(decode(&[0, 0, 0], 10), Ok(None));
        assert_eq!(decode(&[0, 0, 0, 3, 1, 2], 10), Ok(None));
        assert_eq!(
            decode(&[0, 0, 0, 3, 1, 2, 3, 9], 10),
            Ok(Some((7, &[1u8, 2, 3][..])))
        );
    }

    #[test]
    fn gigabyte_claim_is_refused_from_the_header_alone() {
        assert_eq!(
            decode(&[0x40, 0, 0, 0], 4096),
            Err(FrameError::TooLarge {
                len: 1 << 30,
                max: 4096
            })
        );
        assert_eq!(decode(&[0, 0, 0, 0], 4096), Err(FrameError::Empty));
    }

    #[test]
    fn begin_finish_matches_encode() {
        let mut a = Vec::new();
        let at = begin(&mut a);
        a.extend_from_slice(b"hello");
        finish(&mut a, at);
        let mut b = Vec::new();
        encode(b"hello", &mut b);
        assert_eq!(a, b);
    }
}
