//! Reading a recording: the header first, then one record at a time. Every length and
//! value is checked against the bytes left, so a corrupt or cut file ends in a
//! [`ReadError`] naming the offset where reading stopped, never in a panic or a huge
//! allocation.

use crate::encode::{tag, CutReason, EndReason, Header, FORMAT_VERSION, MAGIC};

/// One record after the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    /// `Game::join` was called.
    Join {
        /// The player id.
        player: u32,
        /// The player's team (0: the kind has no teams).
        team: u32,
        /// What the game answered.
        accepted: bool,
    },
    /// `Game::start` was called (the room reached its minimum of players).
    Start,
    /// `Game::leave` was called.
    Leave {
        /// The player id.
        player: u32,
    },
    /// `Game::input` was called.
    Input {
        /// The player id.
        player: u32,
        /// The input's sequence number.
        seq: u32,
        /// The payload, one MessagePack value as the client sent it.
        payload: &'a [u8],
    },
    /// `Game::tick` ran.
    Tick {
        /// The tick number.
        number: u64,
        /// The time it covered, in nanoseconds (exact: a game's floats see the very same `dt`).
        dt_nanos: u64,
    },
    /// The state hash after a tick.
    Hash {
        /// The tick it follows.
        number: u64,
        /// The hash.
        hash: u64,
    },
    /// The recording was cut short here.
    Cut {
        /// Why.
        reason: CutReason,
    },
    /// The trailer.
    End {
        /// Why the match ended.
        reason: EndReason,
        /// Ticks run.
        ticks: u64,
        /// How long the room lived, in milliseconds.
        duration_ms: u64,
        /// `Game::result` as JSON text (`null` without one).
        result: &'a str,
    },
}

/// What was wrong where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte offset {offset}")]
pub struct ReadError {
    /// Where in the file reading stopped.
    pub offset: usize,
    /// What was wrong.
    pub kind: ReadErrorKind,
}

/// The ways a recording can be unreadable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadErrorKind {
    /// The file does not start with `RALLYREC`.
    #[error("not a Rally recording (no RALLYREC magic)")]
    NotARecording,
    /// A format version this reader does not know.
    #[error("recording format version {0} is not supported (this reader knows version 1)")]
    UnsupportedVersion(u8),
    /// The file ends inside a record: a crash, or a copy cut short.
    #[error("the file ends inside a record (truncated)")]
    Truncated,
    /// The first record is not the header.
    #[error("the first record is not the header")]
    NoHeader,
    /// A record's contents make no sense.
    #[error("malformed record: {0}")]
    Malformed(&'static str),
}

/// A cursor over one record's body.
struct Body<'a> {
    bytes: &'a [u8],
    at: usize,
    /// The body's offset in the file, for errors.
    base: usize,
}

impl<'a> Body<'a> {
    fn err(&self, what: &'static str) -> ReadError {
        ReadError {
            offset: self.base + self.at,
            kind: ReadErrorKind::Malformed(what),
        }
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, ReadError> {
        let b = *self.bytes.get(self.at).ok_or_else(|| self.err(what))?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self, what: &'static str) -> Result<u64, ReadError> {
        match varint(&self.bytes[self.at..]) {
            Some(Ok((v, n))) => {
                self.at += n;
                Ok(v)
            }
            _ => Err(self.err(what)),
        }
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, ReadError> {
        let at = self.at;
        let v = self.varint(what)?;
        u32::try_from(v).map_err(|_| ReadError {
            offset: self.base + at,
            kind: ReadErrorKind::Malformed(what),
        })
    }

    fn fixed64(&mut self, what: &'static str) -> Result<u64, ReadError> {
        let b: [u8; 8] = self
            .bytes
            .get(self.at..self.at + 8)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| self.err(what))?;
        self.at += 8;
        Ok(u64::from_le_bytes(b))
    }

    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], ReadError> {
        let len = self.varint(what)?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| self.at.checked_add(l))
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| self.err(what))?;
        let b = &self.bytes[self.at..end];
        self.at = end;
        Ok(b)
    }

    fn str(&mut self, what: &'static str) -> Result<&'a str, ReadError> {
        let at = self.at;
        let b = self.bytes(what)?;
        std::str::from_utf8(b).map_err(|_| ReadError {
            offset: self.base + at,
            kind: ReadErrorKind::Malformed(what),
        })
    }
}

/// A LEB128 varint at the start of `b`: `None` when `b` ends inside it, `Some(Err)` when
/// it is longer than a `u64` holds.
fn varint(b: &[u8]) -> Option<Result<(u64, usize), ()>> {
    let mut v: u64 = 0;
    for (i, byte) in b.iter().enumerate() {
        if i == 10 || (i == 9 && *byte > 1) {
            return Some(Err(()));
        }
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(Ok((v, i + 1)));
        }
    }
    None
}

/// Reads a recording's records in order.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Set after `Cut`, `End` or an error: nothing more is read.
    done: bool,
}

