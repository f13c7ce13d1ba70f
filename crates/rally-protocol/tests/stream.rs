//! Hostile bytes in arbitrary chunks: the frame decoders, fed the way the server and the
//! client SDK feed them (an incomplete frame waits in a buffer for the next read), never
//! panic, decode a stream split anywhere exactly as the same stream unsplit, keep at most
//! one frame header plus the limit waiting, and refuse a length over the limit as soon as
//! the header is in, before any of the body.
//!
//! The stream checks are `rally_protocol::fuzzing`'s, the ones the fuzz targets run.

mod common;

use common::{
    client, client_fields, cycle, fragmented, masked_frame, server, server_frame, BINARY,
    CONTINUATION,
};
use proptest::prelude::*;
use rally_protocol::frame::{self, FrameError};
use rally_protocol::fuzzing::{
    check_tcp_stream, check_ws_stream, deliver_tcp, deliver_ws, End, Unit, LIMITS,
};
use rally_protocol::ws::WsError;
use rally_protocol::{ClientMessage, ServerMessage};

/// Chunk sizes: mostly tiny (every split point gets exercised), sometimes whole reads.
fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(
        prop_oneof![4 => 1usize..8, 2 => 1usize..200, 1 => 1usize..10_000],
        1..40,
    )
}

/// A valid stream with random damage: bytes overwritten, inserted or removed, or the
/// stream cut short.
fn corrupt(mut stream: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(at, kind, byte) in edits {
        if stream.is_empty() {
            break;
        }
        let at = at % stream.len();
        match kind % 4 {
            0 => stream[at] = byte,
            1 => stream.insert(at, byte),
            2 => {
                stream.remove(at);
            }
            _ => stream.truncate(at),
        }
    }
    stream
}

/// The bodies a delivery produced, in order.
fn bodies(units: &[Unit]) -> Vec<&[u8]> {
    units
        .iter()
        .filter_map(|u| match u {
            Unit::Body(b) => Some(&b[..]),
            _ => None,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn client_frames_split_anywhere_decode_to_the_messages_sent(
        messages in proptest::collection::vec(client_fields(), 1..12),
        chunks in chunk_sizes(),
        mask in any::<[u8; 4]>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..4),
    ) {
        let encoded: Vec<Vec<u8>> = messages
            .iter()
            .map(|f| {
                let mut body = Vec::new();
                client(f).encode(&mut body);
                body
            })
            .collect();
        let max = encoded.iter().map(Vec::len).max().unwrap_or(0);

        // Raw TCP.
        let mut tcp = Vec::new();
        for body in &encoded {
            frame::encode(body, &mut tcp);
        }
        let got = check_tcp_stream(&tcp, max, &mut cycle(chunks.clone()));
        prop_assert_eq!(&got.end, &End::Waiting(0));
        prop_assert_eq!(bodies(&got.units), encoded.iter().map(|b| &b[..]).collect::<Vec<_>>());
        for (body, f) in bodies(&got.units).into_iter().zip(&messages) {
            prop_assert_eq!(ClientMessage::decode(body), Ok(client(f)));
        }

        // WebSocket, as a client sends it: masked, some messages in fragments with pings
        // in between.
        let mut wire = Vec::new();
        for (i, body) in encoded.iter().enumerate() {
            let cuts: Vec<usize> = cuts.iter().map(|c| c.wrapping_add(i) % (body.len() + 1)).collect();
            fragmented(&mut wire, body, &cuts, mask, i % 2 == 0);
        }
        let got = check_ws_stream(&wire, true, max, &mut cycle(chunks));
        prop_assert_eq!(&got.end, &End::Waiting(0));
        prop_assert_eq!(bodies(&got.units), encoded.iter().map(|b| &b[..]).collect::<Vec<_>>());
    }

    #[test]
    fn server_frames_split_anywhere_decode_to_the_messages_sent(
        messages in proptest::collection::vec(server(), 1..12),
        chunks in chunk_sizes(),
    ) {
        let mut tcp = Vec::new();
        let mut wire = Vec::new();
        let mut max = 0;
        for m in &messages {
            let mut body = Vec::new();
            m.encode(&mut body);
            max = max.max(body.len());
            frame::encode(&body, &mut tcp);
            server_frame(&mut wire, &body);
        }
        for got in [
            check_tcp_stream(&tcp, max, &mut cycle(chunks.clone())),
            check_ws_stream(&wire, false, max, &mut cycle(chunks.clone())),
        ] {
            prop_assert_eq!(&got.end, &End::Waiting(0));
            let decoded: Vec<ServerMessage> = bodies(&got.units)
                .into_iter()
                .map(|b| ServerMessage::decode(b).unwrap())
                .collect();
            prop_assert_eq!(&decoded, &messages);
        }
    }

    #[test]
    fn arbitrary_bytes_in_arbitrary_chunks(
        stream in proptest::collection::vec(any::<u8>(), 0..3000),
        limit in 0..LIMITS.len(),
        chunks in chunk_sizes(),
    ) {
        let max = LIMITS[limit];
        check_tcp_stream(&stream, max, &mut cycle(chunks.clone()));
        check_ws_stream(&stream, true, max, &mut cycle(chunks.clone()));
        check_ws_stream(&stream, false, max, &mut cycle(chunks));
    }

    #[test]
    fn corrupted_valid_streams_in_arbitrary_chunks(
        messages in proptest::collection::vec(client_fields(), 1..8),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6),
        chunks in chunk_sizes(),
        mask in any::<[u8; 4]>(),
        limit in 0..LIMITS.len(),
    ) {
        let max = LIMITS[limit];
        let mut tcp = Vec::new();
        let mut wire = Vec::new();
        for (i, f) in messages.iter().enumerate() {
            let mut body = Vec::new();
            client(f).encode(&mut body);
            frame::encode(&body, &mut tcp);
            fragmented(&mut wire, &body, &[i, body.len() / 2], mask, true);
        }
        check_tcp_stream(&corrupt(tcp, &edits), max, &mut cycle(chunks.clone()));
        check_ws_stream(&corrupt(wire, &edits), true, max, &mut cycle(chunks));
    }
}

