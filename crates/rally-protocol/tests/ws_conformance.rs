//! Autobahn|Testsuite's WebSocket cases that Rally's codec once failed, as plain Rust
//! tests, so every CI run checks them without Python (`scripts/autobahn.sh` runs the whole
//! suite where Python 2.7 is available). Each test names its Autobahn case group.
//!
//! The stream is fed the way the server feeds it: appended to a buffer a read at a time,
//! every whole frame at its start decoded, the rest kept for the next read.

use rally_protocol::ws::{self, close_code, Decoder, Event, Opcode, WsError};

const MASK: [u8; 4] = [0x1f, 0x2e, 0x3d, 0x4c];
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;

/// A masked client frame with any FIN bit, opcode bits and payload.
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    ws::write_masked_frame(&mut out, Opcode::Binary, payload, MASK);
    out[0] = if fin { 0x80 } else { 0 } | opcode;
    out
}

/// What a decoded stream produced, owned.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    Fragment,
    Close(Option<u16>),
}

/// The outcome of feeding a stream: events in order, and the error that ended it with
/// how many bytes had been delivered when it was raised.
#[derive(Debug)]
struct Run {
    got: Vec<Got>,
    error: Option<(WsError, usize)>,
}

/// Feeds `stream` in reads of `chunk` bytes, as the session does.
fn run(stream: &[u8], chunk: usize) -> Run {
    let mut d = Decoder::server(1 << 20);
    let mut buf = Vec::new();
    let mut got = Vec::new();
    let mut delivered = 0;
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        delivered += piece.len();
        let mut at = 0;
        loop {
            match d.decode(&mut buf[at..]) {
                Ok(None) => break,
                Ok(Some((n, event))) => {
                    at += n;
                    got.push(match event {
                        Event::Text(t) => {
                            Got::Text(String::from_utf8(t.to_vec()).expect("text events are UTF-8"))
                        }
                        Event::Binary(b) => Got::Binary(b.to_vec()),
                        Event::Ping(p) => Got::Ping(p.to_vec()),
                        Event::Pong => Got::Pong,
                        Event::Fragment => Got::Fragment,
                        Event::Close(code) => Got::Close(code),
                    });
                }
                Err(e) => {
                    return Run {
                        got,
                        error: Some((e, delivered)),
                    }
                }
            }
        }
        buf.drain(..at);
    }
    Run { got, error: None }
}

/// Every read size from bytewise to whole.
fn chunkings(stream: &[u8]) -> impl Iterator<Item = usize> {
    [1, 2, 3, 5, 7, 64, stream.len().max(1)].into_iter()
}

/// Asserts that `stream` fails with `want` (whatever the read size) and returns the run
/// fed bytewise.
fn fails(stream: &[u8], want: &WsError) -> Run {
    for chunk in chunkings(stream) {
        let r = run(stream, chunk);
        let (e, _) = r
            .error
            .as_ref()
            .unwrap_or_else(|| panic!("accepted: {r:?}"));
        assert_eq!(e, want, "read size {chunk}");
    }
    run(stream, 1)
}

// ---- 6.*: UTF-8 in text messages -------------------------------------------------------

/// Autobahn 6.3-6.21's invalid sequences (a sample from each group).
const INVALID_UTF8: &[&[u8]] = &[
    b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", // 6.3.1: a surrogate
    b"\x80",                                                           // 6.6.x: lone continuation
    b"\xc0\xaf",                                                       // 6.9.x: overlong '/'
    b"\xe0\x80\xaf",                                                   // 6.9.2
    b"\xf0\x80\x80\xaf",                                               // 6.9.3
    b"\xf4\x90\x80\x80",                                               // 6.5.x: above U+10FFFF
    b"\xf8\x88\x80\x80\x80",                                           // 6.8.1: 5-byte form
    b"\xfe",                                                           // 6.12.x
    b"\xff",
    b"\xce",                     // 6.6.x: cut short at the end
    b"\xed\xa0\x80\xed\xb0\x80", // 6.11.x: a surrogate pair
    b"\xc0 ",                    // 6.14.x: start byte then a space
    b"\xef\xbf",                 // 6.14.x: incomplete at the end
];

#[test]
fn case_6_invalid_utf8_text_is_refused_with_1007() {
    for bytes in INVALID_UTF8 {
        let stream = frame(true, TEXT, bytes);
        fails(&stream, &WsError::InvalidUtf8);
        assert_eq!(
            WsError::InvalidUtf8.close_code(),
            close_code::INVALID_PAYLOAD
        );
        assert_eq!(close_code::INVALID_PAYLOAD, 1007);
        // The same bytes split into fragments anywhere, one byte a frame included.
        for cut in 1..bytes.len() {
            let mut stream = frame(false, TEXT, &bytes[..cut]);
            stream.extend(frame(true, CONTINUATION, &bytes[cut..]));
            fails(&stream, &WsError::InvalidUtf8);
        }
        let mut stream = Vec::new();
        for (i, b) in bytes.iter().enumerate() {
            let op = if i == 0 { TEXT } else { CONTINUATION };
            stream.extend(frame(i + 1 == bytes.len(), op, &[*b]));
        }
        fails(&stream, &WsError::InvalidUtf8);
    }
}