impl<'a> Reader<'a> {
    /// Checks the magic and version and reads the header.
    pub fn new(bytes: &'a [u8]) -> Result<(Header, Reader<'a>), ReadError> {
        let fail = |offset, kind| Err(ReadError { offset, kind });
        if bytes.len() < MAGIC.len() {
            return if MAGIC.starts_with(bytes) {
                fail(bytes.len(), ReadErrorKind::Truncated)
            } else {
                fail(0, ReadErrorKind::NotARecording)
            };
        }
        if &bytes[..MAGIC.len()] != MAGIC {
            return fail(0, ReadErrorKind::NotARecording);
        }
        let Some(&version) = bytes.get(MAGIC.len()) else {
            return fail(MAGIC.len(), ReadErrorKind::Truncated);
        };
        if version != FORMAT_VERSION {
            return fail(MAGIC.len(), ReadErrorKind::UnsupportedVersion(version));
        }
        let mut r = Reader {
            bytes,
            at: MAGIC.len() + 1,
            done: false,
        };
        let start = r.at;
        let (t, mut b) = r.raw()?.ok_or(ReadError {
            offset: start,
            kind: ReadErrorKind::Truncated,
        })?;
        if t != tag::HEADER {
            return fail(start, ReadErrorKind::NoHeader);
        }
        let header = Header {
            room_id: b.varint("header room id")?,
            kind: b.str("header kind")?.to_owned(),
            game_version: b.str("header game version")?.to_owned(),
            options: b.bytes("header options")?.to_vec(),
            seed: b.fixed64("header seed")?,
            tick_hz: b.u32("header tick rate")?,
            hash_every: b.u32("header hash interval")?,
            started_unix_ms: b.varint("header start time")?,
        };
        if header.tick_hz == 0 || header.hash_every == 0 {
            return fail(
                start,
                ReadErrorKind::Malformed("header rates must not be 0"),
            );
        }
        Ok((header, r))
    }

    /// Where the next record starts: after a clean end, the file's length.
    pub fn offset(&self) -> usize {
        self.at
    }

    /// The next raw record: its tag and body. `None` at a clean end of the bytes.
    fn raw(&mut self) -> Result<Option<(u8, Body<'a>)>, ReadError> {
        let rest = &self.bytes[self.at..];
        let Some(&t) = rest.first() else {
            return Ok(None);
        };
        let truncated = ReadError {
            offset: self.at,
            kind: ReadErrorKind::Truncated,
        };
        let (len, n) = match varint(&rest[1..]) {
            None => return Err(truncated),
            Some(Err(())) => {
                return Err(ReadError {
                    offset: self.at + 1,
                    kind: ReadErrorKind::Malformed("record length"),
                })
            }
            Some(Ok(v)) => v,
        };
        let body_at = 1 + n;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| body_at.checked_add(l))
            .filter(|e| *e <= rest.len())
            .ok_or(truncated)?;
        let body = Body {
            bytes: &rest[body_at..end],
            at: 0,
            base: self.at + body_at,
        };
        self.at += end;
        Ok(Some((t, body)))
    }

    /// The next record; `None` at the end of the bytes or after `Cut` or `End`. After an
    /// error it returns `None`.
    pub fn next_record(&mut self) -> Result<Option<Record<'a>>, ReadError> {
        while !self.done {
            let start = self.at;
            let parsed = self.raw().and_then(|raw| match raw {
                Some((t, mut body)) => parse(t, &mut body, start),
                None => Ok(None),
            });
            match parsed {
                Ok(Some(Parsed::Skip)) => continue,
                Ok(Some(Parsed::Record(rec))) => {
                    self.done = matches!(rec, Record::Cut { .. } | Record::End { .. });
                    return Ok(Some(rec));
                }
                Ok(None) => return Ok(None),
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            }
        }
        Ok(None)
    }
}

enum Parsed<'a> {
    Record(Record<'a>),
    /// A record a later writer added: skipped, as the format promises.
    Skip,
}