/// One byte at a time.
fn bytewise() -> impl FnMut() -> usize {
    || 1
}

#[test]
fn a_tcp_length_of_a_gigabyte_is_refused_from_the_header_alone() {
    // A valid ping, then a frame claiming 1 GiB, then (never read) some of its body.
    let mut stream = Vec::new();
    let mut ping = Vec::new();
    ClientMessage::Ping { nonce: 7 }.encode(&mut ping);
    frame::encode(&ping, &mut stream);
    let header_end = stream.len() + frame::HEADER_LEN;
    stream.extend_from_slice(&(1u32 << 30).to_be_bytes());
    stream.extend_from_slice(&[0x92; 64]);

    let got = deliver_tcp(&stream, 4096, &mut bytewise());
    assert_eq!(got.units, vec![Unit::Body(ping)]);
    assert_eq!(
        got.end,
        End::Frame(FrameError::TooLarge {
            len: 1 << 30,
            max: 4096
        })
    );
    // Refused when its fourth length byte arrived, not one byte later.
    assert_eq!(got.delivered, header_end);
    // The error the server turns into MESSAGE_TOO_LARGE says what was claimed.
    assert_eq!(
        FrameError::TooLarge {
            len: 1 << 30,
            max: 4096
        }
        .to_string(),
        "frame of 1073741824 bytes exceeds the limit of 4096"
    );

    // The largest length a prefix can hold, and one byte over the limit, alike.
    for len in [u32::MAX, 4097] {
        let got = deliver_tcp(&len.to_be_bytes(), 4096, &mut bytewise());
        assert_eq!(
            got.end,
            End::Frame(FrameError::TooLarge {
                len: len.into(),
                max: 4096
            })
        );
        assert_eq!(got.delivered, frame::HEADER_LEN);
    }
    // Exactly the limit waits for its body.
    let got = deliver_tcp(&4096u32.to_be_bytes(), 4096, &mut bytewise());
    assert_eq!(got.end, End::Waiting(frame::HEADER_LEN));
}

#[test]
fn a_websocket_length_over_the_limit_is_refused_before_the_mask_and_payload() {
    // 64-bit length claiming 4 EiB: refused at its tenth header byte.
    let mut stream = vec![0x82, 0x80 | 127];
    stream.extend_from_slice(&(1u64 << 62).to_be_bytes());
    stream.extend_from_slice(&[0; 4 + 64]);
    let got = deliver_ws(&stream, true, 4096, &mut bytewise());
    assert_eq!(
        got.end,
        End::Ws(WsError::TooLarge {
            len: 1 << 62,
            max: 4096
        })
    );
    assert_eq!(got.delivered, 10);

    // 16-bit length, 65,535 bytes: refused at its fourth header byte.
    let mut stream = vec![0x82, 0x80 | 126, 0xff, 0xff];
    stream.extend_from_slice(&[0; 4 + 64]);
    let got = deliver_ws(&stream, true, 4096, &mut bytewise());
    assert_eq!(got.delivered, 4);
    assert!(matches!(
        got.end,
        End::Ws(WsError::TooLarge { len: 65_535, .. })
    ));

    // Fragments that fit alone but not together: refused at the header of the fragment
    // that would cross the limit, counting what is already reassembled.
    let mask = [1, 2, 3, 4];
    let mut stream = Vec::new();
    masked_frame(&mut stream, false, BINARY, &[0x90; 3000], mask);
    let second = stream.len();
    masked_frame(&mut stream, true, CONTINUATION, &[0; 1097], mask);
    let got = deliver_ws(&stream, true, 4096, &mut bytewise());
    assert_eq!(got.units, vec![Unit::Fragment]);
    assert_eq!(
        got.end,
        End::Ws(WsError::TooLarge {
            len: 4097,
            max: 4096
        })
    );
    assert_eq!(got.delivered, second + 4);
}