#[test]
fn case_6_valid_utf8_is_echoed_whole_however_fragmented() {
    // 6.2.x: "Hello-µ@ßöäüàá-UTF-8!!" fragmented at every byte, characters cut included.
    let text = "Hello-µ@ßöäüàá-UTF-8!! κόσμε \u{10FFFF} \u{FFFF} \u{D7FF}";
    let bytes = text.as_bytes();
    for cut in 0..=bytes.len() {
        let mut stream = frame(cut == bytes.len(), TEXT, &bytes[..cut]);
        if cut < bytes.len() {
            stream.extend(frame(true, PING, b"mid-message"));
            stream.extend(frame(true, CONTINUATION, &bytes[cut..]));
        }
        for chunk in chunkings(&stream) {
            let r = run(&stream, chunk);
            assert!(r.error.is_none(), "cut {cut}, reads of {chunk}: {r:?}");
            assert_eq!(r.got.last(), Some(&Got::Text(text.to_owned())), "cut {cut}");
        }
    }
    // 6.1.x: empty text messages, and empty fragments.
    let mut stream = frame(true, TEXT, b"");
    stream.extend(frame(false, TEXT, b""));
    stream.extend(frame(false, CONTINUATION, b""));
    stream.extend(frame(true, CONTINUATION, b""));
    let r = run(&stream, 1);
    assert_eq!(
        r.got,
        [
            Got::Text(String::new()),
            Got::Fragment,
            Got::Fragment,
            Got::Text(String::new())
        ]
    );
}

#[test]
fn case_6_4_1_and_6_4_2_fail_fast_at_the_fragment_that_breaks_the_text() {
    // 6.4.1: PART1 valid, PART2 = U+110000 encoded, PART3 valid: refused at PART2, before
    // PART3 (and before the message's end) arrives.
    let part1 = "κόσμε".as_bytes();
    let part2 = b"\xf4\x90\x80\x80";
    let part3 = b"edited";
    let first = frame(false, TEXT, part1);
    let second = frame(false, CONTINUATION, part2);
    let mut stream = first.clone();
    stream.extend(&second);
    stream.extend(frame(true, CONTINUATION, part3));
    let r = fails(&stream, &WsError::InvalidUtf8);
    assert_eq!(r.got, [Got::Fragment]);
    let (_, at) = r.error.expect("refused");
    // 0xF4 0x90 is already impossible: the second frame fails at its second payload byte.
    assert_eq!(at, first.len() + (second.len() - part2.len()) + 2);

    // 6.4.2: the bad sequence cut across fragments: \xf4 ends PART1, \x90 starts PART2.
    let mut stream = frame(
        false,
        TEXT,
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4",
    );
    stream.extend(frame(false, CONTINUATION, b"\x90"));
    stream.extend(frame(true, CONTINUATION, b"\x80\x80edited"));
    let r = fails(&stream, &WsError::InvalidUtf8);
    assert_eq!(r.got, [Got::Fragment], "refused at the second fragment");
}

#[test]
fn case_6_4_3_and_6_4_4_fail_fast_inside_a_frame_still_arriving() {
    // 6.4.3/6.4.4: one text frame sent in pieces; the piece with the bad byte fails the
    // message before the frame is whole.
    let mut payload = "κόσμε".as_bytes().to_vec();
    let bad_at = payload.len() + 1; // the byte after 0xF4: 0x90
    payload.extend_from_slice(b"\xf4\x90\x80\x80");
    payload.extend_from_slice(&[b'e'; 300]);
    let stream = frame(true, TEXT, &payload);
    let header = stream.len() - payload.len();
    for chunk in chunkings(&stream) {
        let r = run(&stream, chunk);
        let (e, at) = r.error.expect("refused");
        assert_eq!(e, WsError::InvalidUtf8);
        assert!(
            at < stream.len() || chunk >= stream.len(),
            "reads of {chunk}: refused only when whole"
        );
        assert!(at > header + bad_at, "refused before the bad byte came");
    }
    // Bytewise, it fails on the very byte.
    assert_eq!(
        run(&stream, 1).error.map(|(_, at)| at),
        Some(header + bad_at + 1)
    );

    // A continuation frame still arriving is checked against the message so far.
    let mut stream = frame(false, TEXT, b"ok \xe2");
    let before = stream.len();
    let rest = [b'('; 200];
    let second = frame(true, CONTINUATION, &rest);
    let header = second.len() - rest.len();
    stream.extend(second);
    // '(' cannot follow 0xE2: refused at the continuation's first payload byte.
    let r = run(&stream, 1);
    assert_eq!(r.error, Some((WsError::InvalidUtf8, before + header + 1)));
}

#[test]
fn binary_is_not_checked_for_utf8() {
    let stream = frame(true, BINARY, b"\xff\xfe\xed\xa0\x80");
    assert_eq!(
        run(&stream, 1).got,
        [Got::Binary(b"\xff\xfe\xed\xa0\x80".to_vec())]
    );
}