fn parse<'a>(t: u8, b: &mut Body<'a>, start: usize) -> Result<Option<Parsed<'a>>, ReadError> {
    let rec = match t {
        tag::JOIN => Record::Join {
            player: b.u32("join player")?,
            team: b.u32("join team")?,
            accepted: b.u8("join outcome")? != 0,
        },
        tag::START => Record::Start,
        tag::LEAVE => Record::Leave {
            player: b.u32("leave player")?,
        },
        tag::INPUT => Record::Input {
            player: b.u32("input player")?,
            seq: b.u32("input seq")?,
            payload: b.bytes("input payload")?,
        },
        tag::TICK => Record::Tick {
            number: b.varint("tick number")?,
            dt_nanos: b.varint("tick duration")?,
        },
        tag::HASH => Record::Hash {
            number: b.varint("hash tick")?,
            hash: b.fixed64("hash value")?,
        },
        tag::CUT => Record::Cut {
            reason: CutReason::from_u8(b.u8("cut reason")?).ok_or_else(|| b.err("cut reason"))?,
        },
        tag::END => Record::End {
            reason: EndReason::from_u8(b.u8("end reason")?).ok_or_else(|| b.err("end reason"))?,
            ticks: b.varint("end ticks")?,
            duration_ms: b.varint("end duration")?,
            result: b.str("end result")?,
        },
        tag::HEADER => {
            return Err(ReadError {
                offset: start,
                kind: ReadErrorKind::Malformed("a second header"),
            })
        }
        _ => return Ok(Some(Parsed::Skip)),
    };
    Ok(Some(Parsed::Record(rec)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode;
    use proptest::prelude::*;

    fn header() -> Header {
        Header {
            room_id: 42,
            kind: "arena".into(),
            game_version: "0.1.0".into(),
            options: vec![0x80],
            seed: 0xdead_beef_0bad_cafe,
            tick_hz: 20,
            hash_every: 10,
            started_unix_ms: 1_765_000_000_000,
        }
    }

    fn sample() -> Vec<u8> {
        let mut f = Vec::new();
        encode::header(&mut f, &header());
        encode::join(&mut f, 1, 0, true);
        encode::input(&mut f, 1, 1, &[0x92, 0x01, 0x00]);
        encode::tick(&mut f, 1, 50_000_000);
        encode::hash(&mut f, 1, 77);
        encode::leave(&mut f, 1);
        encode::end(&mut f, EndReason::Empty, 1, 60, "null");
        f
    }

    fn read_all(bytes: &[u8]) -> Result<(Header, Vec<Record<'_>>), ReadError> {
        let (h, mut r) = Reader::new(bytes)?;
        let mut out = Vec::new();
        while let Some(rec) = r.next_record()? {
            out.push(rec);
        }
        Ok((h, out))
    }

    #[test]
    fn records_read_back_as_written() {
        let f = sample();
        let (h, recs) = read_all(&f).unwrap();
        assert_eq!(h, header());
        assert_eq!(
            recs,
            vec![
                Record::Join {
                    player: 1,
                    team: 0,
                    accepted: true
                },
                Record::Input {
                    player: 1,
                    seq: 1,
                    payload: &[0x92, 0x01, 0x00]
                },
                Record::Tick {
                    number: 1,
                    dt_nanos: 50_000_000
                },
                Record::Hash {
                    number: 1,
                    hash: 77
                },
                Record::Leave { player: 1 },
                Record::End {
                    reason: EndReason::Empty,
                    ticks: 1,
                    duration_ms: 60,
                    result: "null"
                },
            ]
        );
    }

    #[test]
    fn bad_magic_version_and_cuts_name_their_offset() {
        assert_eq!(
            Reader::new(b"GIF89a....").unwrap_err().kind,
            ReadErrorKind::NotARecording
        );
        let mut f = sample();
        f[8] = 9;
        let e = Reader::new(&f).unwrap_err();
        assert_eq!(
            (e.offset, e.kind),
            (8, ReadErrorKind::UnsupportedVersion(9))
        );
        let f = sample();
        // Cut inside the tick record: everything before it reads, then Truncated there.
        let tick_at = {
            let (_, mut r) = Reader::new(&f).unwrap();
            r.next_record().unwrap();
            r.next_record().unwrap();
            r.offset()
        };
        let (_, mut r) = Reader::new(&f[..tick_at + 2]).unwrap();
        assert!(r.next_record().unwrap().is_some());
        assert!(r.next_record().unwrap().is_some());
        let e = r.next_record().unwrap_err();
        assert_eq!((e.offset, &e.kind), (tick_at, &ReadErrorKind::Truncated));
        assert_eq!(
            e.to_string(),
            format!("the file ends inside a record (truncated) at byte offset {tick_at}")
        );
        assert_eq!(r.next_record(), Ok(None), "nothing after an error");
    }

    #[test]
    fn unknown_records_are_skipped() {
        let mut f = Vec::new();
        encode::header(&mut f, &header());
        f.extend_from_slice(&[200, 3, 1, 2, 3]);
        encode::leave(&mut f, 5);
        let (_, recs) = read_all(&f).unwrap();
        assert_eq!(recs, vec![Record::Leave { player: 5 }]);
    }

    proptest! {
        /// Any bytes at all: an error or records, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut f = MAGIC.to_vec();
            f.push(FORMAT_VERSION);
            f.extend_from_slice(&tail);
            let _ = read_all(&f);
            let _ = read_all(&tail);
        }

        /// A valid file cut anywhere reads up to the cut, then says Truncated at an
        /// offset inside the file (or reads cleanly when the cut falls between records).
        #[test]
        fn a_cut_file_reads_up_to_the_cut(cut in 0usize..200) {
            let f = sample();
            let cut = cut.min(f.len());
            match read_all(&f[..cut]) {
                Ok(_) => {}
                Err(e) => {
                    prop_assert!(e.offset <= cut);
                    prop_assert!(matches!(e.kind, ReadErrorKind::Truncated | ReadErrorKind::NotARecording));
                }
            }
        }

        /// One flipped byte anywhere: an error or records, never a panic.
        #[test]
        fn a_flipped_byte_never_panics(at in 0usize..100, to in any::<u8>()) {
            let mut f = sample();
            let at = at % f.len();
            f[at] = to;
            let _ = read_all(&f);
        }
    }
}
