//! Every protocol message, with arbitrary field values (any Unicode, strings and integers
//! at every MessagePack encoding edge, arbitrary nested payloads), survives encoding and
//! decoding, bare and in each framing: raw TCP frames, WebSocket frames the server writes
//! (unmasked) and WebSocket frames a client writes (masked, possibly fragmented with pings
//! in between).

mod common;

use common::{
    client, client_fields, client_variant, fragmented, server, server_frame, server_variant,
    CLIENT_VARIANTS, SERVER_VARIANTS,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use rally_protocol::ws::{self, Event, Opcode, WsError};
use rally_protocol::{frame, ClientMessage, ServerMessage};

/// Decodes `wire` as one whole TCP frame with the limit exactly its body's length, and
/// checks that one byte less of limit refuses it.
fn tcp_body(wire: &[u8]) -> &[u8] {
    let body_len = wire.len() - frame::HEADER_LEN;
    assert_eq!(
        frame::decode(wire, body_len.saturating_sub(1)),
        Err(frame::FrameError::TooLarge {
            len: body_len as u64,
            max: body_len - 1
        })
    );
    let (n, body) = frame::decode(wire, body_len).unwrap().unwrap();
    assert_eq!(n, wire.len());
    body
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn client_messages_round_trip_bare_and_framed(
        f in client_fields(),
        mask in any::<[u8; 4]>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let msg = client(&f);
        let mut body = Vec::new();
        msg.encode(&mut body);
        prop_assert_eq!(ClientMessage::decode(&body), Ok(msg.clone()));

        // Raw TCP, both ways of writing a frame.
        let mut wire = Vec::new();
        frame::encode(&body, &mut wire);
        let mut begun = Vec::new();
        let at = frame::begin(&mut begun);
        msg.encode(&mut begun);
        frame::finish(&mut begun, at);
        prop_assert_eq!(&begun, &wire);
        prop_assert_eq!(ClientMessage::decode(tcp_body(&wire)), Ok(msg.clone()));

        // WebSocket as a client sends it: one masked frame...
        let mut wire = Vec::new();
        ws::write_masked_frame(&mut wire, Opcode::Binary, &body, mask);
        let n = wire.len();
        let mut d = ws::Decoder::server(body.len());
        match d.decode(&mut wire) {
            Ok(Some((used, Event::Binary(got)))) => {
                prop_assert_eq!(used, n);
                prop_assert_eq!(ClientMessage::decode(got), Ok(msg.clone()));
            }
            other => prop_assert!(false, "decoded {other:?}"),
        }
        // ... and one byte of limit less refuses it from the header.
        if !body.is_empty() {
            let mut wire = Vec::new();
            ws::write_masked_frame(&mut wire, Opcode::Binary, &body, mask);
            let mut d = ws::Decoder::server(body.len() - 1);
            let refused = d.decode(&mut wire);
            prop_assert!(matches!(refused, Err(WsError::TooLarge { .. })), "{refused:?}");
        }

        // ... or fragments at arbitrary cuts, with pings between them.
        let cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
        let mut wire = Vec::new();
        fragmented(&mut wire, &body, &cuts, mask, true);
        let mut d = ws::Decoder::server(body.len());
        let mut at = 0;
        let mut pings = 0;
        let whole = loop {
            match d.decode(&mut wire[at..]) {
                Ok(Some((used, event))) => {
                    at += used;
                    match event {
                        Event::Binary(got) => break got.to_vec(),
                        Event::Ping(p) => {
                            prop_assert_eq!(p, b"ping");
                            pings += 1;
                        }
                        Event::Fragment => {}
                        other => prop_assert!(false, "unexpected {other:?}"),
                    }
                }
                other => prop_assert!(false, "decoded {other:?} at {at}"),
            }
        };
        prop_assert_eq!(at, wire.len());
        prop_assert_eq!(&whole, &body);
        let fragments = cuts.iter().filter(|&&c| c > 0 && c < body.len()).collect::<std::collections::BTreeSet<_>>().len() + 1;
        prop_assert_eq!(pings, fragments - 1);
        prop_assert_eq!(ClientMessage::decode(&whole), Ok(msg));
    }

    #[test]
    fn server_messages_round_trip_bare_and_framed(msg in server()) {
        let mut body = Vec::new();
        msg.encode(&mut body);
        prop_assert_eq!(ServerMessage::decode(&body), Ok(msg.clone()));

        // Raw TCP, both ways of writing a frame (the server uses begin/finish).
        let mut wire = Vec::new();
        frame::encode(&body, &mut wire);
        let mut begun = Vec::new();
        let at = frame::begin(&mut begun);
        msg.encode(&mut begun);
        frame::finish(&mut begun, at);
        prop_assert_eq!(&begun, &wire);
        prop_assert_eq!(ServerMessage::decode(tcp_body(&wire)), Ok(msg.clone()));

        // WebSocket as the server sends it: one unmasked frame, written before its
        // length is known (begin/finish) or after (write_frame); the same bytes.
        let mut wire = Vec::new();
        server_frame(&mut wire, &body);
        let mut plain = Vec::new();
        ws::write_frame(&mut plain, Opcode::Binary, &body);
        prop_assert_eq!(&wire, &plain);
        let n = wire.len();
        let mut d = ws::Decoder::client(body.len());
        match d.decode(&mut wire) {
            Ok(Some((used, Event::Binary(got)))) => {
                prop_assert_eq!(used, n);
                prop_assert_eq!(ServerMessage::decode(got), Ok(msg));
            }
            other => prop_assert!(false, "decoded {other:?}"),
        }
    }
}

/// The generators above produce every variant: checked over a fixed number of draws, with
/// an exhaustive match (`client_variant`, `server_variant`) that stops compiling when a
/// message type is added and not generated.
#[test]
fn generators_cover_every_variant() {
    let mut runner = TestRunner::deterministic();
    let mut seen = [false; CLIENT_VARIANTS];
    let fields = client_fields();
    for _ in 0..2000 {
        let f = fields.new_tree(&mut runner).unwrap().current();
        seen[client_variant(&client(&f))] = true;
    }
    assert!(seen.iter().all(|&s| s), "client variants seen: {seen:?}");

    let mut seen = [false; SERVER_VARIANTS];
    let messages = server();
    for _ in 0..2000 {
        seen[server_variant(&messages.new_tree(&mut runner).unwrap().current())] = true;
    }
    assert!(seen.iter().all(|&s| s), "server variants seen: {seen:?}");
}
