//! The byte-level examples of `docs/protocol.md` section 13, read from the document itself
//! (not copied into the test), so the document and the code cannot drift apart.
//!
//! Each row of the section's table is checked three ways:
//! - the readable form (`[1, 1, "demo"]`) packs, with MessagePack's smallest encodings
//!   (floats as float 32, as the table says), to exactly the body bytes;
//! - the body decodes with this crate as the message the row names, and re-encodes to the
//!   same bytes;
//! - the TCP frame column is the 4-byte big-endian length and the body, as `frame::encode`
//!   writes it.

use rally_protocol::{frame, ClientMessage, ServerMessage};

/// The document, relative to this crate.
const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");
/// The section holding the examples.
const SECTION: &str = "## 13. Byte-level examples";
/// Rows the section has today; fewer means the parser lost some (or the table shrank,
/// which should be a deliberate change here too).
const MIN_ROWS: usize = 25;
/// Server messages' type codes start here (docs/protocol.md section 4).
const FIRST_SERVER_TYPE: u8 = 64;

/// One row: the message's name, its readable form, its body, its TCP frame column.
struct Row {
    name: String,
    literal: String,
    body: Vec<u8>,
    frame: String,
}

#[test]
fn section_13_examples_match_the_code() {
    let rows = rows();
    assert!(
        rows.len() >= MIN_ROWS,
        "found {} example rows in {SECTION}, expected at least {MIN_ROWS}",
        rows.len()
    );
    for row in &rows {
        let what = format!("`{}` {}", row.name, row.literal);
        // The readable form and the bytes agree.
        let value = Literal::parse(&row.literal).unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut packed = Vec::new();
        value.pack(&mut packed);
        assert_eq!(
            hex(&packed),
            hex(&row.body),
            "{what}: readable form vs body"
        );

        // The crate decodes the body as that message and writes the same bytes back.
        let mut again = Vec::new();
        let type_code = row.body.get(1).copied().expect("a body has a type");
        if type_code < FIRST_SERVER_TYPE {
            let m = ClientMessage::decode(&row.body).unwrap_or_else(|e| panic!("{what}: {e:?}"));
            assert_eq!(m.name(), row.name, "{what}: the row names another message");
            m.encode(&mut again);
        } else {
            let m = ServerMessage::decode(&row.body).unwrap_or_else(|e| panic!("{what}: {e:?}"));
            m.encode(&mut again);
        }
        assert_eq!(hex(&again), hex(&row.body), "{what}: re-encoded");

        // The frame column.
        let mut framed = Vec::new();
        frame::encode(&row.body, &mut framed);
        let expected = match row.frame.strip_suffix(" + body") {
            Some(header) => {
                let mut v = parse_hex(header.trim_matches('`')).expect("hex frame header");
                v.extend_from_slice(&row.body);
                v
            }
            None => parse_hex(row.frame.trim_matches('`')).expect("hex frame"),
        };
        assert_eq!(hex(&framed), hex(&expected), "{what}: TCP frame");
    }
}

/// The table rows of section 13.
fn rows() -> Vec<Row> {
    let doc = std::fs::read_to_string(DOC).unwrap_or_else(|e| panic!("read {DOC}: {e}"));
    let start = doc
        .find(SECTION)
        .unwrap_or_else(|| panic!("{SECTION} not in {DOC}"));
    let section = &doc[start + SECTION.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut rows = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells = split_row(line);
        assert_eq!(cells.len(), 3, "a row has three cells: {line}");
        let name = cells[0]
            .strip_prefix('`')
            .and_then(|c| c.split('`').next())
            .unwrap_or_else(|| panic!("no message name: {line}"))
            .to_string();
        // The readable form is the last `[...]` in backticks of the first cell.
        let literal = cells[0]
            .rsplit_once("`[")
            .and_then(|(_, rest)| rest.rsplit_once("]`"))
            .map(|(inner, _)| format!("[{inner}]"))
            .unwrap_or_else(|| panic!("no readable form: {line}"));
        let body = parse_hex(cells[1].trim_matches('`')).unwrap_or_else(|e| panic!("{e}: {line}"));
        rows.push(Row {
            name,
            literal,
            body,
            frame: cells[2].to_string(),
        });
    }
    rows
}

/// The cells of a table row, trimmed. A `|` inside backticks would split a cell; the
/// examples have none, and a row split wrongly fails the three-cell check.
fn split_row(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .split(" | ")
        .map(|c| c.trim().to_string())
        .collect()
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).map_err(|e| format!("bad hex byte {b:?}: {e}")))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The readable form of a message: JSON-like arrays, maps, numbers, strings, `nil`,
/// booleans.
#[derive(Debug)]
enum Literal {
    Array(Vec<Literal>),
    Map(Vec<(Literal, Literal)>),
    Uint(u64),
    Float(f32),
    Str(String),
    Nil,
    Bool(bool),
}

