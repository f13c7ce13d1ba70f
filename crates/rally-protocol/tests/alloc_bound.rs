//! What the decoders allocate, measured: a counting global allocator records the size of
//! every allocation and reallocation this thread makes while a decoder runs (and only
//! then), so a decoder that reserved more than a message's limit fails here.
//!
//! - Raw TCP frames and client messages decode without allocating at all (they borrow
//!   from the read buffer), whatever the bytes; so does a WebSocket message in one frame.
//! - A fragmented WebSocket message is reassembled in a buffer that never grows past the
//!   limit, however the fragments are cut.
//! - A server message (decoded by clients into owned values) allocates nothing larger
//!   than its body.
//! - A length over the limit is refused without allocating.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::{client, client_fields, fragmented, masked_frame, server, BINARY, CONTINUATION};
use proptest::prelude::*;
use rally_protocol::ws::{self, Event, WsError};
use rally_protocol::{frame, ClientMessage, ServerMessage};

/// The system allocator, counting on threads that asked it to.
struct Counting;

thread_local! {
    /// Whether this thread is inside [`measured`].
    static ARMED: Cell<bool> = const { Cell::new(false) };
    /// Allocations and reallocations made while armed.
    static COUNT: Cell<usize> = const { Cell::new(0) };
    /// The largest size asked for while armed.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: the allocator may run while this thread's locals are torn down.
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            COUNT.with(|c| c.set(c.get() + 1));
            LARGEST.with(|l| l.set(l.get().max(size)));
        }
    });
}

// SAFETY: every call is passed to `System` unchanged; counting touches only const
// thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations seen while measuring.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Allocs {
    count: usize,
    largest: usize,
}

impl Allocs {
    fn add(&mut self, other: Allocs) {
        self.count += other.count;
        self.largest = self.largest.max(other.largest);
    }
}

/// Starts counting what this thread allocates.
fn start() {
    COUNT.with(|c| c.set(0));
    LARGEST.with(|l| l.set(0));
    ARMED.with(|a| a.set(true));
}

/// Stops counting; returns what was allocated since [`start`].
fn stop() -> Allocs {
    ARMED.with(|a| a.set(false));
    Allocs {
        count: COUNT.with(Cell::get),
        largest: LARGEST.with(Cell::get),
    }
}

/// Runs `f`, counting what this thread allocates meanwhile.
fn measured<T>(f: impl FnOnce() -> T) -> (T, Allocs) {
    start();
    let out = f();
    (out, stop())
}