// ---- 7.*: close frames -----------------------------------------------------------------

fn close_frame(payload: &[u8]) -> Vec<u8> {
    frame(true, CLOSE, payload)
}

#[test]
fn case_7_3_close_payloads() {
    // 7.3.1: empty close.
    assert_eq!(run(&close_frame(b""), 1).got, [Got::Close(None)]);
    // 7.3.2: a 1-byte payload is a protocol error (1002).
    let r = fails(
        &close_frame(b"\x03"),
        &WsError::Protocol("close payload of one byte"),
    );
    assert!(r.got.is_empty());
    // 7.3.3-7.3.5: a code, with a reason up to 123 bytes.
    assert_eq!(
        run(&close_frame(&1000u16.to_be_bytes()), 3).got,
        [Got::Close(Some(1000))]
    );
    let mut p = 1000u16.to_be_bytes().to_vec();
    p.extend_from_slice(b"Hello World!");
    assert_eq!(run(&close_frame(&p), 3).got, [Got::Close(Some(1000))]);
    let mut p = 1000u16.to_be_bytes().to_vec();
    p.extend(std::iter::repeat_n(b'*', 123));
    assert_eq!(run(&close_frame(&p), 7).got, [Got::Close(Some(1000))]);
    // 7.3.6: 124 bytes of reason makes a 126-byte control frame: a protocol error.
    p.push(b'*');
    let r = run(&close_frame(&p), 7);
    let (e, _) = r.error.expect("refused");
    assert!(matches!(e, WsError::Protocol(_)), "{e:?}");
    assert_eq!(e.close_code(), 1002);
}

#[test]
fn case_7_5_1_a_close_reason_that_is_not_utf8_is_refused() {
    let mut p = 1000u16.to_be_bytes().to_vec();
    p.extend_from_slice(
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
    );
    fails(&close_frame(&p), &WsError::InvalidUtf8);
    assert_eq!(ws::parse_close(&p), Err(WsError::InvalidUtf8));
    // A valid one comes back whole from parse_close.
    let mut p = 1001u16.to_be_bytes().to_vec();
    p.extend_from_slice("bye κόσμε".as_bytes());
    assert_eq!(ws::parse_close(&p), Ok(Some((1001, "bye κόσμε"))));
}

#[test]
fn case_7_7_valid_close_codes_are_accepted() {
    for code in [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000,
        4999,
    ] {
        assert!(ws::is_valid_close_code(code), "{code}");
        assert_eq!(
            run(&close_frame(&code.to_be_bytes()), 1).got,
            [Got::Close(Some(code))],
            "{code}"
        );
    }
}

#[test]
fn case_7_9_invalid_close_codes_are_protocol_errors() {
    for code in [
        0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        assert!(!ws::is_valid_close_code(code), "{code}");
        let r = fails(
            &close_frame(&code.to_be_bytes()),
            &WsError::Protocol("close code that may not be sent"),
        );
        assert!(r.got.is_empty(), "{code}");
        assert_eq!(r.error.map(|(e, _)| e.close_code()), Some(1002), "{code}");
    }
}

// ---- 2.*-5.*: protocol errors close with 1002 -------------------------------------------

#[test]
fn protocol_errors_close_with_1002_and_too_big_with_1009() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("2.5 ping over 125 bytes", frame(true, PING, &[b'p'; 126])),
        ("3.1 RSV1 set", {
            let mut f = frame(true, TEXT, b"Hello");
            f[0] |= 0x40;
            f
        }),
        ("3.7 RSV bits on a close", {
            let mut f = close_frame(b"");
            f[0] |= 0x70;
            f
        }),
        ("4.1.1 reserved data opcode 3", frame(true, 0x3, b"")),
        ("4.2.1 reserved control opcode 11", frame(true, 0xB, b"")),
        ("5.1 fragmented ping", frame(false, PING, b"fragment1")),
        ("5.2 fragmented pong", frame(false, 0xA, b"fragment1")),
        (
            "5.9 continuation with nothing to continue",
            frame(true, CONTINUATION, b"x"),
        ),
        ("5.18 new message inside a fragmented one", {
            let mut f = frame(false, TEXT, b"fragment1");
            f.extend(frame(true, TEXT, b"fragment2"));
            f
        }),
        ("unmasked client frame", {
            let mut f = Vec::new();
            ws::write_frame(&mut f, Opcode::Binary, b"x");
            f
        }),
    ];
    for (what, stream) in cases {
        let r = run(&stream, 1);
        let Some((e, _)) = r.error else {
            panic!("{what}: accepted: {:?}", r.got);
        };
        assert!(matches!(e, WsError::Protocol(_)), "{what}: {e:?}");
        assert_eq!(e.close_code(), close_code::PROTOCOL_ERROR, "{what}");
    }
    assert_eq!(close_code::PROTOCOL_ERROR, 1002);
    let mut d = Decoder::server(16);
    let mut big = frame(true, BINARY, &[0; 17]);
    let e = d.decode(&mut big).expect_err("too big");
    assert_eq!(e.close_code(), close_code::TOO_BIG);
    assert_eq!(close_code::TOO_BIG, 1009);
}
