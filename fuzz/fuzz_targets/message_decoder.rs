//! One message body decoded as a client message and as a server message.
//! The checks live in `rally_protocol::fuzzing::message_decoder`, shared with the corpus replay test.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rally_protocol::fuzzing::message_decoder(data));