/// Feeds `wire` to a server-side WebSocket decoder `chunk` bytes more at a time (the
/// stream as it arrives), measuring only the decoder; returns the binary messages (owned,
/// copied outside the measurement) and the allocations.
fn decode_ws(wire: &[u8], max: usize, chunk: usize) -> (Vec<Vec<u8>>, Allocs) {
    let mut d = ws::Decoder::server(max);
    let mut wire = wire.to_vec();
    let mut messages = Vec::new();
    let mut allocs = Allocs::default();
    let mut at = 0;
    let mut arrived = 0;
    while at < wire.len() {
        arrived = (arrived + chunk).min(wire.len());
        loop {
            start();
            let result = d.decode(&mut wire[at..arrived]);
            allocs.add(stop());
            match result {
                Ok(Some((n, event))) => {
                    if let Event::Binary(b) = event {
                        messages.push(b.to_vec());
                    }
                    at += n;
                }
                Ok(None) => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
    (messages, allocs)
}

#[test]
fn reassembly_never_reserves_past_the_limit() {
    // 3,000 bytes then 1,096: growing by doubling would reserve 6,000 for a 4,096 limit.
    let mask = [9, 8, 7, 6];
    let body: Vec<u8> = (0..4096).map(|i| i as u8).collect();
    let mut wire = Vec::new();
    masked_frame(&mut wire, false, BINARY, &body[..3000], mask);
    masked_frame(&mut wire, true, CONTINUATION, &body[3000..], mask);
    let (messages, allocs) = decode_ws(&wire, 4096, wire.len());
    assert_eq!(messages, vec![body.clone()]);
    assert!(allocs.largest <= 4096, "{allocs:?}");

    // One byte per fragment: 4,096 appends, still amortized (a handful of reallocations).
    let mut wire = Vec::new();
    let cuts: Vec<usize> = (1..4096).collect();
    fragmented(&mut wire, &body, &cuts, mask, false);
    let (messages, allocs) = decode_ws(&wire, 4096, 1000);
    assert_eq!(messages, vec![body]);
    assert!(allocs.largest <= 4096, "{allocs:?}");
    assert!(allocs.count <= 16, "{allocs:?}");
}

#[test]
fn lengths_over_the_limit_are_refused_without_allocating() {
    let header = u32::MAX.to_be_bytes();
    let (result, allocs) = measured(|| frame::decode(&header, 4096).map(|_| ()));
    assert!(result.is_err());
    assert_eq!(allocs, Allocs::default());

    let mut d = ws::Decoder::server(4096);
    let mut wire = vec![
        0x82,
        0x80 | 127,
        0x7f,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
        0xff,
    ];
    let (result, allocs) = measured(|| d.decode(&mut wire).map(|_| ()));
    assert!(matches!(result, Err(WsError::TooLarge { .. })));
    assert_eq!(allocs, Allocs::default());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn fragmented_messages_stay_within_the_limit(
        len in 1usize..20_000,
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
        chunk in 1usize..9000,
        mask in any::<[u8; 4]>(),
        slack in 0usize..3,
    ) {
        let body: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let cuts: Vec<usize> = cuts.iter().map(|c| c % len).collect();
        let mut wire = Vec::new();
        fragmented(&mut wire, &body, &cuts, mask, true);
        // The limit is the message's size, or a little more.
        let max = len + slack;
        let (messages, allocs) = decode_ws(&wire, max, chunk);
        prop_assert_eq!(messages, vec![body]);
        prop_assert!(allocs.largest <= max, "{:?} for a limit of {}", allocs, max);
    }

    #[test]
    fn client_frames_decode_without_allocating(
        messages in proptest::collection::vec(client_fields(), 1..8),
        mask in any::<[u8; 4]>(),
    ) {
        let mut tcp = Vec::new();
        let mut wire = Vec::new();
        for f in &messages {
            let mut body = Vec::new();
            client(f).encode(&mut body);
            frame::encode(&body, &mut tcp);
            ws::write_masked_frame(&mut wire, ws::Opcode::Binary, &body, mask);
        }
        let mut at = 0;
        let mut decoded = 0;
        while at < tcp.len() {
            let (result, allocs) = measured(|| {
                let (n, body) = frame::decode(&tcp[at..], usize::MAX).unwrap().unwrap();
                (n, ClientMessage::decode(body).is_ok())
            });
            prop_assert_eq!(allocs, Allocs::default());
            prop_assert!(result.1);
            at += result.0;
            decoded += 1;
        }
        prop_assert_eq!(decoded, messages.len());

        let (got, allocs) = decode_ws(&wire, usize::MAX, wire.len());
        prop_assert_eq!(got.len(), messages.len());
        prop_assert_eq!(allocs, Allocs::default());
    }

    #[test]
    fn arbitrary_bytes_decode_without_allocating(
        bytes in proptest::collection::vec(any::<u8>(), 0..2000),
    ) {
        let (_, allocs) = measured(|| {
            let _ = frame::decode(&bytes, 4096);
            let _ = ClientMessage::decode(&bytes);
            let _ = ClientMessage::decode(bytes.get(4..).unwrap_or_default());
        });
        prop_assert_eq!(allocs, Allocs::default());
        // Servers' messages are decoded into owned values: none larger than the body.
        let (_, allocs) = measured(|| ServerMessage::decode(&bytes).is_ok());
        prop_assert!(allocs.largest <= bytes.len());
    }

    #[test]
    fn server_messages_allocate_no_more_than_their_body(msg in server()) {
        let mut body = Vec::new();
        msg.encode(&mut body);
        let (decoded, allocs) = measured(|| ServerMessage::decode(&body));
        prop_assert_eq!(decoded, Ok(msg));
        prop_assert!(allocs.largest <= body.len(), "{:?} for {} bytes", allocs, body.len());
    }
}