impl Literal {
    fn parse(s: &str) -> Result<Literal, String> {
        let mut p = Parser {
            s: s.as_bytes(),
            at: 0,
        };
        let v = p.value()?;
        p.space();
        if p.at != p.s.len() {
            return Err(format!("trailing text at {} in {s}", p.at));
        }
        Ok(v)
    }

    /// MessagePack with the smallest encoding of each value (what the crate writes).
    fn pack(&self, out: &mut Vec<u8>) {
        match self {
            Literal::Array(items) => {
                assert!(items.len() < 16, "the examples use fixarrays");
                out.push(0x90 | items.len() as u8);
                for i in items {
                    i.pack(out);
                }
            }
            Literal::Map(entries) => {
                assert!(entries.len() < 16, "the examples use fixmaps");
                out.push(0x80 | entries.len() as u8);
                for (k, v) in entries {
                    k.pack(out);
                    v.pack(out);
                }
            }
            Literal::Uint(n) => match *n {
                0..=0x7f => out.push(*n as u8),
                0x80..=0xff => out.extend_from_slice(&[0xcc, *n as u8]),
                0x100..=0xffff => {
                    out.push(0xcd);
                    out.extend_from_slice(&(*n as u16).to_be_bytes());
                }
                0x1_0000..=0xffff_ffff => {
                    out.push(0xce);
                    out.extend_from_slice(&(*n as u32).to_be_bytes());
                }
                _ => {
                    out.push(0xcf);
                    out.extend_from_slice(&n.to_be_bytes());
                }
            },
            Literal::Float(f) => {
                out.push(0xca);
                out.extend_from_slice(&f.to_be_bytes());
            }
            Literal::Str(s) => {
                match s.len() {
                    0..=31 => out.push(0xa0 | s.len() as u8),
                    32..=0xff => out.extend_from_slice(&[0xd9, s.len() as u8]),
                    _ => panic!("the examples use strings under 256 bytes"),
                }
                out.extend_from_slice(s.as_bytes());
            }
            Literal::Nil => out.push(0xc0),
            Literal::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn space(&mut self) {
        while self.s.get(self.at).is_some_and(|c| c.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    fn eat(&mut self, word: &str) -> bool {
        let found = self.s[self.at..].starts_with(word.as_bytes());
        if found {
            self.at += word.len();
        }
        found
    }

    fn value(&mut self) -> Result<Literal, String> {
        self.space();
        match self.s.get(self.at) {
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                loop {
                    self.space();
                    if self.eat("]") {
                        return Ok(Literal::Array(items));
                    }
                    if !items.is_empty() && !self.eat(",") {
                        return Err(format!("expected , or ] at {}", self.at));
                    }
                    items.push(self.value()?);
                }
            }
            Some(b'{') => {
                self.at += 1;
                let mut entries = Vec::new();
                loop {
                    self.space();
                    if self.eat("}") {
                        return Ok(Literal::Map(entries));
                    }
                    if !entries.is_empty() && !self.eat(",") {
                        return Err(format!("expected , or }} at {}", self.at));
                    }
                    let key = self.value()?;
                    self.space();
                    if !self.eat(":") {
                        return Err(format!("expected : at {}", self.at));
                    }
                    entries.push((key, self.value()?));
                }
            }
            Some(b'"') => {
                self.at += 1;
                let mut text = Vec::new();
                loop {
                    match self.s.get(self.at) {
                        None => return Err("unterminated string".into()),
                        Some(b'"') => break,
                        Some(b'\\') => {
                            text.push(*self.s.get(self.at + 1).ok_or("bad escape")?);
                            self.at += 2;
                        }
                        Some(&c) => {
                            text.push(c);
                            self.at += 1;
                        }
                    }
                }
                self.at += 1;
                String::from_utf8(text)
                    .map(Literal::Str)
                    .map_err(|e| e.to_string())
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.at;
                while self
                    .s
                    .get(self.at)
                    .is_some_and(|c| c.is_ascii_digit() || *c == b'.')
                {
                    self.at += 1;
                }
                let text =
                    std::str::from_utf8(&self.s[start..self.at]).map_err(|e| e.to_string())?;
                if text.contains('.') {
                    text.parse().map(Literal::Float).map_err(|e| e.to_string())
                } else {
                    text.parse().map(Literal::Uint).map_err(|e| e.to_string())
                }
            }
            _ if self.eat("nil") => Ok(Literal::Nil),
            _ if self.eat("true") => Ok(Literal::Bool(true)),
            _ if self.eat("false") => Ok(Literal::Bool(false)),
            _ => Err(format!("unexpected text at {}", self.at)),
        }
    }
}
