//! WebSocket: frames (masked or not) delivered in chunks, fragments reassembled, then
//! every message decoded as a client and a server message.
//! The checks live in `rally_protocol::fuzzing::ws_decoder`, shared with the corpus replay test.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rally_protocol::fuzzing::ws_decoder(data));
