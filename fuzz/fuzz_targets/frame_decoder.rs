//! Raw TCP: length-prefixed frames delivered in chunks, then every body decoded as a
//! client and a server message.
//! The checks live in `rally_protocol::fuzzing::frame_decoder`, shared with the corpus replay test.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rally_protocol::fuzzing::frame_decoder(data));
